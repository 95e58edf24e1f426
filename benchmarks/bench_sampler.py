"""Context sampler throughput on default synthetic databases, one process on one core.

    python benchmarks/bench_sampler.py                  # 4 databases, a summary
    python benchmarks/bench_sampler.py --json           # one JSON object
    python benchmarks/bench_sampler.py --dbs 2 --batches 5 --batch-size 16

Generates `--dbs` default databases (`generate_database(seed, Config())`), turns each
into a node store and times `Sampler.batch` over `--tasks-per-store` autocomplete tasks
of every store (128 × 1024 by default, one rayon thread, process pinned to one CPU):

- compact_batches_per_s: compact batches (ids only) per second; contexts_per_s =
  compact_batches_per_s × batch_size;
- batches_per_s: full batches (bfloat16 embeddings gathered per position); skipped,
  with a note, when no embeddings can be made;
- preprocess_s_median: median seconds of `plurel_ray.store.preprocess.preprocess` per
  database.

Until the preprocessor lands (`plurel_ray.store.preprocess` missing), stores are
written by tests/store_builder.py from the generated tables (every feature column an
autocomplete task, pseudo-embeddings of width 384), preprocess_s_median is null, and
"store_writer" says so.

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

from plurel_ray.autocomplete import feature_columns  # noqa: E402
from plurel_ray.config import Config  # noqa: E402
from plurel_ray.store.sampler import Sampler, Source, read_meta  # noqa: E402
from plurel_ray.synth.database import GeneratedDatabase, generate_database  # noqa: E402

TARGET_BATCHES_PER_S = 25.0
EMBEDDING_DIM = 384


def _pin_to_one_cpu() -> int | None:
    """Pin this process to its first allowed CPU; the CPU, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _builder_store(db: GeneratedDatabase, out: Path) -> Path:
    """The store of `db` as tests/store_builder.py writes it (until preprocess exists)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from store_builder import Table, write_store

    tables, tasks = [], []
    for spec in db.schema.tables:
        df = db.tables[spec.name]
        columns = {}
        for col in feature_columns(spec, df):
            values = df[col]
            kind = values.dtype.kind
            columns[col] = values.to_numpy(object if kind in "OU" else None)
            if kind in "biuf":
                tasks.append(
                    {
                        "name": f"{spec.name}-{col}",
                        "kind": "autocomplete",
                        "entity_table": spec.name,
                        "target_col": col,
                        "tables": {"train": spec.name},
                        "remove_columns": [],
                    }
                )
        time_s = None
        if spec.time_col is not None:
            time_s = df[spec.time_col].to_numpy("datetime64[s]").astype(np.int64)
        fkeys = {c: (p, df[c].fillna(-1).to_numpy(np.int64)) for c, p in spec.fkeys}
        tables.append(Table(spec.name, len(df), columns, time_s, fkeys))
    return write_store(out, tables, tasks, embedding_dim=EMBEDDING_DIM, name=f"plurel-{db.seed}")


def build_stores(dbs: int, work: Path) -> tuple[list[Path], list[float] | None, str]:
    """Generate and store `dbs` databases; (stores, preprocess seconds, writer)."""
    try:
        from plurel_ray.store.preprocess import preprocess
    except ImportError:
        preprocess = None
    stores, seconds = [], []
    for seed in range(dbs):
        db = generate_database(seed, Config())
        if preprocess is None:
            stores.append(_builder_store(db, work / f"store-{seed}"))
            continue
        from plurel_ray.relbench_io import write_dataset

        dataset = write_dataset(db, work / f"db-{seed}", Config())
        t0 = time.perf_counter()
        stores.append(Path(preprocess(dataset, work / f"store-{seed}")))
        seconds.append(time.perf_counter() - t0)
    if preprocess is None:
        return stores, None, "tests/store_builder.py (plurel_ray.store.preprocess not available)"
    return stores, seconds, "plurel_ray.store.preprocess"


def _ensure_embeddings(stores: list[Path]) -> str | None:
    """Embed stores that lack embeddings; a note when that is impossible."""
    missing = [s for s in stores if "embedding" not in read_meta(s)]
    if not missing:
        return None
    try:
        from plurel_ray.store.embed import embed
    except ImportError:
        return "full form skipped: stores have no embeddings and plurel_ray.store.embed is missing"
    embed(missing)
    return None


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
    dbs: int, tasks_per_store: int, batch_size: int, ctx_len: int, batches: int, full: bool
) -> dict:
    """Build the stores, then time the sampler (see the module docstring)."""
    pinned = _pin_to_one_cpu()
    with tempfile.TemporaryDirectory(prefix="bench-sampler-") as tmp:
        stores, prep, writer = build_stores(dbs, Path(tmp))
        rng = np.random.default_rng(0)
        sources = []
        for store in stores:
            tasks = [t["name"] for t in read_meta(store)["tasks"] if t["kind"] == "autocomplete"]
            picked = rng.choice(tasks, size=min(tasks_per_store, len(tasks)), replace=False)
            sources += [Source(store, task=str(name)) for name in picked]
        sampler = Sampler(sources, batch_size=batch_size, ctx_len=ctx_len, num_threads=1)
        compact_per_s, fill = _time_batches(sampler, batches, compact=True)
        note = _ensure_embeddings(stores) if full else "full form skipped (--skip-full)"
        full_per_s = None
        if note is None:
            sampler = Sampler(sources, batch_size=batch_size, ctx_len=ctx_len, num_threads=1)
            full_per_s, _ = _time_batches(sampler, max(batches // 4, 2), compact=False)
        cells = [read_meta(s)["counts"]["cells"] for s in stores]
    result = {
        "contexts_per_s": compact_per_s * batch_size,
        "compact_batches_per_s": compact_per_s,
        "batches_per_s": full_per_s,
        "preprocess_s_median": statistics.median(prep) if prep else None,
        "store_writer": writer,
        "mean_cells_per_context": fill,
        "stores": len(stores),
        "store_cells": cells,
        "sources": len(sources),
        "items": sampler.num_items,
        "batch_size": batch_size,
        "ctx_len": ctx_len,
        "batches_timed": batches,
        "machine": {"cpu": _cpu_model(), "pinned_cpu": pinned, "python": platform.python_version()},
        "target": {"compact_batches_per_s": TARGET_BATCHES_PER_S},
        "target_met": compact_per_s >= TARGET_BATCHES_PER_S if batch_size == 128 else None,
    }
    if note is not None:
        result["note"] = note
    return result


def _report(r: dict) -> str:
    full = "skipped" if r["batches_per_s"] is None else f"{r['batches_per_s']:.2f}"
    prep = r["preprocess_s_median"]
    lines = [
        f"{r['stores']} stores ({', '.join(f'{c:,}' for c in r['store_cells'])} cells), "
        f"{r['sources']} tasks, {r['items']:,} items; batches {r['batch_size']} × {r['ctx_len']}",
        f"compact batches/s  {r['compact_batches_per_s']:8.2f}   target >= "
        f"{TARGET_BATCHES_PER_S:.0f}   {'met' if r['target_met'] else 'NOT met'}",
        f"contexts/s         {r['contexts_per_s']:8.0f}   ({r['mean_cells_per_context']:.0f} "
        "real cells per context)",
        f"full batches/s     {full:>8}",
        f"preprocess s/db    {'n/a' if prep is None else f'{prep:8.2f}'}   ({r['store_writer']})",
        f"machine: {r['machine']['cpu']} (pinned to cpu {r['machine']['pinned_cpu']})",
    ]
    if "note" in r:
        lines.append(r["note"])
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
    args = parser.parse_args(argv)
    result = run(
        args.dbs,
        args.tasks_per_store,
        args.batch_size,
        args.ctx_len,
        args.batches,
        full=not args.skip_full,
    )
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
