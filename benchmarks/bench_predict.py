"""Prediction throughput of `plurel-ray predict`: items per second with 1 and 2 model
actors over Ray Data, on CPU, for the tiny and the plurel-paper model.

    python benchmarks/bench_predict.py                 # a summary
    python benchmarks/bench_predict.py --json          # one JSON object
    python benchmarks/bench_predict.py --items 256 --recipes tiny --actors 1 2 4

Predicts the first `--items` items of a task's test split (default `orders-amount` of
the real-shaped `shop` of tests/realshaped.py) exactly as the command does
(`pipeline.predict.prepare` then `run_actors`: `map_batches` into `ItemPredictor`
actors, each on cpus // K torch and sampler threads), with a randomly initialised
checkpoint of each recipe (its ctx_len unless `--ctx-len`). Ray is embedded with the
machine's CPUs; the store is built first (not timed).

- items_per_s: items over the wall time of the whole run (actor start, model load,
  sampler mapping, predictions, gathering);
- steady_items_per_s: (items − a warm-up run's items) over (its time − the warm-up
  run's): the rate once actors run, start-up cancelled out;
- speedup: steady_items_per_s with K actors over 1 actor. K actors on C cores each get
  C // K threads, so the gain over 1 actor is what the thread-level parallelism of one
  actor leaves on the table.

The machine (CPU model, clock, SIMD/AMX flags, CPUs) and the load average are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a bare checkout
sys.path.insert(0, str(REPO / "tests"))  # realshaped.py: the default database

from machine import cpu_info, cpu_line  # noqa: E402

from plurel_ray.model import init_model  # noqa: E402
from plurel_ray.model.checkpoint import save_checkpoint  # noqa: E402
from plurel_ray.pipeline.predict import PredictRequest, prepare, run_actors  # noqa: E402
from plurel_ray.predict.core import ContextSettings  # noqa: E402
from plurel_ray.store.encoder import DEFAULT_MODEL, TextEncoder, text_model_name  # noqa: E402
from plurel_ray.train import RECIPES, recipe  # noqa: E402

WARM_UP_ITEMS = 32


def checkpoint(work: Path, name: str, text_model: str, dim: int) -> Path:
    """A random checkpoint of recipe `name` expecting stores embedded by `text_model`."""
    run = recipe(name, d_text=dim)
    extra = {"train": run.train.to_dict(), "text_encoder": {"name": text_model, "dim": dim}}
    return save_checkpoint(work / name, init_model(run.model, 0), run.model, extra)


def timed_run(request: PredictRequest, prepared, items: int) -> float:
    """Seconds to predict the first `items` items with `request.num_actors` actors."""
    subset = type(prepared)(**{**prepared.__dict__, "wanted": prepared.wanted[:items]})
    settings = request.settings.resolved(prepared.pretrained)
    start = time.perf_counter()
    predictions = run_actors(request, subset, settings)
    seconds = time.perf_counter() - start
    assert len(predictions) == items and np.isfinite(predictions).all()
    return seconds


def measure(args: argparse.Namespace, work: Path, name: str, dim: int) -> dict:
    ckpt = checkpoint(work, name, text_model_name(str(args.text_model)), dim)
    results = {}
    for k in args.actors:
        request = PredictRequest(str(ckpt), str(args.dataset), args.task, num_actors=k,
                                 settings=ContextSettings(ctx_len=args.ctx_len),
                                 storage=str(work / "runs"), progress=False)  # fmt: skip
        prepared = prepare(request)
        items = min(args.items, len(prepared.wanted))
        warm = timed_run(request, prepared, min(WARM_UP_ITEMS, items))
        full = timed_run(request, prepared, items)
        # Start-up varies from run to run: a difference below zero says only that it hid
        # the predictions, and is reported as 0 (no estimate).
        steady = (items - min(WARM_UP_ITEMS, items)) / (full - warm) if full > warm else 0.0
        results[str(k)] = {"actors": k, "items": items, "seconds": full,
                           "items_per_s": items / full, "warm_up_s": warm,
                           "steady_items_per_s": steady, "load_avg_1m": os.getloadavg()[0],
                           "ctx_len": prepared.pretrained.ctx_len if args.ctx_len is None
                           else args.ctx_len}  # fmt: skip
    base = results[str(args.actors[0])]["steady_items_per_s"]
    for row in results.values():
        row["speedup"] = row["steady_items_per_s"] / base if base else 0.0
    return results


def run_all(args: argparse.Namespace) -> dict:
    import ray

    from plurel_ray.pipeline.ray_stages import ensure_ray

    machine = cpu_info()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.dataset is None:
            from realshaped import write_all

            args.dataset = write_all(work / "real")["shop"]
        ensure_ray(num_cpus=machine["cpus"])
        try:
            dim = TextEncoder.load(str(args.text_model), device="cpu").dim
            recipes = {name: measure(args, work, name, dim) for name in args.recipes}
        finally:
            ray.shutdown()
    return {"machine": {**machine, "torch": torch.__version__}, "task": args.task,
            "recipes": recipes}  # fmt: skip


def summary(figures: dict) -> list[str]:
    m = figures["machine"]
    lines = [f"{cpu_line(m)}; task {figures['task']}"]
    for name, runs in figures["recipes"].items():
        for r in runs.values():
            lines.append(
                f"{name:>13} {r['actors']} actor(s): {r['items_per_s']:8.2f} items/s end to end, "
                f"{r['steady_items_per_s']:8.2f} steady (x{r['speedup']:.2f}), {r['items']} "
                f"items in {r['seconds']:.1f} s, ctx_len {r['ctx_len']}, "
                f"load {r['load_avg_1m']:.1f}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", type=Path,
                        help="a RelBench-3 folder (default: the real-shaped shop)")  # fmt: skip
    parser.add_argument("--task", default="orders-amount", help="the task (default %(default)s)")
    parser.add_argument("--recipes", nargs="+", default=["tiny", "plurel-paper"],
                        choices=sorted(RECIPES),
                        help="models, random weights (default both)")  # fmt: skip
    parser.add_argument("--actors", nargs="+", type=int, default=[1, 2],
                        help="actor counts, the first the baseline (default 1 2)")  # fmt: skip
    parser.add_argument("--items", type=int, default=512,
                        help="items predicted per run (default %(default)s)")  # fmt: skip
    parser.add_argument("--ctx-len", type=int, help="cells per item (default: the recipe's)")
    parser.add_argument("--text-model", default=DEFAULT_MODEL,
                        help="sentence encoder embedding the store "
                             "(default %(default)s)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run_all(args)
    print(json.dumps(figures) if args.json else "\n".join(summary(figures)))


if __name__ == "__main__":
    main()
