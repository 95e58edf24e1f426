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
from plurel_ray.pipeline.flags import (
    CONTEXT_RULES,
    HUB_REPO,
    OUT,
    PROGRESS,
    RAY,
    TEXT_MODEL,
    VERBOSE,
    Flag,
)
from plurel_ray.pipeline.seeds import Seeds
from plurel_ray.store.meta import DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL


def _integer_at_least(minimum: int, what: str):
    """An argparse type: an integer ≥ `minimum`, refused naming `what` it must be."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what} (>= {minimum}), got {value}")
        return value

    return parse


_non_negative = _integer_at_least(0, "an integer")
_positive = _integer_at_least(1, "a positive integer")


def _seed_list(text: str) -> Seeds:
    """`3,5,9-12` → Seeds 3, 5, 9, 10, 11, 12 (ranges stay ranges)."""
    try:
        return Seeds.parse(text)
    except DatasetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


NUM_DBS = Flag("--num-dbs", "number of databases (default: %(default)s)",
               {"type": _positive, "metavar": "N"})  # fmt: skip
SEED_OFFSET = Flag("--seed-offset", "first seed (default: %(default)s)",
                   {"type": _non_negative, "metavar": "S"})  # fmt: skip
SEEDS = Flag("--seeds", "seeds, e.g. 3,5,9-12 (replaces --num-dbs and --seed-offset)",
             {"type": _seed_list, "metavar": "LIST"})  # fmt: skip
NUM_ACTORS = Flag("--num-actors", "actors (default: %(default)s)",
                  {"type": _positive, "metavar": "K"})  # fmt: skip
CONFIG = Flag("--config", "generator config file, .yaml, .yml or .json (default: the prior's "
                          "defaults)", {"metavar": "FILE"})  # fmt: skip


def add_generate_arguments(parser: argparse.ArgumentParser, *, ray_by_default: bool) -> None:
    """Add the generation flags to `parser`.

    Args:
        parser: the parser to extend.
        ray_by_default: the default of --ray/--no-ray: True for the Ray job, False for
            the `plurel-ray` command.
    """
    which = parser.add_argument_group("which seeds")
    NUM_DBS.add(which, default=1)
    SEED_OFFSET.add(which, default=0)
    SEEDS.add(which)
    what = parser.add_argument_group("what to produce")
    OUT.add(what, required=True, help="the data root, a folder, s3://bucket/dir or "
            "gs://bucket/dir: plurel-<seed>/ per database and _index.parquet")  # fmt: skip
    CONFIG.add(what)
    what.add_argument("--schema", metavar="FILE.sql", help="SQL DDL fixing the tables")
    what.add_argument("--layout", choices=("folders", "packed"),
                      help="folders: OUT/plurel-<seed>/ each; packed: shards of whole folders "
                      "under OUT/shards/ (default: packed for s3://, gs:// and --hub-repo "
                      "outputs, else folders)")  # fmt: skip
    what.add_argument("--dbs-per-shard", type=_positive, metavar="N",
                      help="packed: databases per shard (default: up to 512)")  # fmt: skip
    what.add_argument("--write-tasks", action="store_true",
                      help="also write every autocomplete task as a RelBench task folder "
                      "(by default plurel.json describes them and stores derive them)")  # fmt: skip
    what.add_argument("--preprocess", action="store_true",
                      help="also write a node store per database under OUT/stores/")  # fmt: skip
    what.add_argument("--embed", action="store_true",
                      help="also embed each store's vocabulary (implies --preprocess)")  # fmt: skip
    CONTEXT_RULES.add(what, default=DEFAULT_CONTEXT_RULES)
    TEXT_MODEL.add(what, help=f"{TEXT_MODEL.help}; implies --embed")
    HUB_REPO.add(what, help="push each new database to this Hugging Face dataset repo")
    how = parser.add_argument_group("how")
    NUM_ACTORS.add(how, help="generator actors (default: the cluster's CPUs)")
    how.add_argument("--node-resource", metavar="NAME",
                     help="generators only on nodes with this resource (e.g. gen)")  # fmt: skip
    RAY.add(how, default=ray_by_default)
    how.add_argument("--allow-failures", action="store_true",
                     help="exit 0 even when some seeds failed (they are in the index)")  # fmt: skip
    PROGRESS.add(how, default=True)
    VERBOSE.add(how)


def request_from_args(args: argparse.Namespace):
    """A validated `GenerationRequest`; raises a PlurelError before any work starts."""
    from plurel_ray.pipeline.generate import GenerationRequest
    from plurel_ray.pipeline.output import OutputRoot
    from plurel_ray.synth.sql_schema import load_sql_schema

    config = Config.load(args.config) if args.config is not None else Config()
    if args.schema is not None:
        config = dataclasses.replace(config, schema_file=args.schema)
    if config.schema_file is not None:
        load_sql_schema(config.schema_file)  # a bad schema fails here, not in every actor
    seeds = args.seeds or Seeds.of(range(args.seed_offset, args.seed_offset + args.num_dbs))
    root = OutputRoot(args.out)
    root.check_writable()
    layout = args.layout or ("packed" if args.hub_repo or not root.is_local else "folders")
    embed = args.embed or args.text_model is not None
    return GenerationRequest(
        seeds=seeds,
        out=args.out,
        config=config,
        preprocess=args.preprocess or embed,  # embedding needs a store
        embed=embed,
        context_rules=args.context_rules,
        text_model=args.text_model or DEFAULT_TEXT_MODEL,
        num_actors=args.num_actors,
        node_resource=args.node_resource,
        hub_repo=args.hub_repo,
        layout=layout,
        dbs_per_shard=args.dbs_per_shard,
        write_tasks=args.write_tasks,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the generation `args` describe, print its summary; returns the exit status."""
    from plurel_ray.pipeline.generate import run_generation

    request = request_from_args(args)
    summary = run_generation(request, use_ray=args.ray, progress=args.progress)
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
