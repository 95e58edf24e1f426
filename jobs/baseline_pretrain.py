"""Pretrain on real RelBench-3 datasets, leaving one out for evaluation, with Ray Train.

    python jobs/baseline_pretrain.py --datasets data/rel-f1 data/rel-amazon data/rel-hm \
        --leave-out rel-hm --recipe tiny --set steps=2000

Each dataset folder is preprocessed and embedded into `<storage>/<name>/stores/<name>`
unless that store exists (delete it to rebuild); names are the manifests' "name". The
job trains on the other datasets' tasks (train split) and evaluates the final checkpoint
on the left-out dataset's tasks (--eval-split, default val; `--eval-split test` for the
final figure), written to `<storage>/<run>/eval_<split>.csv`. With a single dataset and
no --leave-out it trains on its train split and evaluates that split. Exits 1 on a bad
recipe or dataset, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys

from plurel_ray.pipeline.flags import OneLineParser, add_training_arguments

PROG = "jobs/baseline_pretrain.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", required=True, nargs="+", metavar="DIR",
                        help="RelBench-3 dataset folders (manifest.yaml, db/, tasks/)")  # fmt: skip
    parser.add_argument("--leave-out", metavar="NAME",
                        help="the dataset held out of training and evaluated (required "
                             "with more than one dataset)")  # fmt: skip
    add_training_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from plurel_ray.pipeline.pretrain_args import run_job

    return run_job(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.prepare import prepare_datasets
    from plurel_ray.pipeline.pretrain_args import (
        check_training_arguments,
        recipe_from_args,
        run_name_from_args,
        train_run_from_args,
    )
    from plurel_ray.pipeline.pretrain_data import (
        dataset_names,
        leave_one_out,
        local_folder,
        task_sources,
    )
    from plurel_ray.pipeline.train_run import print_outcome, train_and_evaluate

    check_training_arguments(args)
    chosen = recipe_from_args(args)
    datasets = dataset_names([local_folder(d, "--datasets") for d in args.datasets])
    train_names, eval_name = leave_one_out(list(datasets), args.leave_out)
    storage = local_folder(args.storage, "--storage")
    stores = prepare_datasets(datasets, storage, progress=args.progress)
    sources = task_sources([stores[n] for n in train_names],
                           max_tasks_per_store=args.max_tasks)  # fmt: skip
    identity = {"recipe": chosen.name, "train": train_names, "eval": eval_name}
    name = run_name_from_args(args, f"{chosen.name}-baseline-{eval_name}", identity)
    held_out = task_sources([stores[eval_name]], split=args.eval_split,
                            max_tasks_per_store=args.max_tasks)  # fmt: skip
    run = train_run_from_args(args, chosen, sources, held_out, name)
    print_outcome(train_and_evaluate(run), args.eval_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
