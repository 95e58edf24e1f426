"""Generation speed and memory of the default Config, one process on one core.

    python benchmarks/bench_generate.py                 # seeds 0-29, a table + summary
    python benchmarks/bench_generate.py --json          # one JSON object
    python benchmarks/bench_generate.py --seeds 0-2 --write /tmp/bench-out

Times `generate_database(seed, Config())` per seed with `time.perf_counter`. Cells are
rows × columns summed over tables, keys and time column included (`num_cells`);
cells_per_s = total cells / total generation seconds. Peak RSS is the process's high-water
mark (`ru_maxrss`). With --write each database is also written as a RelBench-3 folder; that
time is reported separately (write_s_total) and not part of cells_per_s.

Targets: >= 500,000 cells/s and <= 400 MB peak RSS.
"""

from __future__ import annotations

import os

# One core: BLAS and OpenMP pools read these when numpy is first imported, so they are
# set before any import that pulls numpy in. Otherwise the few matrix products spread
# over every core and the figure would not be a per-core rate.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import cpu_model, pin_to_one_cpu  # noqa: E402

from plurel_ray.config import Config  # noqa: E402
from plurel_ray.synth.database import generate_database  # noqa: E402

TARGET_CELLS_PER_S = 500_000
TARGET_PEAK_RSS_MB = 400.0


def _seed_range(text: str) -> range:
    try:
        lo, _, hi = text.partition("-")
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B (e.g. 0-29), got {text!r}") from None
    if not 0 <= first <= last:
        raise argparse.ArgumentTypeError(f"need 0 <= A <= B, got {text!r}")
    return range(first, last + 1)



def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024



def run(seeds: range, write_dir: Path | None) -> dict:
    """Generate every seed once and return the figures (see the module docstring).

    Args:
        seeds: the seeds to generate, in order, in this process.
        write_dir: where to also write each database as a dataset folder, or None.
    """
    config = Config()
    pinned = pin_to_one_cpu()
    write_dataset = None
    if write_dir is not None:
        from plurel_ray.dataset.relbench_io import write_dataset
    per_seed, write_total = [], 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        db = generate_database(seed, config)
        seconds = time.perf_counter() - t0
        entry = {
            "seed": seed,
            "seconds": seconds,
            "cells": db.num_cells,
            "tables": len(db.tables),
            "rows": sum(len(df) for df in db.tables.values()),
        }
        if write_dataset is not None:
            t0 = time.perf_counter()
            write_dataset(db, write_dir / f"seed-{seed:06d}", config, overwrite=True)
            entry["write_s"] = time.perf_counter() - t0
            write_total += entry["write_s"]
        per_seed.append(entry)
        del db  # so the next database's peak does not stack on this one's
    times = [e["seconds"] for e in per_seed]
    total_cells, total_s = sum(e["cells"] for e in per_seed), sum(times)
    result = {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "cells_per_s": total_cells / total_s,
        "peak_rss_mb": _peak_rss_mb(),
        "total_cells": total_cells,
        "total_s": total_s,
        "seeds": [seeds.start, seeds.stop - 1],
        "per_seed": per_seed,
        "machine": {
            "cpu": cpu_model(),
            "pinned_cpu": pinned,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "targets": {"cells_per_s": TARGET_CELLS_PER_S, "peak_rss_mb": TARGET_PEAK_RSS_MB},
    }
    result["targets_met"] = {
        "cells_per_s": result["cells_per_s"] >= TARGET_CELLS_PER_S,
        "peak_rss_mb": result["peak_rss_mb"] <= TARGET_PEAK_RSS_MB,
    }
    if write_dir is not None:
        result["write_s_total"] = write_total
    return result


def _report(r: dict) -> str:
    writes = "write_s_total" in r
    lines = [f"{'seed':>6} {'tables':>6} {'rows':>8} {'cells':>10} {'seconds':>8}"
             + (f" {'write_s':>8}" if writes else "")]  # fmt: skip
    for e in r["per_seed"]:
        lines.append(
            f"{e['seed']:>6} {e['tables']:>6} {e['rows']:>8,} {e['cells']:>10,} "
            f"{e['seconds']:>8.3f}" + (f" {e['write_s']:>8.3f}" if writes else "")
        )
    met = r["targets_met"]
    m = r["machine"]
    lines += [
        "",
        f"seeds {r['seeds'][0]}-{r['seeds'][1]}: {r['total_cells']:,} cells in "
        f"{r['total_s']:.2f} s (generation only)",
        f"median {r['median_s']:.3f} s/db, max {r['max_s']:.3f} s/db",
        f"cells/s      {r['cells_per_s']:>12,.0f}   target >= {TARGET_CELLS_PER_S:,}   "
        f"{'met' if met['cells_per_s'] else 'NOT met'}",
        f"peak RSS MB  {r['peak_rss_mb']:>12,.1f}   target <= {TARGET_PEAK_RSS_MB:,.0f}       "
        f"{'met' if met['peak_rss_mb'] else 'NOT met'}",
    ]
    if writes:
        lines.append(f"writing folders: {r['write_s_total']:.2f} s total (not in cells/s)")
    lines.append(
        f"machine: {m['cpu']} (pinned to cpu {m['pinned_cpu']}), python {m['python']}, "
        f"numpy {m['numpy']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=_seed_range, default=range(30), metavar="A-B",
        help="inclusive seed range (default 0-29)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--write", type=Path, metavar="DIR",
        help="also write DIR/seed-<seed:06d> (replacing it; timed separately)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    write_dir = None if args.write is None else args.write.expanduser()
    result = run(args.seeds, write_dir)
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
