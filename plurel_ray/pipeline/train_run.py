"""Train on Ray, then evaluate the final checkpoint: the one path every training command takes.

    run = TrainRun(recipe=recipe("tiny"), sources=sources, eval_sources=held_out_tasks,
                   name=run_name("tiny-run1", {"train": names}), storage="runs")
    outcome = train_and_evaluate(run)   # checkpoint, evaluation rows, per-step metrics
    print_outcome(outcome, run.eval_split)

The jobs, the demo and each point of the scaling sweep build a `TrainRun` and call
`train_and_evaluate`: sources without items are left out (said), the rest train with
`run_pretraining` (resuming a run of the same name; with `eval_every`/`eval_pow2` the
held-out tasks are scored on val and test during training, into eval.jsonl and best/),
the final checkpoint is scored on the held-out tasks (`evaluate_run`, which writes
`eval_<split>.csv`), and the run folder gets a report.md with its figures.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.flags import DEFAULT_EVAL_SPLIT
from plurel_ray.pipeline.pretrain_data import drop_empty_sources
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.store.meta import read_meta
from plurel_ray.store.sampler import Source
from plurel_ray.train.config import Recipe
from plurel_ray.util.run_files import BEST_DIR, BEST_FILE, EVAL_FILE, METRICS_FILE

# Reported tokens/s: the mean of the last this many steps (the first ones warm up).
TOKENS_PER_S_STEPS = 10


def run_name(prefix: str, identity: dict[str, Any]) -> str:
    """`prefix` plus a short hash of `identity` (what defines the run: recipe, data,
    overrides, initial weights), so the same command resumes its run and a changed one
    starts a new run instead of resuming an unrelated one. Characters outside
    `[A-Za-z0-9._-]` become `-`.

    Args:
        prefix: the readable part, e.g. `tiny-run1`.
        identity: JSON-able data (other values are hashed by their `str`).
    """
    text = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{prefix}-{digest}")


@dataclass(frozen=True)
class TrainRun:
    """A training run and the evaluation of its final checkpoint, as plain data.

    Args:
        recipe: the model and training configuration.
        sources: the training tasks (`pretrain_data.task_sources`).
        eval_sources: the held-out tasks (task or table sources); each evaluated split
            replaces their `split`.
        name: the run name; rerunning a name in the same storage resumes it.
        storage: the local folder of the runs (checkpoints, metrics, evaluation CSV).
        resources: workers, CPUs, GPUs, failures, resource wait.
        eval_split: the split the final checkpoint is evaluated on ("val" or "test").
        eval_max_items: items scored per task and split: the first N of the split's
            fixed evaluation order (None: every item).
        eval_every: evaluate on val and test every N steps during training (0: not).
        eval_pow2: evaluate at steps 0, 1, 2, 4, 8, … during training. With either
            schedule, step 0 (before any update) and the last step are evaluated too.
        eval_dir: where `eval_<split>.csv` goes (default: the run folder).
        init_checkpoint: weights to start from (a checkpoint folder or a `.pt`).
        hub_repo: a Hugging Face model repo every checkpoint is pushed to.
        progress: the training progress bar.
        allow_encoder_mismatch: train from, and evaluate, a checkpoint on stores embedded
            by another text encoder than its own (refused by default).
    """

    recipe: Recipe
    sources: Sequence[Source]
    eval_sources: Sequence[Source]
    name: str
    storage: str
    resources: RunResources = field(default_factory=RunResources)
    eval_split: str = DEFAULT_EVAL_SPLIT
    eval_max_items: int | None = None
    eval_every: int = 0
    eval_pow2: bool = False
    eval_dir: str | None = None
    init_checkpoint: str | None = None
    hub_repo: str | None = None
    progress: bool = True
    allow_encoder_mismatch: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What `train_and_evaluate` produced.

    Attributes:
        checkpoint: the final checkpoint folder.
        rows: one evaluation row per task (`evaluate_run`).
        steps: the per-step records of metrics.jsonl (loss, lr, tokens/s, data wait).
        num_tasks: the training tasks that had items.
        seconds: wall time of "train" and "evaluate".
    """

    checkpoint: Path
    rows: list[dict]
    steps: list[dict]
    num_tasks: int
    seconds: dict[str, float]

    def tokens_per_s(self) -> tuple[float, int]:
        """(mean tokens/s, steps averaged): over the last TOKENS_PER_S_STEPS steps."""
        recent = self.steps[-TOKENS_PER_S_STEPS:]
        return sum(s["tokens_per_s"] for s in recent) / len(recent), len(recent)


def data_summary(sources: Sequence[Source]) -> dict:
    """What a model card says about the training data: databases, seeds, config hashes.

    Args:
        sources: the training tasks.
    """
    stores = sorted({str(s.store) for s in sources})
    origins = [read_meta(store).get("source", {}) for store in stores]
    return {
        "num_databases": len(stores),
        "num_tasks": len(sources),
        "databases": [o.get("name") for o in origins],
        "seeds": sorted(o["seed"] for o in origins if "seed" in o),
        "config_hashes": sorted({o["config_hash"] for o in origins if "config_hash" in o}),
    }


def train_and_evaluate(run: TrainRun, say: Callable[[str], None] = print) -> RunOutcome:
    """Train `run.recipe` on the sources that have items with Ray Train, then evaluate
    the final checkpoint on `run.eval_sources` in `run.eval_split`: with an evaluation
    schedule the workers scored its step already, and eval.jsonl's rows of that step are
    the evaluation; without one the driver scores it (`evaluate_run`).

    Args:
        run: what to train and evaluate.
        say: where the lines about left-out sources and the run's start go.

    Raises:
        DatasetError: no source has items.
        PlurelError: a store is unusable, a request the cluster cannot fit, a bad
            checkpoint to resume from (see `run_pretraining`).
    """
    from plurel_ray.pipeline.pretrain import PretrainRequest, run_pretraining
    from plurel_ray.pipeline.pretrain_eval import evaluate_run, logged_rows, write_eval_csv
    from plurel_ray.pipeline.report import read_metrics

    train = run.recipe.train
    kept, empty = drop_empty_sources(run.sources, train.batch_size, train.ctx_len)
    for source in empty:
        say(f"note: {Path(source.store).name}/{source.task} has no items in its "
            f"{source.split} split; left out")  # fmt: skip
    if not kept:
        raise DatasetError(f"run {run.name}: no training task has items; check the data or "
                           "--max-tasks")  # fmt: skip
    request = PretrainRequest(
        sources=kept, recipe=run.recipe, name=run.name, storage_path=run.storage,
        resources=run.resources, init_checkpoint=run.init_checkpoint, hub_repo=run.hub_repo,
        data_summary=data_summary(kept), progress=run.progress,
        allow_encoder_mismatch=run.allow_encoder_mismatch, eval_sources=run.eval_sources,
        eval_every=run.eval_every, eval_pow2=run.eval_pow2, eval_max_items=run.eval_max_items,
    )  # fmt: skip
    say(f"run {run.name}: {len(kept)} training tasks from "
        f"{len({str(s.store) for s in kept})} store(s), {train.steps} steps")  # fmt: skip
    started = time.perf_counter()
    checkpoint = Path(run_pretraining(request).checkpoint.path)
    trained = time.perf_counter()
    if request.eval_schedule() is not None:
        # The workers scored the last step's val and test already: its rows are the final
        # evaluation, not a second pass over every item on the driver.
        rows = logged_rows(read_metrics(checkpoint / EVAL_FILE), run.eval_split)
        folder = Path(run.eval_dir) if run.eval_dir is not None else checkpoint.parent
        write_eval_csv(rows, folder / f"eval_{run.eval_split}.csv")
    else:
        rows = evaluate_run(checkpoint, run.eval_sources, run.eval_split, train.batch_size,
                            train.ctx_len, max_items=run.eval_max_items, out_dir=run.eval_dir,
                            allow_encoder_mismatch=run.allow_encoder_mismatch)  # fmt: skip
    seconds = {"train": trained - started, "evaluate": time.perf_counter() - trained}
    steps = read_metrics(checkpoint / METRICS_FILE)
    outcome = RunOutcome(checkpoint, rows, steps, len(kept), seconds)
    write_report(run, outcome)
    return outcome


def write_report(run: TrainRun, outcome: RunOutcome) -> Path:
    """Write report.md into the run folder (the checkpoint's parent): the loss curve,
    with evaluation during training a metric-vs-step figure per task and for the mean
    and their summary table, and the final checkpoint's evaluation.

    Args:
        run: the run.
        outcome: what training and the final evaluation produced.
    """
    from plurel_ray.pipeline.report import (
        eval_summary_table,
        eval_table,
        plot_eval,
        plot_loss,
        read_metrics,
    )

    folder = outcome.checkpoint.parent
    last = outcome.steps[-1]
    plot_loss(outcome.steps, folder / "loss.png")
    lines = [f"# Run {run.name}", "",
             f"Recipe {run.recipe.name}: {outcome.num_tasks} training tasks, "
             f"{last['step']} steps; final loss {last['loss']:.4f}.", "",
             "## Training loss", "", "![training loss](loss.png)", ""]  # fmt: skip
    if (folder / EVAL_FILE).is_file():
        evaluations = read_metrics(folder / EVAL_FILE)
        best = folder / BEST_DIR / BEST_FILE
        chosen = json.loads(best.read_text()) if best.is_file() else None
        lines += ["## Evaluation during training", "",
                  f"Held-out tasks scored on val and test at steps "
                  f"{', '.join(str(s) for s in sorted({r['step'] for r in evaluations}))} "
                  f"({EVAL_FILE}). " + (f"best/ holds step {chosen['step']} (mean val score "
                                        f"{chosen['score']:.4f})." if chosen else
                                        "No step has a mean val score, so there is no best/."),
                  "", *eval_summary_table(evaluations), ""]  # fmt: skip
        for title, file in plot_eval(evaluations, folder):
            lines += [f"![{title}]({file})", ""]
    lines += [f"## Final checkpoint, {run.eval_split} split", "", *eval_table(outcome.rows), ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines))
    return report


def print_outcome(outcome: RunOutcome, split: str) -> None:
    """Print where the checkpoint is, its last loss and tokens/s, and the evaluation.

    Args:
        outcome: a finished run.
        split: the split it was evaluated on.
    """
    from plurel_ray.pipeline.pretrain_eval import format_table

    checkpoint, last = outcome.checkpoint, outcome.steps[-1]
    tokens_per_s, averaged = outcome.tokens_per_s()
    print(f"checkpoint: {checkpoint}")
    print(f"step {last['step']}: loss {last['loss']:.4f}, {tokens_per_s:,.0f} tokens/s "
          f"(mean of the last {averaged} steps)")  # fmt: skip
    print(f"evaluation, {split} split of {len(outcome.rows)} tasks: "
          f"{checkpoint.parent}/eval_{split}.csv")  # fmt: skip
    for line in format_table(outcome.rows):
        print(line)
