"""The scaling-law experiment: pretrain on N databases for S steps over a grid, fit L(X).

    python jobs/scaling_law.py --grid tiny --data data/scaling --out out/scaling
    python jobs/scaling_law.py --grid tiny --grid-num-dbs 1,2,4 --grid-steps 100 …
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
import sys

from plurel_ray.pipeline.flags import (
    DATA,
    EVAL_MAX_ITEMS,
    HOLDOUT,
    MAX_TASKS,
    OUT,
    PROGRESS,
    SET,
    STORAGE,
    VERBOSE,
    OneLineParser,
    add_resource_arguments,
)
from plurel_ray.pipeline.generate_args import CONFIG, SEED_OFFSET
from plurel_ray.pipeline.scaling import GRIDS

PROG = "jobs/scaling_law.py"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers N,N,…, got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    sweep = parser.add_argument_group("grid")
    sweep.add_argument("--grid", default="tiny", choices=sorted(GRIDS),
                       help="the (databases, steps) grid (default: %(default)s)")  # fmt: skip
    sweep.add_argument("--grid-num-dbs", type=_ints, metavar="N,N,…",
                       help="replace the grid's database counts")  # fmt: skip
    sweep.add_argument("--grid-steps", type=_ints, metavar="S,S,…",
                       help="replace the grid's step counts")  # fmt: skip
    HOLDOUT.add(sweep, help="held-out databases every point is scored on (default: the grid's)")
    EVAL_MAX_ITEMS.add(sweep, help="items scored per held-out task: the first N of its "
                                   "val split's fixed evaluation order (default: the "
                                   "grid's)")  # fmt: skip
    SET.add(sweep, default=[], help="replace a field of the grid's recipe, not steps (repeatable)")
    where = parser.add_argument_group("data and output")
    DATA.add(where, required=True, help="where the databases are generated once, and read")
    CONFIG.add(where)
    SEED_OFFSET.add(where, default=0)
    OUT.add(where, required=True, help="where points.csv, fits.json and scaling.png go")
    STORAGE.add(where, default="runs")
    MAX_TASKS.add(where)
    PROGRESS.add(where, default=True)
    VERBOSE.add(where)
    resources = parser.add_argument_group("resources (per run)")
    resources.add_argument("--concurrent", type=int, default=1, metavar="K",
                           help="grid points trained at once (default: %(default)s)")  # fmt: skip
    add_resource_arguments(resources)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from plurel_ray.pipeline.pretrain_args import run_job

    return run_job(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from plurel_ray.config import Config
    from plurel_ray.errors import ConfigError
    from plurel_ray.pipeline.pretrain_args import parse_field
    from plurel_ray.pipeline.pretrain_data import local_folder
    from plurel_ray.pipeline.resources import RunResources
    from plurel_ray.pipeline.scaling import grid
    from plurel_ray.pipeline.scaling_sweep import SweepRequest, run_sweep
    from plurel_ray.train.config import recipe

    chosen = grid(args.grid)
    axes = {"num_dbs": args.grid_num_dbs, "steps": args.grid_steps, "holdout": args.holdout,
            "eval_max_items": args.eval_max_items}  # fmt: skip
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
        resources=RunResources.from_args(args), max_tasks=args.max_tasks,
        progress=args.progress,
    )  # fmt: skip
    run_sweep(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
