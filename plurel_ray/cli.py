"""The `plurel-ray` command: parse arguments, call the library, report in one line.

    plurel-ray generate --seed 0 --num-dbs 10 --out data/        # data/seed-000000 ...
    plurel-ray generate --seed 7 --config small.yaml --schema shop.sql --out data/
    plurel-ray preprocess data/seed-* --out stores/                 # stores/plurel-0 ...

Errors a user can cause (bad config, bad SQL, existing output, missing file, bad
arguments) print one line, ``plurel-ray: error: <message>``, and exit non-zero; Ctrl-C
exits 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from plurel_ray import __version__
from plurel_ray.config import Config
from plurel_ray.errors import DatasetError, PlurelError

PROG = "plurel-ray"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _fail(message: str) -> None:
    # One line even when the message (e.g. a YAML parser's) spans several.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: usage text would bury the message in scripts."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message} (see '{self.prog} --help')")
        sys.exit(EXIT_USAGE)


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    """An argparse type for integers >= `lo`, whose errors say `what` is expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `plurel-ray` command."""
    parser = _Parser(prog=PROG, description="Synthetic relational databases from the PluRel prior.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate",
        help="generate databases and write one RelBench-3 folder per seed",
        description="Generate the databases of seeds S..S+N-1; each is written to "
        "OUT/seed-<seed:06d> as a RelBench-3 dataset folder.",
    )
    gen.add_argument(
        "--seed",
        type=_int_at_least(0, "a non-negative integer"),
        required=True,
        metavar="S",
        help="first seed (>= 0)",
    )
    gen.add_argument(
        "--num-dbs",
        type=_int_at_least(1, "an integer >= 1"),
        default=1,
        metavar="N",
        help="number of databases (default 1)",
    )
    gen.add_argument(
        "--config", metavar="FILE", help="config file (.yaml, .yml or .json); default: defaults"
    )
    gen.add_argument(
        "--schema", metavar="FILE.sql", help="SQL DDL fixing the tables; overrides schema_file"
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="output folder")
    gen.add_argument("--overwrite", action="store_true", help="replace existing seed folders")
    gen.set_defaults(run=_generate)
    pre = commands.add_parser(
        "preprocess",
        help="turn RelBench-3 dataset folders into node stores",
        description="Preprocess each dataset folder into a node store at OUT/<dataset name>.",
    )
    pre.add_argument("datasets", nargs="+", metavar="DATASET_DIR", help="dataset folders")
    pre.add_argument("--out", required=True, metavar="DIR", help="output folder")
    pre.add_argument(
        "--tasks", nargs="+", metavar="T", help="tasks to include (default: all of them)"
    )
    pre.add_argument("--overwrite", action="store_true", help="replace existing stores")
    pre.set_defaults(run=_preprocess)
    return parser


def _generate(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the generator and writer pull in relbench, scipy and
    # networkx (~2 s), which `--version` and argument errors should not wait for.
    from tqdm import tqdm

    from plurel_ray.relbench_io import write_dataset
    from plurel_ray.synth.database import generate_database, load_schema

    config = Config.load(args.config) if args.config is not None else Config()
    if args.schema is not None:
        config = dataclasses.replace(config, schema_file=args.schema)
    # Parse an SQL schema once, up front: a bad file fails before any generation, and
    # every seed shares the parsed schema. Random schemas are drawn per seed (None).
    schema = load_schema(config, args.seed) if config.schema_file is not None else None

    out = Path(args.out).expanduser()
    seeds = range(args.seed, args.seed + args.num_dbs)
    targets = {seed: out / f"seed-{seed:06d}" for seed in seeds}
    if not args.overwrite:
        # Checked before generating so a clash at the last seed does not waste the run.
        for target in targets.values():
            if os.path.lexists(target):
                raise DatasetError(f"{target} already exists; pass --overwrite to replace it")

    total_cells, start = 0, time.perf_counter()
    for seed in tqdm(seeds, desc="databases", unit="db", file=sys.stderr, disable=None):
        t0 = time.perf_counter()
        db = generate_database(seed, config, schema=schema)
        path = write_dataset(db, targets[seed], config, overwrite=args.overwrite)
        seconds = time.perf_counter() - t0
        rows = sum(len(df) for df in db.tables.values())
        total_cells += db.num_cells
        # tqdm.write keeps the progress bar intact when both streams are a terminal.
        tqdm.write(
            f"{path.name}  tables={len(db.tables)}  rows={rows:,}  cells={db.num_cells:,}  "
            f"{seconds:.2f}s  -> {path}",
            file=sys.stdout,
        )
    elapsed = time.perf_counter() - start
    print(
        f"total  databases={len(seeds)}  cells={total_cells:,}  {elapsed:.2f}s  "
        f"{total_cells / max(elapsed, 1e-9):,.0f} cells/s  -> {out}"
    )
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from plurel_ray.store.preprocess import META_FILE, preprocess

    start = time.perf_counter()
    for dataset in tqdm(args.datasets, desc="datasets", unit="db", file=sys.stderr, disable=None):
        t0 = time.perf_counter()
        path = preprocess(dataset, args.out, args.tasks, overwrite=args.overwrite)
        counts = json.loads((path / META_FILE).read_text())["counts"]
        tqdm.write(
            f"{path.name}  nodes={counts['nodes']:,}  cells={counts['cells']:,}  "
            f"{time.perf_counter() - t0:.2f}s  -> {path}",
            file=sys.stdout,
        )
    elapsed = time.perf_counter() - start
    print(f"total  stores={len(args.datasets)}  {elapsed:.2f}s  -> {Path(args.out).expanduser()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `plurel-ray` command; returns the exit status.

    Args:
        argv: the arguments after the program name; default `sys.argv[1:]`.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argument errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        # write_dataset is atomic: an interrupted seed leaves no half-written folder.
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except PlurelError as err:
        _fail(str(err))
        return EXIT_ERROR
    except OSError as err:  # unwritable --out, disk full, ...
        _fail(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
