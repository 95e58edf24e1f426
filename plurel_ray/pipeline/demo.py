"""`plurel-ray demo`: generate, pretrain, evaluate and report, in one run folder.

    run = run_demo("demo-runs")            # demo-runs/demo-20250101-120000/report.md

On an embedded local Ray (or the cluster in RAY_ADDRESS): generate `num_dbs` small
databases with node stores and text embeddings, hold the last one out, pretrain the
`tiny` recipe on the others' tasks, evaluate the final checkpoint on the held-out
database's val split, and write the report. The run folder holds everything:

    data/            RelBench-3 folders plurel-<seed>/, node stores in data/stores/
    checkpoints/     Ray Train's run: step_<N>/ (model.safetensors, config.json, …)
    metrics.jsonl    one line per training step (loss, lr, tokens/s, data wait)
    eval_val.csv     one row per held-out task
    loss.png  schema.png  report.md
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.errors import ConfigError, DatasetError

# Logical CPUs of the demo's embedded Ray when PLUREL_RAY_NUM_CPUS is unset: the trainer
# and its sampler take 1 each, generation actors share the rest; oversubscribing 2
# cores this way is what the integration tests do.
DEMO_NUM_CPUS = 4
# Batch 8 × context 256 (the tiny recipe's): a step takes ~0.3 s on 2 cores.
DEMO_TRAIN = {"batch_size": 8, "ctx_len": 256}
# One worker: on 2 cores a second worker halves each one's threads and adds a gloo
# all-reduce per step, for no gain in tokens/s.
DEMO_WORKERS = 1
DATA_DIR, CHECKPOINTS_DIR = "data", "checkpoints"


def demo_config() -> Config:
    """The generator config of the demo: 3–5 tables of ≤ 300 rows, a database in ~0.3 s."""
    return Config(
        database_params=DatabaseParams(
            num_tables_choices=Choices("range", (3, 5)),
            num_rows_entity_table_choices=Choices("range", (50, 150)),
            num_rows_activity_table_choices=Choices("range", (150, 300)),
            num_cols_choices=Choices("range", (3, 6)),
        )
    )


def run_demo(out_dir: str | os.PathLike, *, num_dbs: int = 6, steps: int = 300,
             progress: bool = True) -> Path:  # fmt: skip
    """Run the demo end to end into a new folder `out_dir/demo-<timestamp>/`.

    Args:
        out_dir: where the run folder is created (a local folder).
        num_dbs: databases to generate (seeds 0 … num_dbs-1); the last is held out.
        steps: training steps of the tiny recipe.
        progress: show progress bars and print each phase as it ends.

    Returns:
        the run folder (with report.md).

    Raises:
        ConfigError: num_dbs < 2 or steps < 1.
        DatasetError, StoreError: a seed failed, or no training task has items.
    """
    if num_dbs < 2 or steps < 1:
        raise ConfigError(f"demo needs --num-dbs ≥ 2 (one is held out) and --steps ≥ 1, got "
                          f"{num_dbs} and {steps}")  # fmt: skip
    from plurel_ray.pipeline.data_selection import synthetic_sources
    from plurel_ray.pipeline.prepare import prepare_synthetic
    from plurel_ray.pipeline.pretrain_data import local_folder
    from plurel_ray.pipeline.pretrain_eval import format_table
    from plurel_ray.pipeline.ray_stages import NUM_CPUS_ENV, ensure_ray
    from plurel_ray.pipeline.report import plot_loss, plot_schema
    from plurel_ray.pipeline.resources import RunResources
    from plurel_ray.pipeline.train_run import TrainRun, train_and_evaluate
    from plurel_ray.train.config import recipe
    from plurel_ray.util.run_files import METRICS_FILE

    chosen = recipe("tiny", steps=steps, checkpoint_every=steps, **DEMO_TRAIN)
    run_dir = _new_run_dir(local_folder(str(out_dir), "--out"))
    say = print if progress else (lambda *_: None)
    say(f"demo: run folder {run_dir}")
    phases: dict[str, float] = {}
    start = time.perf_counter()

    t0 = time.perf_counter()
    ensure_ray(None if os.environ.get(NUM_CPUS_ENV) else DEMO_NUM_CPUS)
    phases["start Ray"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = prepare_synthetic(run_dir / DATA_DIR, range(num_dbs), 1, demo_config(),
                             progress=progress, say=say)  # fmt: skip
    phases["generate, preprocess, embed"] = time.perf_counter() - t0
    names = [store.name for store in (*data.train, *data.held_out)]
    train_sources, eval_sources = synthetic_sources(data, "val")

    run = TrainRun(
        recipe=chosen, sources=train_sources, eval_sources=eval_sources,
        name=CHECKPOINTS_DIR, storage=str(run_dir), eval_split="val",
        eval_dir=str(run_dir), progress=progress,
        resources=RunResources(num_workers=DEMO_WORKERS, max_failures=0),
    )  # fmt: skip
    outcome = train_and_evaluate(run, say=say)
    phases.update(outcome.seconds)
    checkpoint = outcome.checkpoint
    shutil.copy(checkpoint / METRICS_FILE, run_dir / METRICS_FILE)
    for line in format_table(outcome.rows):
        say(line)

    t0 = time.perf_counter()
    plot_loss(outcome.steps, run_dir / "loss.png")
    plot_schema(run_dir / DATA_DIR / names[0], run_dir / "schema.png")
    phases["report"] = time.perf_counter() - t0
    phases["total"] = time.perf_counter() - start
    report = run_dir / "report.md"
    report.write_text("\n".join(_report_lines(run_dir, outcome, data.generation, phases, chosen,
                                               names)) + "\n")  # fmt: skip
    print(f"run folder:  {run_dir}")
    print(f"report:      {report}")
    print(f"checkpoint:  {checkpoint}")
    print(f"evaluation:  {run_dir / 'eval_val.csv'} ({len(outcome.rows)} tasks of {names[-1]})")
    print(f"total:       {phases['total']:.1f} s")
    return run_dir


def _new_run_dir(out: Path) -> Path:
    """out/demo-<local time>, with a suffix when two demos start in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{i}" for i in range(1, 100))):
        run_dir = out / f"demo-{stamp}{suffix}"
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise DatasetError(f"{out}: could not create a new demo-{stamp} folder")


def _report_lines(run_dir, outcome, summary, phases, chosen, names) -> list[str]:
    from plurel_ray.pipeline.report import eval_table, markdown_table

    checkpoint, metrics, rows = outcome.checkpoint, outcome.steps, outcome.rows
    tokens_per_s, averaged = outcome.tokens_per_s()
    wait = sum(s.get("data_wait_frac", 0.0) for s in metrics) / len(metrics)
    gen_s = summary.seconds
    train = chosen.train
    rel = lambda p: os.path.relpath(p, run_dir)  # noqa: E731
    return [
        f"# plurel-ray demo: {run_dir.name}",
        "",
        f"{len(names)} synthetic databases ({names[0]} … {names[-1]}); {names[-1]} held out. "
        f"The `{chosen.name}` recipe ({chosen.model.num_blocks} blocks, d_model "
        f"{chosen.model.d_model}) trained {train.steps} steps at batch {train.batch_size} × "
        f"context {train.ctx_len} on {outcome.num_tasks} tasks of {len(names) - 1} databases, "
        "with "
        f"{DEMO_WORKERS} Ray Train worker(s).",
        "",
        "## Training loss",
        "",
        "![training loss](loss.png)",
        "",
        f"Final step {metrics[-1]['step']}: loss {metrics[-1]['loss']:.4f} "
        f"(first step {metrics[0]['loss']:.4f}).",
        "",
        f"## Evaluation: {names[-1]} (held out), val split",
        "",
        *eval_table(rows),
        "",
        "Each task is scored on every item of its val split; AUROC for boolean targets, "
        "R² for number targets.",
        "",
        "## Throughput",
        "",
        *markdown_table(("what", "figure"), [
            ("generation", f"{summary.generated} databases, {summary.cells:,} cells in "
                           f"{gen_s:.1f} s"),
            ("generation rate", f"{summary.generated / gen_s:.2f} databases/s, "
                                f"{summary.cells / gen_s:,.0f} cells/s"),
            ("training", f"{tokens_per_s:,.0f} tokens/s (mean of the last {averaged} steps)"),
            ("training data wait", f"{wait:.1%} of step time (mean over steps)"),
        ]),
        "",
        "Wall time of each phase (generation includes preprocessing and embedding):",
        "",
        *markdown_table(("phase", "seconds"), [(k, f"{v:.1f}") for k, v in phases.items()]),
        "",
        f"## Schema of {names[0]}",
        "",
        "![schema](schema.png)",
        "",
        "## Files",
        "",
        *markdown_table(("file", "what"), [
            (f"`{DATA_DIR}/`", "RelBench-3 databases; node stores in `data/stores/`"),
            (f"`{rel(checkpoint)}/`", "final checkpoint (model.safetensors, config.json)"),
            ("`metrics.jsonl`", "one line per training step"),
            ("`eval_val.csv`", "evaluation rows"),
        ]),
    ]  # fmt: skip
