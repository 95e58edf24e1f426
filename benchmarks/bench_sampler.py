"""Context sampler throughput on default synthetic databases, one process on one core.

    python benchmarks/bench_sampler.py                  # 4 databases, a summary
    python benchmarks/bench_sampler.py --json           # one JSON object
    python benchmarks/bench_sampler.py --dbs 2 --batches 5 --batch-size 16
    python benchmarks/bench_sampler.py --rules strict   # one setting only

Generates `--dbs` default databases (`generate_database(seed, Config())`), turns each
into a node store and times `Sampler.batch` over `--tasks-per-store` autocomplete tasks
of every store (128 × 1024 by default, one rayon thread, process pinned to one CPU):

- compact_batches_per_s: compact batches (ids only) per second; contexts_per_s =
  compact_batches_per_s × batch_size;
- batches_per_s: full batches (bfloat16 embeddings gathered per position);
- preprocess_s_median: median seconds of `plurel_ray.store.preprocess` per
  database.

Every store is embedded (all-MiniLM-L6-v2, 384-d) before timing unless --skip-full; the
embedding time is not part of any figure. `--rules` names the context rules to time
(docs/contexts.md; default both, in one run on the same databases): the stores are
preprocessed under each, and the top-level figures are those of the first named; each
setting's own are under "by_rules".

Target: >= 25 compact batches/s (3,200 contexts/s) of 128 × 1024 on one core.
"""

from __future__ import annotations

import os

# One core: BLAS/OpenMP and rayon read these at first use, so they are set before any
# import that could start a pool.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import cpu_model, pin_to_one_cpu  # noqa: E402

from plurel_ray.config import Config  # noqa: E402
from plurel_ray.dataset.relbench_io import write_dataset  # noqa: E402
from plurel_ray.store.embedding import embed  # noqa: E402
from plurel_ray.store.preprocessing import preprocess  # noqa: E402
from plurel_ray.store.sampler import Sampler, Source, read_meta  # noqa: E402
from plurel_ray.synth.database import generate_database  # noqa: E402

TARGET_BATCHES_PER_S = 25.0


def build_stores(dbs: int, work: Path, rules: str, full: bool) -> tuple[list[Path], list[float]]:
    """Generate (once per seed), write, preprocess under `rules` and, for the full form,
    embed `dbs` databases; (stores, preprocess seconds)."""
    stores, seconds = [], []
    for seed in range(dbs):
        dataset = work / f"db-{seed}"
        if not dataset.exists():
            write_dataset(generate_database(seed, Config()), dataset, Config())
        t0 = time.perf_counter()
        stores.append(preprocess(dataset, work / rules, context_rules=rules))
        seconds.append(time.perf_counter() - t0)
    if full:
        embed(stores, progress=False)
    return stores, seconds


def _time_batches(sampler: Sampler, count: int, compact: bool) -> tuple[float, float]:
    """(batches per second, mean real cells per real sequence) over `count` batches."""
    sampler.batch(0, compact)  # warm-up: page in the maps, size the workspaces
    cells, seqs = 0, 0
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        batch = sampler.batch(i, compact)
        real = batch["true_batch_size"]
        cells += int((~batch["is_padding"][:real]).sum())
        seqs += real
    return count / (time.perf_counter() - t0), cells / max(seqs, 1)


def run(
    dbs: int,
    tasks_per_store: int,
    batch_size: int,
    ctx_len: int,
    batches: int,
    full: bool,
    rules: list[str] = ("reference", "strict"),
) -> dict:
    """Time the sampler under each of `rules` on the same databases (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench-sampler-") as tmp:
        by_rules = {
            r: _run_one(Path(tmp), r, dbs, tasks_per_store, batch_size, ctx_len, batches, full)
            for r in rules
        }
    result = dict(by_rules[rules[0]])
    result["by_rules"] = {
        r: {k: f[k] for k in ("compact_batches_per_s", "contexts_per_s", "batches_per_s",
                              "mean_cells_per_context", "target_met")}
        for r, f in by_rules.items()
    }  # fmt: skip
    return result


def _run_one(
    work: Path,
    rules: str,
    dbs: int,
    tasks_per_store: int,
    batch_size: int,
    ctx_len: int,
    batches: int,
    full: bool,
) -> dict:
    """The figures of one setting: its stores are preprocessed in `work/<rules>`."""
    pinned = pin_to_one_cpu()
    stores, prep = build_stores(dbs, work, rules, full)
    rng = np.random.default_rng(0)
    sources = []
    for store in stores:
        tasks = [t["name"] for t in read_meta(store)["tasks"] if t["kind"] == "autocomplete"]
        picked = rng.choice(tasks, size=min(tasks_per_store, len(tasks)), replace=False)
        sources += [Source(store, task=str(name)) for name in picked]
    sampler = Sampler(sources, batch_size=batch_size, ctx_len=ctx_len, num_threads=1)
    compact_per_s, fill = _time_batches(sampler, batches, compact=True)
    note = None if full else "full form skipped (--skip-full)"
    full_per_s = None
    if full:
        sampler = Sampler(sources, batch_size=batch_size, ctx_len=ctx_len, num_threads=1)
        full_per_s, _ = _time_batches(sampler, max(batches // 4, 2), compact=False)
    cells = [read_meta(s)["counts"]["cells"] for s in stores]
    result = {
        "context_rules": sampler.context_rules,
        "contexts_per_s": compact_per_s * batch_size,
        "compact_batches_per_s": compact_per_s,
        "batches_per_s": full_per_s,
        "preprocess_s_median": statistics.median(prep),
        "preprocess_s_max": max(prep),
        "mean_cells_per_context": fill,
        "stores": len(stores),
        "store_cells": cells,
        "sources": len(sources),
        "items": sampler.num_items,
        "batch_size": batch_size,
        "ctx_len": ctx_len,
        "batches_timed": batches,
        "machine": {"cpu": cpu_model(), "pinned_cpu": pinned, "python": platform.python_version()},
        "target": {"compact_batches_per_s": TARGET_BATCHES_PER_S},
        "target_met": compact_per_s >= TARGET_BATCHES_PER_S if batch_size == 128 else None,
    }
    if note is not None:
        result["note"] = note
    return result


def _report(r: dict) -> str:
    full = "skipped" if r["batches_per_s"] is None else f"{r['batches_per_s']:.2f}"
    lines = [
        f"context rules: {r['context_rules']}",
        f"{r['stores']} stores ({', '.join(f'{c:,}' for c in r['store_cells'])} cells), "
        f"{r['sources']} tasks, {r['items']:,} items; batches {r['batch_size']} × {r['ctx_len']}",
        f"compact batches/s  {r['compact_batches_per_s']:8.2f}   target >= "
        f"{TARGET_BATCHES_PER_S:.0f}   {'met' if r['target_met'] else 'NOT met'}",
        f"contexts/s         {r['contexts_per_s']:8.0f}   ({r['mean_cells_per_context']:.0f} "
        "real cells per context)",
        f"full batches/s     {full:>8}",
        f"preprocess s/db    {r['preprocess_s_median']:8.3f}   median (max "
        f"{r['preprocess_s_max']:.3f}; target <= 0.5)",
        f"machine: {r['machine']['cpu']} (pinned to cpu {r['machine']['pinned_cpu']})",
    ]
    if "note" in r:
        lines.append(r["note"])
    for rules, f in r["by_rules"].items():
        lines.append(
            f"{rules:>9}: {f['compact_batches_per_s']:8.2f} compact batches/s, "
            f"{f['mean_cells_per_context']:.0f} real cells per context"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", type=int, default=4, help="databases to generate (default 4)")
    parser.add_argument("--tasks-per-store", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--ctx-len", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=40, help="compact batches timed")
    parser.add_argument("--skip-full", action="store_true", help="time the compact form only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--rules", nargs="+", choices=("reference", "strict"), default=["reference", "strict"],
        help="context rules to time, on the same databases (default: both)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    result = run(
        args.dbs,
        args.tasks_per_store,
        args.batch_size,
        args.ctx_len,
        args.batches,
        full=not args.skip_full,
        rules=list(dict.fromkeys(args.rules)),
    )
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
