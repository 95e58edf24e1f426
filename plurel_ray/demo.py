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
EVAL_BATCHES = 8
DATA_DIR, CHECKPOINTS_DIR = "data", "checkpoints"
_TOKENS_PER_S_STEPS = 10  # reported tokens/s: the mean of the last this many steps


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
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation
    from plurel_ray.pipeline.output import database_name
    from plurel_ray.pipeline.pretrain import METRICS_FILE, PretrainRequest, run_pretraining
    from plurel_ray.pipeline.pretrain_data import (
        drop_empty_sources,
        local_folder,
        split_holdout,
        synthetic_stores,
        task_sources,
    )
    from plurel_ray.pipeline.pretrain_eval import evaluate_run, format_table
    from plurel_ray.pipeline.ray_stages import NUM_CPUS_ENV, ensure_ray
    from plurel_ray.report import plot_loss, plot_schema, read_metrics
    from plurel_ray.train.config import recipe

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
    seeds = range(num_dbs)
    request = GenerationRequest(seeds=seeds, out=str(run_dir / DATA_DIR), config=demo_config(),
                                preprocess=True, embed=True)  # fmt: skip
    summary = run_generation(request, progress=progress)
    phases["generate, preprocess, embed"] = time.perf_counter() - t0
    for line in summary.lines():
        say(line)
    if summary.failed:
        raise DatasetError(f"{summary.failed} seed(s) failed (errors in {summary.index_path})")
    names = [database_name(seed) for seed in seeds]
    train_stores, held_out = split_holdout(synthetic_stores(run_dir / DATA_DIR, names), 1)

    t0 = time.perf_counter()
    sources = task_sources(train_stores)
    kept, _ = drop_empty_sources(sources, chosen.train.batch_size, chosen.train.ctx_len)
    if not kept:
        raise DatasetError(f"{run_dir / DATA_DIR}: no training task has items")
    say(f"demo: training {steps} steps on {len(kept)} tasks of {len(train_stores)} databases")
    result = run_pretraining(PretrainRequest(
        sources=kept, recipe=chosen, name=CHECKPOINTS_DIR, storage_path=str(run_dir),
        num_workers=DEMO_WORKERS, max_failures=0, progress=progress,
    ))  # fmt: skip
    checkpoint = Path(result.checkpoint.path)
    phases["train"] = time.perf_counter() - t0
    shutil.copy(checkpoint / METRICS_FILE, run_dir / METRICS_FILE)

    t0 = time.perf_counter()
    rows = evaluate_run(checkpoint, held_out, "val", EVAL_BATCHES, chosen.train.batch_size,
                        chosen.train.ctx_len, out_dir=run_dir)  # fmt: skip
    phases["evaluate"] = time.perf_counter() - t0
    for line in format_table(rows):
        say(line)

    t0 = time.perf_counter()
    metrics = read_metrics(run_dir / METRICS_FILE)
    plot_loss(metrics, run_dir / "loss.png")
    plot_schema(run_dir / DATA_DIR / names[0], run_dir / "schema.png")
    phases["report"] = time.perf_counter() - t0
    phases["total"] = time.perf_counter() - start
    report = run_dir / "report.md"
    report.write_text("\n".join(_report_lines(
        run_dir, checkpoint, summary, metrics, rows, phases, chosen, names, len(kept),
    )) + "\n")  # fmt: skip
    print(f"run folder:  {run_dir}")
    print(f"report:      {report}")
    print(f"checkpoint:  {checkpoint}")
    print(f"evaluation:  {run_dir / 'eval_val.csv'} ({len(rows)} tasks of {held_out[0].name})")
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


def _report_lines(run_dir, checkpoint, summary, metrics, rows, phases, chosen, names,
                  num_tasks) -> list[str]:  # fmt: skip
    from plurel_ray.report import eval_table, markdown_table

    recent = metrics[-_TOKENS_PER_S_STEPS:]
    tokens_per_s = sum(s["tokens_per_s"] for s in recent) / len(recent)
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
        f"context {train.ctx_len} on {num_tasks} tasks of {len(names) - 1} databases, with "
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
        f"Each task is scored on at most {EVAL_BATCHES} batches; AUROC for boolean targets, "
        "R² for number targets.",
        "",
        "## Throughput",
        "",
        *markdown_table(("what", "figure"), [
            ("generation", f"{summary.generated} databases, {summary.cells:,} cells in "
                           f"{gen_s:.1f} s"),
            ("generation rate", f"{summary.generated / gen_s:.2f} databases/s, "
                                f"{summary.cells / gen_s:,.0f} cells/s"),
            ("training", f"{tokens_per_s:,.0f} tokens/s (mean of the last {len(recent)} steps)"),
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
