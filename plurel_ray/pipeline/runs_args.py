"""`plurel-ray runs verify ROOT`: the arguments and the command (`verify.py` does the work)."""

from __future__ import annotations

import argparse

from plurel_ray.pipeline.flags import PROGRESS, RAY, VERBOSE


def add_runs_parser(commands: argparse._SubParsersAction) -> None:
    """Add `runs verify` to the `plurel-ray` subcommands."""
    runs = commands.add_parser("runs", help="check generation runs")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="RUNS_COMMAND")
    verify = sub.add_parser(
        "verify",
        help="check every shard and database of an output against its recorded hashes",
        description="Read every shard (packed) or database folder (folders) of the output "
        "ROOT and check it against the sha256 recorded in its index and shard manifests; "
        "list orphan shards of killed runs and failed seeds. Exits 1 when anything is "
        "wrong. --repair removes what is bad and generates those seeds again.",
    )
    verify.add_argument("root", metavar="ROOT", help="the output (folder, s3://…, gs://…)")
    verify.add_argument("--repair", action="store_true",
                        help="remove bad shards and folders, then make their databases, the "
                        "missing and the failed ones again (takes the output's lease)")  # fmt: skip
    RAY.add(verify, default=False)
    PROGRESS.add(verify, default=True)
    VERBOSE.add(verify)
    verify.set_defaults(run=_verify)


def _verify(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.verify import verify_run

    report = verify_run(args.root, repair=args.repair, use_ray=args.ray, progress=args.progress)
    for line in report.lines():
        print(line)
    if args.repair and report.redone:
        again = verify_run(args.root)
        for line in again.lines():
            print(f"after repair: {line}")
        return 0 if again.ok else 1
    return 0 if report.ok else 1
