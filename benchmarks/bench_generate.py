"""Generation speed and memory of the default Config, one process on one core.

    python benchmarks/bench_generate.py                 # seeds 0-29, a table + summary
    python benchmarks/bench_generate.py --json          # one JSON object
    python benchmarks/bench_generate.py --seeds 0-2 --write /tmp/bench-out
    python benchmarks/bench_generate.py --write /tmp/bench-out \
        --reference-python /tmp/plurel-ref/bin/python     # side by side with PluRel 1.1.0

Times `generate_database(seed, Config())` per seed with `time.perf_counter`. Cells are
rows × columns summed over tables, keys and time column included (`num_cells`);
cells_per_s = total cells / total generation seconds. Peak RSS is the process's high-water
mark (`ru_maxrss`). With --write each database is also written as a RelBench-3 folder
(`write_dataset`: tables, manifest, plurel.json describing the autocomplete tasks, README;
with --write-tasks also every task folder), timed separately: write_s_total, and
generate_and_write_s = generation + write seconds summed over seeds.

--reference-python runs benchmarks/plurel_reference.py under that interpreter (one with
`plurel` installed), after our side, on the same seeds and CPU: PluRel's default Config,
its generation (make_db + reindex) and its write (Database.save) timed apart. Both sides
count cells the same way, each of its own databases (same seeds, other random draws).
Speed-ups, ours over PluRel's:
- generation, median: median over seeds of cells / generation s, ours ÷ PluRel's;
- generation, total: PluRel's total generation s ÷ ours;
- generation + write, median: median over seeds of cells / (generation + write s), ours
  ÷ PluRel's;
- generation + write, total: PluRel's total (generation + write) s ÷ ours.
The 1-minute load average is recorded before, between and after the two sides.

Targets: >= 500,000 cells/s and <= 400 MB peak RSS; generation + write (median) >= 15×
PluRel 1.1.0.
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
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import cpu_model, pin_to_one_cpu  # noqa: E402

from plurel_ray.config import Config  # noqa: E402
from plurel_ray.synth.database import generate_database  # noqa: E402

TARGET_CELLS_PER_S = 500_000
TARGET_PEAK_RSS_MB = 400.0
TARGET_SPEEDUP_WITH_WRITE = 15.0
REFERENCE_DRIVER = Path(__file__).with_name("plurel_reference.py")


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


def _median_rate(per_seed: list[dict], with_write: bool) -> float:
    """Median over seeds of cells per second of generation (and write)."""
    return statistics.median(
        e["cells"] / (e["seconds"] + (e["write_s"] if with_write else 0.0)) for e in per_seed
    )


def run(seeds: range, write_dir: Path | None, write_tasks: bool = False) -> dict:
    """Generate every seed once and return the figures (see the module docstring).

    Args:
        seeds: the seeds to generate, in order, in this process.
        write_dir: where to also write each database as a dataset folder, or None.
        write_tasks: write every autocomplete task's folder too (`--write-tasks`).
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
            write_dataset(db, write_dir / f"seed-{seed:06d}", config, overwrite=True,
                          write_tasks=write_tasks)  # fmt: skip
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
        "median_cells_per_s": _median_rate(per_seed, with_write=False),
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
        result["write_tasks"] = write_tasks
        result["generate_and_write_s"] = total_s + write_total
        result["median_cells_per_s_with_write"] = _median_rate(per_seed, with_write=True)
    return result


def run_reference(python: str, seeds: range, out: Path) -> dict:
    """PluRel's figures from `plurel_reference.py` under `python`, with the same totals
    and medians as `run` reports for ours.

    Args:
        python: an interpreter that has `plurel` installed.
        seeds: the seeds to generate.
        out: where PluRel writes the databases.
    """
    done = subprocess.run(
        [python, str(REFERENCE_DRIVER), "--seeds", f"{seeds.start}-{seeds.stop - 1}",
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"{REFERENCE_DRIVER.name} failed under {python}: {done.stderr.strip()[-2000:]}")
    ref = json.loads(done.stdout.splitlines()[-1])
    per_seed = ref["per_seed"]
    total_s = sum(e["seconds"] for e in per_seed)
    write_total = sum(e["write_s"] for e in per_seed)
    return {**ref, "total_cells": sum(e["cells"] for e in per_seed), "total_s": total_s,
            "write_s_total": write_total, "generate_and_write_s": total_s + write_total,
            "median_cells_per_s": _median_rate(per_seed, with_write=False),
            "median_cells_per_s_with_write": _median_rate(per_seed, with_write=True)}  # fmt: skip


def speedups(ours: dict, ref: dict) -> dict:
    """Ours over PluRel's, as the module docstring defines them.

    Args:
        ours: `run`'s result (with a write directory).
        ref: `run_reference`'s result.
    """
    return {
        "generation_median": ours["median_cells_per_s"] / ref["median_cells_per_s"],
        "generation_total": ref["total_s"] / ours["total_s"],
        "with_write_median": ours["median_cells_per_s_with_write"]
        / ref["median_cells_per_s_with_write"],
        "with_write_total": ref["generate_and_write_s"] / ours["generate_and_write_s"],
    }


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
        tasks = "task folders written" if r["write_tasks"] else "tasks derived"
        lines += [
            f"write        {r['write_s_total']:>12.2f} s total ({tasks}; not in cells/s)",
            f"gen + write  {r['generate_and_write_s']:>12.2f} s total, median "
            f"{r['median_cells_per_s_with_write']:,.0f} cells/s",
        ]
    if "reference" in r:
        lines += _reference_lines(r)
    lines.append(
        f"machine: {m['cpu']} (pinned to cpu {m['pinned_cpu']}), python {m['python']}, "
        f"numpy {m['numpy']}"
    )
    return "\n".join(lines)


def _reference_lines(r: dict) -> list[str]:
    ref, up, load = r["reference"], r["speedups"], r["load_average"]
    v = ref["versions"]
    rows = [("generation s, total", r["total_s"], ref["total_s"], up["generation_total"]),
            ("generation cells/s, median", r["median_cells_per_s"], ref["median_cells_per_s"],
             up["generation_median"]),
            ("write s, total", r["write_s_total"], ref["write_s_total"], None),
            ("gen + write s, total", r["generate_and_write_s"], ref["generate_and_write_s"],
             up["with_write_total"]),
            ("gen + write cells/s, median", r["median_cells_per_s_with_write"],
             ref["median_cells_per_s_with_write"], up["with_write_median"])]  # fmt: skip
    lines = ["", f"side by side with PluRel {v['plurel']} (relbench {v['relbench']}, torch "
             f"{v['torch']}, python {v['python']}), same seeds, one core:",
             f"{'':<28} {'plurel-ray':>12} {'PluRel':>12} {'speed-up':>9}"]  # fmt: skip
    for label, ours, theirs, ratio in rows:
        shown = "" if ratio is None else f"{ratio:>8.1f}x"
        lines.append(f"{label:<28} {ours:>12,.2f} {theirs:>12,.2f} {shown:>9}")
    met = up["with_write_median"] >= TARGET_SPEEDUP_WITH_WRITE
    lines += [f"gen + write speed-up (median) target >= {TARGET_SPEEDUP_WITH_WRITE:g}x: "
              f"{'met' if met else 'NOT met'}",
              "load average (1 min) before / between / after: "
              + " / ".join(f"{x:.2f}" for x in load)]  # fmt: skip
    return lines


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
    parser.add_argument(
        "--write-tasks",
        action="store_true",
        help="with --write: write every autocomplete task's folder too",
    )
    parser.add_argument(
        "--reference-python", metavar="PYTHON",
        help="also run PluRel (plurel_reference.py) under this interpreter and compare; "
        "needs --write (PluRel writes to DIR/plurel-reference)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if (args.write_tasks or args.reference_python) and args.write is None:
        parser.error("--write-tasks and --reference-python need --write DIR")
    write_dir = None if args.write is None else args.write.expanduser()
    load = [os.getloadavg()[0]]
    result = run(args.seeds, write_dir, args.write_tasks)
    if args.reference_python:
        load.append(os.getloadavg()[0])
        ref = run_reference(args.reference_python, args.seeds, write_dir / "plurel-reference")
        load.append(os.getloadavg()[0])
        result.update(reference=ref, speedups=speedups(result, ref), load_average=load)
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
