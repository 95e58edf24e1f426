"""Generation at scale: many tiny databases, packed, driver killed midway, resumed, verified.

    python benchmarks/bench_scale.py                          # 100,000 databases, a summary
    python benchmarks/bench_scale.py --num-dbs 2000 --json    # quicker; one JSON object

Runs `plurel-ray generate --layout packed --ray` (an embedded Ray of `--actors` CPUs and
as many generator actors) over seeds 0..N-1 of a tiny config (2 tables of 5-10 rows, 2-3
columns) in a fresh output, as a separate driver process:
1. the first driver is killed (SIGKILL to its process group, Ray's processes included)
   once the index lists `--kill-at` of the databases;
2. a second driver runs the same command to the end (it takes the dead run's lease over,
   removes its temporaries and orphan shards, and leaves out the seeds already indexed);
3. `verify_run` reads every shard back against its hashes.
Checked: every seed exactly once in the index, all complete; verify finds no problem; no
temporary (`.runs/`), index part or orphan shard left. Reported: seconds per database
(wall seconds × actors / databases, both drivers, Ray start-up included), databases/s,
each driver's peak RSS (sampled every 0.2 s from /proc; the driver process only, not
Ray's), the output's file count, verify time. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_info

SAMPLE_S = 0.2


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _indexed(out: Path) -> int:
    """Databases the output's index parts list so far (what a kill cannot take back)."""
    import pyarrow.parquet as pq

    total = 0
    for part in (out / "_index").glob("[0-9]*.parquet"):
        with contextlib.suppress(OSError):  # merged and deleted as we look
            total += pq.read_metadata(part).num_rows
    return total


def _driver(command: list[str], out: Path, kill_at: int | None, cpus: int) -> dict:
    """Run one driver; kill it once `kill_at` databases are indexed (None: to the end)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": str(cpus)}
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    peak, killed, cpu = 0.0, False, 0.0
    while proc.poll() is None:
        peak = max(peak, _rss_mb(proc.pid))
        cpu = _cpu_s(proc.pid) or cpu
        if kill_at is not None and _indexed(out) >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(SAMPLE_S)
    stdout, stderr = proc.communicate()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak, "killed": killed,
            "cpu_s": cpu,
            "returncode": proc.returncode, "stdout": stdout, "stderr": stderr[-2000:]}  # fmt: skip


def _checks(out: Path, num_dbs: int) -> dict:
    import pyarrow.parquet as pq

    from plurel_ray.pipeline.verify import verify_run

    start = time.perf_counter()
    report = verify_run(str(out))
    verify_s = time.perf_counter() - start
    index = pq.read_table(out / "_index.parquet")
    seeds = index["seed"].to_pylist()
    statuses = set(index["status"].to_pylist())
    files = [p for p in out.rglob("*") if p.is_file()]
    return {
        "every_seed_once": sorted(seeds) == list(range(num_dbs)),
        "all_complete": statuses <= {"generated", "skipped"},
        "verify_ok": report.ok,
        "verify_problems": report.problems[:5],
        "no_temporaries": not list(out.glob(".runs/*")) and not list(out.glob("_index/*")),
        "no_orphans": not report.orphans,
        "verify_s": verify_s,
        "shards": report.shards,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }


def run(num_dbs: int, actors: int, kill_fraction: float, work: Path,
        dbs_per_shard: int | None = None) -> dict:  # fmt: skip
    """The whole benchmark in `work` (see the module docstring); returns the figures."""
    from plurel_ray.config import Choices, Config, DatabaseParams

    config = work / "tiny.yaml"
    Config(database_params=DatabaseParams(
        num_tables_choices=Choices("range", [2, 2]),
        num_rows_entity_table_choices=Choices("range", [5, 8]),
        num_rows_activity_table_choices=Choices("range", [5, 10]),
        num_cols_choices=Choices("range", [2, 3]),
    )).save(config)  # fmt: skip
    out = work / "out"
    command = [sys.executable, "-m", "plurel_ray.cli", "generate", "--num-dbs", str(num_dbs),
               "--out", str(out), "--config", str(config), "--layout", "packed", "--ray",
               "--num-actors", str(actors), "--no-progress"]  # fmt: skip
    if dbs_per_shard is not None:
        command += ["--dbs-per-shard", str(dbs_per_shard)]
    first = _driver(command, out, kill_at=max(1, int(num_dbs * kill_fraction)), cpus=actors)
    indexed_at_kill = _indexed(out)
    second = _driver(command, out, kill_at=None, cpus=actors)
    wall = first["seconds"] + second["seconds"]
    result = {
        "num_dbs": num_dbs,
        "actors": actors,
        "killed_after_s": first["seconds"],
        "killed": first["killed"],
        "indexed_at_kill": indexed_at_kill,
        "resume_s": second["seconds"],
        "resume_ok": second["returncode"] == 0,
        "resume_summary": second["stdout"].strip().splitlines()[:1],
        "wall_s": wall,
        "dbs_per_s": num_dbs / wall,
        "s_per_db_per_actor": wall * actors / num_dbs,
        "driver_peak_rss_mb": {"killed": first["peak_rss_mb"], "resume": second["peak_rss_mb"]},
        # the drivers' own CPU (start-up, Ray client, index): what one driver spends per
        # database, the figure a projection to many nodes divides by
        "driver_cpu_s": first["cpu_s"] + second["cpu_s"],
        "driver_cpu_ms_per_db": 1000 * (first["cpu_s"] + second["cpu_s"]) / num_dbs,
        "machine": cpu_info(),
        "load_avg": os.getloadavg(),
    }
    for name, driver in (("first", first), ("resume", second)):
        if driver["returncode"] not in (0, -signal.SIGKILL):
            result[f"{name}_stderr"] = driver["stderr"]
    result.update(_checks(out, num_dbs))
    checks = ("killed", "resume_ok", "every_seed_once", "all_complete", "verify_ok",
              "no_temporaries", "no_orphans")  # fmt: skip
    result["passed"] = all(result[c] for c in checks)
    return result


def _report(r: dict) -> str:
    m = r["machine"]
    return "\n".join([
        f"{r['num_dbs']:,} tiny databases, packed, {r['actors']} actors, {r['shards']} shards, "
        f"{r['files']} files, {r['bytes'] / 1e6:,.1f} MB",
        f"first driver killed after {r['killed_after_s']:.1f} s with {r['indexed_at_kill']:,} "
        f"databases indexed; resumed in {r['resume_s']:.1f} s",
        f"{r['dbs_per_s']:,.1f} databases/s, {r['s_per_db_per_actor'] * 1000:.1f} ms per "
        "database per actor (both drivers, Ray start-up included)",
        f"driver peak RSS: {r['driver_peak_rss_mb']['killed']:.0f} MB (killed run), "
        f"{r['driver_peak_rss_mb']['resume']:.0f} MB (resume); driver CPU "
        f"{r['driver_cpu_s']:.1f} s = {r['driver_cpu_ms_per_db']:.2f} ms per database",
        f"verify: {r['verify_s']:.1f} s, ok={r['verify_ok']}; every seed once="
        f"{r['every_seed_once']}, no temporaries={r['no_temporaries']}, "
        f"no orphans={r['no_orphans']}",
        f"machine: {m['model']}, {m['mhz']} MHz, {m['cpus']} CPUs, flags "
        f"{' '.join(m['flags'])}; load {r['load_avg'][0]:.2f}",
        "PASSED" if r["passed"] else "FAILED",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-dbs", type=int, default=100_000, metavar="N")
    parser.add_argument("--actors", type=int, default=2, metavar="K")
    parser.add_argument("--kill-at", type=float, default=0.5, metavar="F",
                        help="kill the first driver once this fraction is indexed")  # fmt: skip
    parser.add_argument("--dbs-per-shard", type=int, metavar="N")
    parser.add_argument("--work", type=Path, help="folder to run in (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(args.num_dbs, args.actors, args.kill_at, work, args.dbs_per_shard)
    print(json.dumps(result) if args.json else _report(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
