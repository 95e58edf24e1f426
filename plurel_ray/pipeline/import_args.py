"""The `plurel-ray import` and `plurel-ray tasks add` subcommands (docs/tasks.md).

    plurel-ray import shop.sqlite --out data/shop [--keys keys.yaml] [--time-col T.C …]
    plurel-ray tasks add data/shop shop-tasks.yaml [--overwrite]

Building the parsers imports only argparse and the flag vocabulary; the work imports
pandas, DuckDB and RelBench inside the subcommand's function.
"""

from __future__ import annotations

import argparse

from plurel_ray.pipeline.flags import (
    KEYS,
    OUT,
    OVERWRITE,
    TEST_TIMESTAMP,
    TIME_COL,
    VAL_TIMESTAMP,
)


def add_import_parsers(commands: argparse._SubParsersAction) -> None:
    """Add `import` and `tasks add` to the subcommands of `plurel-ray`.

    Args:
        commands: the `plurel-ray` parser's subparsers.
    """
    imp = commands.add_parser(
        "import",
        help="turn a SQL database into a RelBench-3 dataset folder",
        description="Read a SQLite or DuckDB file, or a postgresql:// or mysql:// URI (through "
        "DuckDB's extensions), into OUT: manifest.yaml, db/<table>.parquet (keys renumbered "
        "0..n-1, the database's own keys in keys/<table>.parquet) and import.json. Keys and "
        "time columns come from the catalog, then --keys, then --time-col; a failed import "
        "writes nothing.",
    )
    imp.add_argument("uri", metavar="URI", help="a SQLite or DuckDB file, or a database URI")
    OUT.add(imp, required=True, help="the dataset folder to write (its name is the dataset's)")
    KEYS.add(imp)
    TIME_COL.add(imp)
    VAL_TIMESTAMP.add(imp)
    TEST_TIMESTAMP.add(imp)
    OVERWRITE.add(imp, help="replace an existing dataset folder at --out")
    imp.set_defaults(run=_import)
    tasks = commands.add_parser("tasks", help="define tasks on a dataset folder")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True,
                                         metavar="TASKS_COMMAND")  # fmt: skip
    add = task_commands.add_parser(
        "add",
        help="write the tasks a task file defines into a dataset folder",
        description="Write the tasks that TASK_FILE (a task suite, docs/tasks.md) defines for "
        "DATASET_DIR as RelBench-3 task folders, their labels computed by RelBench: "
        "autocomplete tasks (table + target) and forecast tasks (a DuckDB query). Every "
        "task is checked before any is written.",
    )
    add.add_argument("dataset", metavar="DATASET_DIR", help="a RelBench-3 dataset folder")
    add.add_argument("task_file", metavar="TASK_FILE", help="the task suite YAML file")
    OVERWRITE.add(add, help="replace task folders that exist")
    add.set_defaults(run=_tasks_add)


def _import(args: argparse.Namespace) -> int:
    from plurel_ray.dataset.sql_import import import_database

    report = import_database(
        args.uri, args.out, keys=args.keys, time_cols=args.time_col,
        val_timestamp=args.val_timestamp, test_timestamp=args.test_timestamp,
        overwrite=args.overwrite,
    )  # fmt: skip
    for table, rows in report.rows.items():
        print(f"{table}  rows={rows:,}  time_col={report.time_cols[table] or '-'}")
    for column in report.skipped:
        print(f"skipped {column}")
    for column, count in report.dangling.items():
        print(f"{column}: {count:,} values name no row; written as null")
    print(f"val {report.val_timestamp}  test {report.test_timestamp} ({report.timestamps_from})"
          f"  read by {report.reader}  -> {report.path}")  # fmt: skip
    return 0


def _tasks_add(args: argparse.Namespace) -> int:
    import pandas as pd

    from plurel_ray.dataset.task_writer import add_tasks

    for folder in add_tasks(args.dataset, args.task_file, overwrite=args.overwrite):
        rows = {s: len(pd.read_parquet(folder / f"{s}.parquet")) for s in ("train", "val", "test")}
        print(f"{folder.name}  " + "  ".join(f"{s}={n:,}" for s, n in rows.items())
              + f"  -> {folder}")  # fmt: skip
    return 0
