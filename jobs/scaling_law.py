"""The scaling-law experiment: pretrain on N databases for S steps over a grid, fit L(X).

    python jobs/scaling_law.py --grid tiny --data data/scaling --out out/scaling
    ray job submit --working-dir . -- python jobs/scaling_law.py --grid paper \
        --data /shared/scaling --out /shared/scaling/out --storage /shared/runs \
        --num-workers 8 --use-gpu --concurrent 4

Generates max(num_dbs) + holdout databases into --data once, trains one run per grid
point on the first N of them, scores each final checkpoint on the held-out databases'
val split, and writes --out/points.csv, fits.json and scaling.png. Rerunning skips the
finished points and resumes unfinished runs. Exits 1 on bad data or a failed point (the
others are still written), 2 on bad flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.pretrain_args import JobParser, override, parse_field, run_job
from plurel_ray.pipeline.pretrain_data import local_folder
from plurel_ray.scaling import GRIDS, grid

PROG = "jobs/scaling_law.py"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog=PROG, description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--grid", default="tiny", choices=sorted(GRIDS), help="the grid (default tiny)")
    add("--num-dbs", type=_ints, metavar="N,N,…", help="replace the grid's database counts")
    add("--steps", type=_ints, metavar="S,S,…", help="replace the grid's step counts")
    add("--holdout", type=int, metavar="K", help="held-out databases (default: the grid's)")
    add("--eval-batches", type=int, metavar="N", help="batches per held-out task")
    add("--set", dest="overrides", type=override, action="append", default=[],
        metavar="KEY=VALUE", help="replace a recipe field (not steps), repeatable")  # fmt: skip
    add("--data", required=True, metavar="DIR", help="where the databases are generated")
    add("--config", metavar="FILE", help="generator config of the databases")
    add("--seed-offset", type=int, default=0, metavar="S", help="first seed (default 0)")
    add("--out", required=True, metavar="DIR", help="points.csv, fits.json, scaling.png")
    add("--storage", default="runs", metavar="DIR", help="the runs' checkpoints (./runs)")
    add("--concurrent", type=int, default=1, metavar="K", help="points trained at once (1)")
    add("--num-workers", type=int, default=1, metavar="N", help="training workers per run")
    add("--use-gpu", action="store_true", help="one GPU per worker")
    add("--cpus-per-worker", type=float, default=1.0, metavar="C")
    add("--sampler-cpus", type=float, default=1.0, metavar="C")
    add("--max-failures", type=int, default=3, metavar="N")
    add("--max-tasks", type=int, metavar="N", help="at most N tasks per store")
    add("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    return run_job(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from plurel_ray.config import Config
    from plurel_ray.pipeline.scaling_sweep import SweepRequest, run_sweep
    from plurel_ray.train.config import recipe

    chosen = grid(args.grid)
    axes = {"num_dbs": args.num_dbs, "steps": args.steps, "holdout": args.holdout,
            "eval_batches": args.eval_batches}  # fmt: skip
    chosen = dataclasses.replace(chosen, **{k: v for k, v in axes.items() if v is not None})
    base = recipe(chosen.recipe)
    defaults = {**base.model.to_dict(), **base.train.to_dict()}
    if unknown := sorted(k for k, _ in args.overrides if k not in defaults):
        raise ConfigError(f"--set {', '.join(unknown)}: no such recipe field")
    request = SweepRequest(
        grid=chosen, data=str(local_folder(args.data, "--data")),
        out=str(local_folder(args.out, "--out")),
        storage=str(local_folder(args.storage, "--storage")),
        overrides={k: parse_field(k, v, defaults[k]) for k, v in args.overrides},
        config=Config.load(args.config) if args.config else Config(),
        seed_offset=args.seed_offset, concurrent=args.concurrent,
        num_workers=args.num_workers, use_gpu=args.use_gpu,
        cpus_per_worker=args.cpus_per_worker, sampler_cpus=args.sampler_cpus,
        max_failures=args.max_failures, max_tasks=args.max_tasks,
        progress=not args.no_progress,
    )  # fmt: skip
    run_sweep(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
