"""PluRel 1.1.0 (the authors' release) generating and writing seeds, for a side by side
with bench_generate.py. Runs under an interpreter that has `plurel` installed, not ours:

    /tmp/plurel-ref/bin/python benchmarks/plurel_reference.py --seeds 0-29 --out /tmp/ref

Per seed, through PluRel's and RelBench's public API and in the order
`SyntheticDataset.get_db()` runs them with a cache_dir (which is how PluRel writes a
database): generation is `SyntheticDataset(seed, Config()).make_db()` and
`Database.reindex_pkeys_and_fkeys()`, the write is `Database.save(<out>/seed-<seed>/db)`
(one Parquet file per table), each timed with `time.perf_counter`. Cells are rows ×
columns summed over tables, keys and time column included, as bench_generate counts its
own. Prints one JSON object. Imports nothing of plurel_ray.
"""

from __future__ import annotations

import os

# One core, as bench_generate: thread pools read these when first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")  # PluRel shows a progress bar per table

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402


def _seeds(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def run(seeds: range, out: Path) -> dict:
    """Generate and write every seed with PluRel's default Config; the figures.

    Args:
        seeds: the seeds, in order, in this process.
        out: each database is written to `<out>/seed-<seed:06d>/db` (replaced).
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch  # after the thread variables above
    from plurel import Config, SyntheticDataset

    torch.set_num_threads(1)
    per_seed = []
    for seed in seeds:
        target = out / f"seed-{seed:06d}" / "db"
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.redirect_stdout(io.StringIO()):  # PluRel prints its progress
            t0 = time.perf_counter()
            db = SyntheticDataset(seed, Config()).make_db()
            db.reindex_pkeys_and_fkeys()
            generate_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            db.save(target)
            write_s = time.perf_counter() - t0
        cells = sum(t.df.shape[0] * t.df.shape[1] for t in db.table_dict.values())
        per_seed.append({"seed": seed, "seconds": generate_s, "write_s": write_s,
                         "cells": int(cells), "tables": len(db.table_dict)})  # fmt: skip
    return {
        "per_seed": per_seed,
        "versions": {"plurel": version("plurel"), "relbench": version("relbench"),
                     "torch": torch.__version__, "python": platform.python_version()},
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_seeds, default=range(30), metavar="A-B")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    args = parser.parse_args()
    print(json.dumps(run(args.seeds, args.out.expanduser())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
