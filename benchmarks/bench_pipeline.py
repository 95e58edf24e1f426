"""Databases/s of the generation pipeline: one process versus Ray Data with 2 actors.

    python benchmarks/bench_pipeline.py                  # 48 default databases, a summary
    python benchmarks/bench_pipeline.py --json           # one JSON object
    python benchmarks/bench_pipeline.py --num-dbs 8      # quicker, noisier

Both runs produce the same seeds with the default Config into fresh folders (generation
and the RelBench-3 write, as `jobs/generate.py` does):
- single: `run_generation(use_ray=False)` — the per-seed worker in this process;
- ray: `run_generation()` on an embedded `ray.init(num_cpus=2)` with 2 generator actors,
  timed from submission to the published index (actor start-up included; `ray.init`
  itself is reported apart as ray_init_s, a once-per-cluster cost).

speedup = ray_dbs_per_s / single_dbs_per_s (whole runs, start-up included).
overhead_frac is what Ray adds to the time of one database: the mean per-database time
inside the actors (the index's `seconds`) over the mean in the single process, minus 1;
it includes two actors sharing the machine. run_overhead_frac is the whole-run version,
(ray wall × actors) / single wall − 1, which also holds the actors' start-up and the
tail where one actor is idle — fixed costs that a longer run amortises.
Targets on a 2-core machine: speedup ≥ 1.7, overhead_frac < 0.05.

ray_fixed_s is the timed Ray run's wall time beyond its databases' own (ray_s minus
ray_s_per_db × num_dbs / actors): Ray Data's first start in this driver, the actors'
start-up, the hand-over between seeds and the idle tail. Ray's task timeline
(`ray.timeline()`) splits it, in seconds from the run's submission:
- actor_init_at_s: when the generator actors' constructors began (the latest of them):
  until then Ray Data starts and Ray starts the actors' worker processes;
- first_db_at_s: when the last actor to start began its first database;
- tail_s: how long one actor idled at the end while the other finished.
A run's fixed start-up, measured again on the same Ray after the timed run (warm: Ray
Data already started once in this driver):
- actor_import_s: a fresh Ray worker importing what a generator actor imports before
  its first seed (ACTOR_MODULES, with the generator and writer they pull in);
  heavy_imports lists what of scikit-learn, torch and the like it pulled in besides;
- actor_start_s: a one-seed, one-actor run's wall time minus the time its database took
  (from its index): Ray Data's start, the actor's worker and imports, the index write.
load_before/load_after are the 1-minute load averages around the whole benchmark: other
processes on the machine slow the actors (Ray runs them at nice 15) more than the driver.
"""

from __future__ import annotations

import os

# Each process (driver and actors) is single-threaded in BLAS: two actors on two cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from machine import cpu_model  # noqa: E402

from plurel_ray.config import Config  # noqa: E402
from plurel_ray.pipeline.generate import GenerationRequest, run_generation  # noqa: E402

TARGET_SPEEDUP = 1.7
TARGET_OVERHEAD = 0.05
ACTORS = 2
# What a generator actor should not import (they serve other paths: tasks' metrics, the
# store's text encoder, the Hub, plots).
# The module that defines the generator actors, and those their constructor imports.
ACTOR_MODULES = ("plurel_ray.pipeline.ray_stages", "plurel_ray.pipeline.generate",
                 "plurel_ray.pipeline.packed")  # fmt: skip
HEAVY_MODULES = ("sklearn", "torch", "transformers", "sentence_transformers",
                 "huggingface_hub", "matplotlib")  # fmt: skip


def _mean_seconds(out: Path) -> float:
    """Mean seconds per database of a run, from its index."""
    import pyarrow.parquet as pq

    return float(pq.read_table(out / "_index.parquet").column("seconds").to_numpy().mean())


def _import_actor_module() -> dict:
    """Seconds a fresh Ray worker takes to import the generator actors' module, and
    which HEAVY_MODULES that pulled in (runs as a one-call Ray task)."""
    import importlib
    import sys

    fresh = "plurel_ray.pipeline.ray_stages" not in sys.modules
    start = time.perf_counter()
    for module in ACTOR_MODULES:
        importlib.import_module(module)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "fresh": fresh,
            "heavy": [name for name in HEAVY_MODULES if name in sys.modules]}  # fmt: skip


def measure_start_up(config: Config, work: Path) -> dict:
    """A run's fixed start-up on the running Ray: a fresh worker's import of the actor
    module, and a one-seed run's wall time beyond its database's own time."""
    import ray

    probe = ray.remote(num_cpus=1, max_calls=1)(_import_actor_module)  # a fresh worker
    imported = ray.get(probe.remote())
    out = work / "ray-start"
    request = GenerationRequest(seeds=range(1), out=str(out), config=config, num_actors=1)
    start = time.perf_counter()
    summary = run_generation(request, progress=False)
    one_seed_s = time.perf_counter() - start
    assert summary.generated == 1, summary
    return {
        "actor_import_s": round(imported["seconds"], 2) if imported["fresh"] else None,
        "heavy_imports": imported["heavy"],
        "actor_start_s": round(one_seed_s - _mean_seconds(out), 2),
    }


def _timeline_split(submitted: float, run_s: float) -> dict:
    """The timed run's start-up and tail from Ray's task timeline (the generator actors'
    constructor and batch events), in seconds from `submitted` (a `time.time()`); the
    run's actors are those constructed within its `run_s` seconds."""
    import logging

    import ray

    # ray.timeline() warns on every call that it will read from the dashboard one day.
    logging.getLogger("ray._private.state").setLevel(logging.ERROR)
    actors: dict[str, dict] = {}
    for event in ray.timeline():
        category = str(event.get("cat", ""))
        if event.get("ph") != "X" or "GeneratorActor" not in category:
            continue
        start = event["ts"] / 1e6 - submitted
        end = start + event["dur"] / 1e6
        actor = actors.setdefault(event["tid"], {"init": None, "first": None, "last": None})
        if category.endswith(".__init__"):
            actor["init"] = start
        elif category.endswith(".submit"):
            actor["first"] = start if actor["first"] is None else min(actor["first"], start)
            actor["last"] = end if actor["last"] is None else max(actor["last"], end)
    timed = [a for a in actors.values() if a["init"] is not None and a["init"] < run_s]
    working = [a for a in timed if a["first"] is not None]
    if not working:
        return {"actor_init_at_s": None, "first_db_at_s": None, "tail_s": None}
    lasts = [a["last"] for a in working]
    return {
        "actor_init_at_s": round(max(a["init"] for a in timed), 2),
        "first_db_at_s": round(max(a["first"] for a in working), 2),
        # an actor that got no database idled from its start: the whole run is its tail
        "tail_s": round(max(lasts) - min(lasts) if len(working) == len(timed) else run_s, 2),
    }


def measure(num_dbs: int, config: Config, work: Path) -> dict:
    """Run both drivers over seeds 0..num_dbs-1 and return the figures."""
    import ray

    seeds = range(num_dbs)
    single = GenerationRequest(seeds=seeds, out=str(work / "single"), config=config)
    start = time.perf_counter()
    summary = run_generation(single, use_ray=False, progress=False)
    single_s = time.perf_counter() - start
    assert summary.generated == num_dbs, summary

    start = time.perf_counter()
    ray.init(num_cpus=ACTORS, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - start
    try:
        request = GenerationRequest(seeds=seeds, out=str(work / "ray"), config=config,
                                    num_actors=ACTORS)  # fmt: skip
        submitted, start = time.time(), time.perf_counter()
        summary = run_generation(request, progress=False)
        ray_s = time.perf_counter() - start
        start_up = measure_start_up(config, work)
        # After the probes: workers report their task events to Ray about once a second.
        split = _timeline_split(submitted, ray_s)
    finally:
        ray.shutdown()
    assert summary.generated == num_dbs, summary

    single_rate, ray_rate = num_dbs / single_s, num_dbs / ray_s
    per_db = {name: _mean_seconds(work / name) for name in ("single", "ray")}
    return {
        "num_dbs": num_dbs,
        "single_s": round(single_s, 2),
        "ray_s": round(ray_s, 2),
        "ray_init_s": round(ray_init_s, 2),
        "single_dbs_per_s": round(single_rate, 3),
        "ray_dbs_per_s": round(ray_rate, 3),
        "speedup": round(ray_rate / single_rate, 3),
        "overhead_frac": round(per_db["ray"] / per_db["single"] - 1, 3),
        "run_overhead_frac": round((ray_s * ACTORS) / single_s - 1, 3),
        "ray_fixed_s": round(ray_s - per_db["ray"] * num_dbs / ACTORS, 2),
        **split,
        "single_s_per_db": round(per_db["single"], 3),
        "ray_s_per_db": round(per_db["ray"], 3),
        **start_up,
        "actors": ACTORS,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-dbs", type=int, default=48, help="databases per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as work:
        figures = measure(args.num_dbs, Config(), Path(work))
    figures["load_before"], figures["load_after"] = load_before, os.getloadavg()[0]
    if args.json:
        print(json.dumps(figures))
        return
    print(f"machine: {figures['cpu']} ({figures['cpus']} CPUs)")
    print(f"single process: {figures['single_dbs_per_s']:.3f} databases/s "
          f"({figures['num_dbs']} in {figures['single_s']} s)")  # fmt: skip
    print(f"ray, {ACTORS} actors: {figures['ray_dbs_per_s']:.3f} databases/s "
          f"({figures['ray_s']} s; ray.init {figures['ray_init_s']} s apart)")  # fmt: skip
    print(f"speedup: {figures['speedup']:.2f}x (target >= {TARGET_SPEEDUP})")
    alone, in_actor = figures["single_s_per_db"], figures["ray_s_per_db"]
    print(f"time per database: {alone} s alone, {in_actor} s in an actor: "
          f"{figures['overhead_frac']:+.1%} (target < {TARGET_OVERHEAD:.0%})")  # fmt: skip
    print(f"whole-run overhead (start-up, idle tail): {figures['run_overhead_frac']:+.1%}, "
          f"{figures['ray_fixed_s']} s beyond the databases' own time")  # fmt: skip
    print(f"of which: actors constructed from {figures['actor_init_at_s']} s, both on a "
          f"database from {figures['first_db_at_s']} s; idle tail {figures['tail_s']} s")
    heavy = ", ".join(figures["heavy_imports"]) or "none of " + ", ".join(HEAVY_MODULES)
    print(f"actor start-up: {figures['actor_start_s']} s beyond its first database; "
          f"its imports {figures['actor_import_s']} s in a fresh worker ({heavy})")  # fmt: skip
    print(f"load average: {figures['load_before']:.2f} before, {figures['load_after']:.2f} after")


if __name__ == "__main__":
    main()
