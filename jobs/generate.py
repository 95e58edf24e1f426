"""Generate synthetic relational databases on Ray: seeds in, RelBench-3 folders out.

    ray job submit --working-dir . -- python jobs/generate.py --num-dbs 100000 --out s3://bucket/run1
    python jobs/generate.py --num-dbs 8 --out data/run1 --preprocess   # embedded local Ray

An object-store or --hub-repo output is packed (shards of whole folders) unless --layout
folders. Reruns leave out the seeds `OUT/_index.parquet` lists as done; it has one row per
seed. Exits 1 when a seed failed (unless --allow-failures) and 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys

from plurel_ray.errors import PlurelError
from plurel_ray.pipeline.flags import OneLineParser
from plurel_ray.pipeline.generate_args import add_generate_arguments, run_from_args

PROG = "jobs/generate.py"


def build_parser() -> argparse.ArgumentParser:
    """The job's flags: `plurel-ray generate`'s, on Ray by default (--no-ray: in-process)."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    add_generate_arguments(parser, ray_by_default=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_from_args(args)
    except PlurelError as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
