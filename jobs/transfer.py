"""The transfer experiment: real-only vs synthetic zero-shot vs synthetic then real, with Ray Train.

    python jobs/transfer.py --datasets data/shop data/clinic data/forum --leave-out clinic \
        --data data/synthetic --num-dbs 8 --out transfer --recipe tiny --set steps=300 \
        --eval-every 50 --eval-pow2

Three runs of the same recipe, steps and evaluation schedule, each scored during training
on the val and test splits of the left-out real dataset's tasks:

  (a) real       trained only on the other --datasets;
  (b) synthetic  pretrained on the synthetic databases of --data (--num-dbs N generates
                 them first); its curve is zero-shot on the left-out dataset;
  (c) continued  (b)'s final checkpoint trained further on the other --datasets.

--out gets transfer.png (mean score, AUROC and R² vs step of the three runs), transfer.csv
and transfer.md (each run's scores at its last step, per task and the mean). The runs
live in --storage under names derived from the flags, so rerunning the same command
resumes each where it stopped (a finished run is not trained again). Without
--eval-every the schedule is --eval-pow2. Exits 1 on a bad recipe or dataset, 2 on bad
flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plurel_ray.pipeline.flags import (
    OUT,
    OneLineParser,
    add_data_arguments,
    add_training_arguments,
)

PROG = "jobs/transfer.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    OUT.add(parser, required=True,
            help="folder of the plot and the tables (transfer.png, .csv, .md)")  # fmt: skip
    add_data_arguments(parser, synthetic=True, real=True)
    add_training_arguments(parser)
    # The held-out database is the real one; synthetic held-out stores would go unused.
    parser.set_defaults(holdout=0)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, with the checks that need several of them (exit 2 on a bad one)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data DIR is required: the synthetic databases of run (b)")
    if not args.datasets or len(args.datasets) < 2:
        parser.error("--datasets needs at least two real datasets: one left out, the others "
                     "trained on")  # fmt: skip
    if args.leave_out is None:
        parser.error("--leave-out NAME is required: the real dataset every run is scored on")
    if args.holdout:
        parser.error("--holdout must be 0 here: runs are scored on the --leave-out dataset")
    if args.hub_repo:
        parser.error("--hub-repo is not taken here: the three runs would push to one repo")
    if not args.eval_every and not args.eval_pow2:
        args.eval_pow2 = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from plurel_ray.pipeline.pretrain_args import run_job

    return run_job(PROG, lambda: _run(args))


def _run_names(args: argparse.Namespace, prefix: str, identities: dict) -> dict[str, str]:
    """Experiment → run name: `--name`-<experiment>, or derived from what defines it."""
    from plurel_ray.pipeline.train_run import run_name

    if args.name:
        return {experiment: f"{args.name}-{experiment}" for experiment in identities}
    common = {"set": sorted(dict(args.overrides).items()), "eval_every": args.eval_every,
              "eval_pow2": args.eval_pow2, "eval_max_items": args.eval_max_items}  # fmt: skip
    names = {}
    for experiment, identity in identities.items():
        if experiment == "continued":  # from (b)'s final checkpoint: (b) is part of it
            identity = {**identity, "init": names["synthetic"]}
        names[experiment] = run_name(f"{prefix}-{experiment}", {**common, **identity})
    return names


def _run(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.data_selection import select_data
    from plurel_ray.pipeline.pretrain_args import (
        check_training_arguments,
        recipe_from_args,
        train_run_from_args,
    )
    from plurel_ray.pipeline.pretrain_data import local_folder
    from plurel_ray.pipeline.train_run import train_and_evaluate
    from plurel_ray.pipeline.transfer import (
        EXPERIMENTS,
        PLOT_FILE,
        final_rows,
        mean_table,
        plot_curves,
        read_eval_rows,
        write_tables,
    )
    from plurel_ray.util.run_files import EVAL_FILE

    check_training_arguments(args)
    out = local_folder(args.out, "--out")
    chosen = recipe_from_args(args)
    # Real datasets first: every name (datasets, --leave-out, --tasks) is checked before
    # the synthetic databases are generated, which starts Ray.
    real = select_data(argparse.Namespace(**{**vars(args), "data": None}))
    synthetic = select_data(argparse.Namespace(**{**vars(args), "datasets": None,
                                                  "leave_out": None, "tasks": None}))  # fmt: skip
    left_out = real.left_out
    names = _run_names(args, f"{chosen.name}-transfer-{left_out}", {
        "real": {"recipe": chosen.name, **real.identity},
        "synthetic": {"recipe": chosen.name, **synthetic.identity, "eval": left_out},
        "continued": {"recipe": chosen.name, **real.identity},
    })  # fmt: skip
    plan = {"real": (real.train, None), "synthetic": (synthetic.train, None),
            "continued": (real.train, "synthetic")}  # fmt: skip
    checkpoints: dict[str, Path] = {}
    runs: dict[str, list[dict]] = {}
    for experiment, (sources, init_from) in plan.items():
        print(f"== {EXPERIMENTS[experiment]}: run {names[experiment]}")
        init = None if init_from is None else str(checkpoints[init_from])
        run = train_run_from_args(args, chosen, sources, real.eval, names[experiment],
                                  init_checkpoint=init)  # fmt: skip
        checkpoints[experiment] = train_and_evaluate(run).checkpoint
        runs[experiment] = read_eval_rows(checkpoints[experiment].parent / EVAL_FILE)
        print(f"checkpoint: {checkpoints[experiment]}")
    title = f"Transfer to {left_out} ({chosen.name}, {chosen.train.steps} steps)"
    plot = plot_curves(runs, out / PLOT_FILE, title)
    csv_path, markdown = write_tables(runs, out, names, title)
    print("\n".join(mean_table(final_rows(runs))))
    print(f"plot: {plot}\ntables: {csv_path}, {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
