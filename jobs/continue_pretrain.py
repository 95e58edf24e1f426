"""Continue pretraining from given weights on synthetic and/or real databases, with Ray Train.

    python jobs/continue_pretrain.py --init runs/tiny-run1-…/step_00002000 --data data/run2
    python jobs/continue_pretrain.py --init plurel.pt --data data/run2 --set steps=1000
    python jobs/continue_pretrain.py --init org/plurel-rt@main --data data/run2
    python jobs/continue_pretrain.py --init plurel.pt --datasets data/rel-f1 data/rel-hm \
        --leave-out rel-hm --tasks relbench-paper --eval-pow2

--init is a checkpoint folder (model.safetensors + config.json), the reference's plain
`.pt` state dict, or a Hugging Face model repo ORG/NAME[@REVISION] (downloaded first,
with HF_TOKEN / HF_ENDPOINT); the model sizes come from it (config.json, or the `.pt` shapes), and
--set changes training fields only. Training starts at step 0 from those weights (fresh
optimizer and schedule). Data: synthetic --data/--num-dbs/--holdout as in jobs/pretrain.py,
real --datasets/--leave-out/--tasks as in jobs/baseline_pretrain.py, or both mixed;
evaluation on the left-out dataset's tasks, else the held-out stores'
(pipeline/data_selection.py). Rerunning resumes. Exits 1 on
a bad checkpoint, recipe or data, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plurel_ray.pipeline.flags import OneLineParser, add_data_arguments, add_training_arguments

PROG = "jobs/continue_pretrain.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--init", required=True, metavar="REPO_OR_PATH",
                        help="checkpoint folder, .pt file or Hub repo ORG/NAME[@REV]")  # fmt: skip
    add_data_arguments(parser, synthetic=True, real=True)
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
        init_weights,
        recipe_from_args,
        run_name_from_args,
        train_run_from_args,
    )
    from plurel_ray.pipeline.train_run import print_outcome, train_and_evaluate

    check_training_arguments(args)
    init, model = init_weights(args.init)
    chosen = recipe_from_args(args, model=model)
    selection = select_data(args)
    identity = {"recipe": chosen.name, **selection.identity, "init": init}
    data = [Path(args.data).name] if args.data else []
    data += [f"on-{selection.left_out}"] if selection.left_out else []
    label = "-".join(data) or "real"
    name = run_name_from_args(args, f"{chosen.name}-{label}-continued", identity)
    run = train_run_from_args(args, chosen, selection.train, selection.eval, name,
                              init_checkpoint=init)  # fmt: skip
    print_outcome(train_and_evaluate(run), args.eval_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
