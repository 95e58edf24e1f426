"""Evaluation throughput: items scored per second, per core and on all cores, on CPU.

    python benchmarks/bench_eval.py                      # tiny and plurel-paper, a summary
    python benchmarks/bench_eval.py --json               # one JSON object
    python benchmarks/bench_eval.py DATASET_DIR --recipes tiny --seconds 5

Scores the val split of every task of a real-shaped database (the `shop` of
tests/realshaped.py, or a RelBench-3 folder given) the way a run's evaluation does:
each task's evaluation sampler (`EvalTask.sampler`'s fixed seed and order),
`capped_batches`, `predict_items` and `item_metrics` (plurel_ray/train/evaluate.py), a
randomly initialised model of each recipe in eval mode at the precision evaluation picks
("auto": fp32 on a CPU). The folder is preprocessed and embedded first (not timed); the
first batch of every measurement is a warm-up and not counted.

- one_core: the process pinned to one CPU, torch and the sampler on one thread each;
- all_cores: every CPU this process may use, torch and the sampler on that many threads;
- items_per_s: items scored per second of wall time (sampling + model + metrics), over
  `--seconds` per measurement split evenly between the tasks (at least one batch each);
  sample_frac: the share of that time spent building the batches; load_avg_1m: the
  machine's 1-minute load average after it (other work slows the all-cores figure).

Batches are `--batch-size` (default 8) × the recipe's ctx_len unless `--ctx-len` is
given. The machine (CPU model, clock, SIMD/AMX flags, CPUs) is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a bare checkout
sys.path.insert(0, str(REPO / "tests"))  # realshaped.py: the default database

from machine import cpu_info, cpu_line, pin_to_one_cpu  # noqa: E402

from plurel_ray.model import init_model  # noqa: E402
from plurel_ray.pipeline.pretrain_eval import EVAL_SEED, eval_tasks  # noqa: E402
from plurel_ray.store.embedding import DEFAULT_MODEL, embed  # noqa: E402
from plurel_ray.store.preprocessing import preprocess  # noqa: E402
from plurel_ray.store.sampler import Sampler, Source, read_meta  # noqa: E402
from plurel_ray.train import RECIPES, recipe  # noqa: E402
from plurel_ray.train.evaluate import capped_batches, item_metrics, predict_items  # noqa: E402
from plurel_ray.train.precision import resolve_precision  # noqa: E402


def build_store(folder: Path | None, work: Path, text_model: str) -> Path:
    """The embedded node store of `folder`, or of the real-shaped `shop` when None."""
    if folder is None:
        from realshaped import write_all

        folder = write_all(work / "real")["shop"]
    store = preprocess(folder, work / "stores")
    embed(store, model=text_model, progress=False)
    return store


def _timed(batches: Iterable, clock: list[float], deadline: float) -> Iterator:
    """`batches` until `deadline`, adding the time spent building each to clock[0]."""
    it = iter(batches)
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        batch = next(it, None)
        clock[0] += time.perf_counter() - start
        if batch is None:
            return
        yield batch


def measure(store: Path, name: str, args: argparse.Namespace, threads: int) -> dict:
    """Score the store's val items with recipe `name` on `threads` threads for
    `args.seconds`; items, seconds, items/s and the sampling share."""
    run = recipe(name)
    ctx_len = args.ctx_len or run.train.ctx_len
    torch.manual_seed(args.seed)
    model = init_model(run.model, args.seed).eval()
    device = next(model.parameters()).device
    precision = resolve_precision("auto", device)
    torch.set_num_threads(threads)
    tasks = [t for t in eval_tasks(sources(store), "val") if t.scored]
    items, seconds, sampling, scored = 0, 0.0, [0.0], {}
    for task in tasks:
        sampler = Sampler([task.source], batch_size=args.batch_size, ctx_len=ctx_len,
                          seed=EVAL_SEED, num_threads=threads)  # fmt: skip
        emb = sampler.embedding_matrix()
        batches = capped_batches(sampler, None)
        predict_items(model, [next(batches)], emb, task.sem_type, precision)  # warm-up
        start = time.perf_counter()
        deadline = start + args.seconds / len(tasks)
        predictions = predict_items(model, _timed(batches, sampling, deadline), emb,
                                    task.sem_type, precision)  # fmt: skip
        metrics = item_metrics(predictions, task.sem_type)
        seconds += time.perf_counter() - start
        items += metrics["items"]
        scored[task.task] = metrics["items"]
    return {
        "threads": threads,
        # Other processes on these CPUs slow the all-cores figure most: say how many ran.
        "load_avg_1m": os.getloadavg()[0],
        "items": items,
        "seconds": seconds,
        "items_per_s": items / seconds if seconds else 0.0,
        "sample_frac": sampling[0] / seconds if seconds else 0.0,
        "items_by_task": scored,
        "batch_size": args.batch_size,
        "ctx_len": ctx_len,
        "precision": precision,
    }


def sources(store: Path) -> list[Source]:
    """One source per task of the store (its own leakage columns)."""
    return [Source(store, task=t["name"]) for t in read_meta(store)["tasks"]]


def run_all(args: argparse.Namespace) -> dict:
    """Every recipe on one core, then on all cores."""
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(args.dataset, Path(tmp), args.text_model)
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        machine = cpu_info()
        results: dict[str, dict] = {name: {} for name in args.recipes}
        pinned = pin_to_one_cpu()
        for name in args.recipes:
            results[name]["one_core"] = measure(store, name, args, 1)
        if allowed is not None:
            os.sched_setaffinity(0, allowed)
        for name in args.recipes:
            results[name]["all_cores"] = measure(store, name, args, machine["cpus"])
        dataset = read_meta(store).get("name", store.name)
    return {"machine": {**machine, "pinned_cpu": pinned, "torch": torch.__version__},
            "dataset": dataset, "recipes": results}  # fmt: skip


def summary(figures: dict) -> list[str]:
    m = figures["machine"]
    lines = [f"{cpu_line(m)}; val split of every task of {figures['dataset']!r}"]
    for name, runs in figures["recipes"].items():
        for where, r in runs.items():
            lines.append(
                f"{name:>13} {where:>9} ({r['threads']} thr): {r['items_per_s']:8.2f} items/s "
                f"({r['items_per_s'] / r['threads']:.2f}/core), {r['items']} items in "
                f"{r['seconds']:.1f} s, sampling {r['sample_frac']:.0%}, "
                f"{r['batch_size']} x {r['ctx_len']} {r['precision']}, load {r['load_avg_1m']:.1f}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", type=Path,
                        help="a RelBench-3 folder (default: the real-shaped shop)")  # fmt: skip
    parser.add_argument("--recipes", nargs="+", default=["tiny", "plurel-paper"],
                        choices=sorted(RECIPES),
                        help="models to time, with random weights (default both)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="scoring time per recipe and thread setting (default 20)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="items per batch (default 8)")
    parser.add_argument("--ctx-len", type=int, help="cells per item (default: the recipe's)")
    parser.add_argument("--text-model", default=DEFAULT_MODEL,
                        help="sentence encoder embedding the store (default "
                             "%(default)s)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run_all(args)
    print(json.dumps(figures) if args.json else "\n".join(summary(figures)))


if __name__ == "__main__":
    main()
