"""The arguments of a generation run, shared by `jobs/generate.py` and `plurel-ray generate`.

Everything a user can get wrong — flags, config, SQL schema, an unwritable output — is
checked here, before Ray starts or any database is generated.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from plurel_ray.config import Config
from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.output import OutputRoot


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def _seed_list(text: str) -> list[int]:
    """`3,5,9-12` → [3, 5, 9, 10, 11, 12]."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed {part!r} in --seeds {text!r}") from None
        if first < 0 or last < first:
            raise argparse.ArgumentTypeError(f"bad seed range {part!r} in --seeds {text!r}")
        seeds.extend(range(first, last + 1))
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds {text!r} names no seed")
    return seeds


def add_generate_arguments(parser: argparse.ArgumentParser, *, ray_by_default: bool) -> None:
    """Add the generation flags to `parser`.

    Args:
        parser: the parser to extend.
        ray_by_default: True for the Ray job (a `--local` flag opts out), False for the
            `plurel-ray` command (a `--ray` flag opts in).
    """
    which = parser.add_argument_group("which seeds")
    which.add_argument("--num-dbs", type=_positive, default=1, metavar="N",
                       help="number of databases (default 1)")  # fmt: skip
    which.add_argument("--seed-offset", "--seed", dest="seed_offset", type=_non_negative,
                       default=0, metavar="S", help="first seed (default 0)")  # fmt: skip
    which.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="seeds, e.g. 3,5,9-12 (replaces --num-dbs/--seed-offset)")  # fmt: skip
    what = parser.add_argument_group("what to produce")
    what.add_argument("--out", required=True, metavar="URI",
                      help="output root: a folder, s3://bucket/dir or gs://bucket/dir")  # fmt: skip
    what.add_argument("--config", metavar="FILE", help="config file (.yaml, .yml or .json)")
    what.add_argument("--schema", metavar="FILE.sql", help="SQL DDL fixing the tables")
    what.add_argument("--preprocess", action="store_true",
                      help="also write a node store per database under OUT/stores/")  # fmt: skip
    what.add_argument("--embed", action="store_true",
                      help="also embed each store's vocabulary (with --preprocess)")  # fmt: skip
    what.add_argument("--hub-repo", metavar="ORG/NAME",
                      help="push each new database to this Hugging Face dataset repo")  # fmt: skip
    how = parser.add_argument_group("how")
    how.add_argument("--num-actors", type=_positive, metavar="K",
                     help="generator actors (default: the cluster's CPUs)")  # fmt: skip
    how.add_argument("--node-resource", metavar="NAME",
                     help="generators only on nodes with this resource (e.g. gen)")  # fmt: skip
    if ray_by_default:
        how.add_argument("--local", dest="use_ray", action="store_false",
                         help="run in this process, without Ray (same output)")  # fmt: skip
    else:
        how.add_argument("--ray", dest="use_ray", action="store_true",
                         help="run on Ray: RAY_ADDRESS's cluster or an embedded one")  # fmt: skip
    how.add_argument("--allow-failures", action="store_true",
                     help="exit 0 even when some seeds failed (they are in the index)")  # fmt: skip
    how.add_argument("--no-progress", action="store_true", help="no progress bars")


def request_from_args(args: argparse.Namespace):
    """A validated `GenerationRequest`; raises a PlurelError before any work starts."""
    from plurel_ray.pipeline.generate import GenerationRequest
    from plurel_ray.synth.sql_schema import load_sql_schema

    config = Config.load(args.config) if args.config is not None else Config()
    if args.schema is not None:
        config = dataclasses.replace(config, schema_file=args.schema)
    if config.schema_file is not None:
        load_sql_schema(config.schema_file)  # a bad schema fails here, not in every actor
    seeds = args.seeds or range(args.seed_offset, args.seed_offset + args.num_dbs)
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        raise DatasetError(f"--seeds lists a seed twice: {args.seeds}")
    OutputRoot(args.out).check_writable()
    return GenerationRequest(
        seeds=seeds,
        out=args.out,
        config=config,
        preprocess=args.preprocess or args.embed,  # embedding needs a store
        embed=args.embed,
        num_actors=args.num_actors,
        node_resource=args.node_resource,
        hub_repo=args.hub_repo,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the generation `args` describe, print its summary; returns the exit status."""
    from plurel_ray.pipeline.generate import run_generation

    request = request_from_args(args)
    summary = run_generation(request, use_ray=args.use_ray, progress=not args.no_progress)
    for line in summary.lines():
        print(line)
    if summary.failed and not args.allow_failures:
        print(
            f"error: {summary.failed} seed(s) failed (errors in {summary.index_path}); "
            "rerun to retry them, or pass --allow-failures",
            file=sys.stderr,
        )
        return 1
    if summary.hub_failures and not args.allow_failures:
        print(f"error: {summary.hub_failures} Hub push(es) failed; the databases are on disk",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
