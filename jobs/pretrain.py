"""Pretrain a Relational Transformer on synthetic databases with Ray Train.

    python jobs/pretrain.py --data data/run1 --recipe tiny --set steps=500
    python jobs/pretrain.py --num-dbs 64 --data data/run1 --num-workers 4 --use-gpu
    ray job submit --working-dir . -- python jobs/pretrain.py --data /shared/run1 …

--data is an output of `jobs/generate.py --preprocess --embed`; with --num-dbs the job
generates it first (reruns skip what exists). The last --holdout stores stay out of
training; the final checkpoint is evaluated on their tasks (--eval-split, default val),
written to `<storage>/<run>/eval_<split>.csv`. Rerunning the same command resumes its run. Without
RAY_ADDRESS an embedded Ray starts with $PLUREL_RAY_NUM_CPUS logical CPUs (default: the
cores). Exits 1 on a bad recipe, data or failed seed, or a request the cluster cannot
fit, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plurel_ray.pipeline.flags import OneLineParser, add_data_arguments, add_training_arguments

PROG = "jobs/pretrain.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    add_data_arguments(parser, synthetic=True, real=False)
    add_training_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from plurel_ray.pipeline.pretrain_args import run_job

    return run_job(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.data_selection import select_data
    from plurel_ray.pipeline.pretrain_args import (
        check_training_arguments,
        recipe_from_args,
        run_name_from_args,
        train_run_from_args,
    )
    from plurel_ray.pipeline.train_run import print_outcome, train_and_evaluate

    check_training_arguments(args)
    chosen = recipe_from_args(args)
    selection = select_data(args)
    identity = {"recipe": chosen.name, **selection.identity}
    name = run_name_from_args(args, f"{chosen.name}-{Path(args.data).name}", identity)
    run = train_run_from_args(args, chosen, selection.train, selection.eval, name)
    print_outcome(train_and_evaluate(run), args.eval_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
