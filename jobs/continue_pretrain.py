"""Continue pretraining from given weights on synthetic databases, with Ray Train.

    python jobs/continue_pretrain.py --init runs/tiny-run1-…/step_00002000 --data data/run2
    python jobs/continue_pretrain.py --init plurel.pt --data data/run2 --set steps=1000
    python jobs/continue_pretrain.py --init org/plurel-rt@main --data data/run2

--init is a checkpoint folder (model.safetensors + config.json), the reference's plain
`.pt` state dict, or a Hugging Face model repo ORG/NAME[@REVISION] (downloaded first,
with HF_TOKEN / HF_ENDPOINT); the model sizes come from it (config.json, or the `.pt` shapes), and
--set changes training fields only. Training starts at step 0 from those weights (fresh
optimizer and schedule); everything else is as in jobs/pretrain.py: --data/--num-dbs,
--holdout, evaluation on the held-out stores' --eval-split, resume by rerunning. Exits 1 on
a bad checkpoint, recipe or data, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plurel_ray.pipeline.flags import (
    OneLineParser,
    add_synthetic_data_arguments,
    add_training_arguments,
)

PROG = "jobs/continue_pretrain.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; building and parsing them imports neither Ray nor torch."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--init", required=True, metavar="REPO_OR_PATH",
                        help="checkpoint folder, .pt file or Hub repo ORG/NAME[@REV]")  # fmt: skip
    add_synthetic_data_arguments(parser)
    add_training_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from plurel_ray.pipeline.pretrain_args import run_job

    return run_job(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.pretrain_args import (
        check_training_arguments,
        init_weights,
        recipe_from_args,
        run_name_from_args,
        synthetic_data,
        train_run_from_args,
    )
    from plurel_ray.pipeline.pretrain_data import task_sources
    from plurel_ray.pipeline.train_run import print_outcome, train_and_evaluate

    check_training_arguments(args)
    init, model = init_weights(args.init)
    chosen = recipe_from_args(args, model=model)
    data = synthetic_data(args)
    sources = task_sources(data.train, max_tasks_per_store=args.max_tasks)
    held_out = task_sources(data.held_out or data.train, split=args.eval_split,
                            max_tasks_per_store=args.max_tasks)  # fmt: skip
    identity = {"recipe": chosen.name, "train": [s.name for s in data.train], "init": init}
    name = run_name_from_args(args, f"{chosen.name}-{Path(args.data).name}-continued", identity)
    run = train_run_from_args(args, chosen, sources, held_out, name,
                              init_checkpoint=init)  # fmt: skip
    print_outcome(train_and_evaluate(run), args.eval_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
