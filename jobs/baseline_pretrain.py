"""Pretrain on real RelBench-3 datasets, leaving one out for evaluation, with Ray Train.

    python jobs/baseline_pretrain.py --datasets data/rel-f1 data/rel-amazon data/rel-hm \
        --leave-out rel-hm --recipe tiny --set steps=2000
    python jobs/baseline_pretrain.py --datasets org/relbench/rel-f1 data/rel-hm \
        --leave-out rel-hm --tasks relbench-paper

A dataset is a folder or a Hub id ORG/REPO/SUBFOLDER (downloaded once). Each is
preprocessed and embedded into `<storage>/<name>/stores/<name>` unless that store exists
(delete it to rebuild); names are the manifests' "name". The job trains on the other
X
on the left-out dataset's tasks (--eval-split, default val; `--eval-split test` for the
final figure), written to `<storage>/<run>/eval_<split>.csv`. With a single dataset and
no --leave-out it trains on its train split and evaluates that split. Exits 1 on a bad
recipe or dataset, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys

from plurel_ray.pipeline.flags import OneLineParser, add_data_arguments, add_training_arguments

PROG = "jobs/baseline_pretrain.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    add_data_arguments(parser, synthetic=False, real=True)
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
    name = run_name_from_args(args, f"{chosen.name}-baseline-{identity['eval']}", identity)
    run = train_run_from_args(args, chosen, selection.train, selection.eval, name)
    print_outcome(train_and_evaluate(run), args.eval_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
