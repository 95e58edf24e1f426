"""Small real-shaped RelBench-3 databases with a planted relational signal.

Three databases written by this test code (not by the prior): `shop` (customers,
products, orders), `clinic` (patients, doctors, visits) and `forum` (users, posts,
comments). Each has integer keys as RelBench requires of every dataset it loads
(primary keys 0..n-1 in row order: `load_task` of an autocomplete task refuses others),
identifiers people read as string columns, timestamps (minutes, ns, ms, NaT), text,
nullable columns, foreign keys (clinic also a dimension table without a time column), a
few hundred to a few thousand rows per table, and three tasks:

- a forecast task (entity task with train/val/test label tables and the DuckDB query
  that regenerates them, a boolean target written as bool);
- a boolean and a number autocomplete task on the event table, each with a leakage
  column in `remove_columns` that would give its answer away.

Every label depends on the entity's related rows, so a model that reads the context can
beat the trivial baseline: churn/emergency/activity follow a latent per-entity rate that
the entity's past events reveal; returns, follow-ups and accepted answers follow a
latent property of a parent row that its other children reveal; amounts, costs and
upvotes are a function of a parent row's cells.

    python tests/realshaped.py --out DIR [--seed 0]    # writes DIR/<name>/ for each

From tests: `write_all(root) -> {name: folder}`. Output is a function of the seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from realshaped_databases import (
    BUILDERS,
    START,
    TEST_TIMESTAMP,
    VAL_TIMESTAMP,
    Autocomplete,
    Forecast,
    RealShaped,
)
from relbench.base.task_base import sort_labels
from relbench.manifest import (
    KIND_AUTOCOMPLETE,
    KIND_FORECAST,
    DatasetManifest,
    TaskManifest,
    validate_dataset_manifest,
)


def _forecast_timestamps(delta: pd.Timedelta) -> dict[str, pd.DatetimeIndex]:
    """RelBench's seed times: train back from val_timestamp - delta, one each for val/test."""
    return {
        "train": pd.date_range(VAL_TIMESTAMP - delta, START, freq=-delta),
        "val": pd.DatetimeIndex([VAL_TIMESTAMP]),
        "test": pd.DatetimeIndex([TEST_TIMESTAMP]),
    }


def _forecast_labels(db: RealShaped, task: Forecast) -> dict[str, pd.DataFrame]:
    """The task's labels per split, computed by its own SQL as RelBench regenerates them."""
    delta = pd.Timedelta(task.timedelta)
    labels = {}
    with duckdb.connect() as con:
        for name, df in db.tables.items():
            con.register(name, df)
        for split, stamps in _forecast_timestamps(delta).items():
            con.register("timestamps", pd.DataFrame({"timestamp": stamps}))
            df = con.sql(task.sql.replace("{timedelta}", str(delta))).df()
            df[task.target_col] = df[task.target_col].astype(bool)
            labels[split] = sort_labels(df, ["timestamp", task.entity_col])
    return labels


def _autocomplete_labels(db: RealShaped, task: Autocomplete) -> dict[str, pd.DataFrame]:
    """[time, key, target] of the rows whose target is set, split at the dataset's times."""
    spec, df = db.specs[task.table], db.tables[task.table]
    time = df[spec.time_col]
    masks = {"train": time <= VAL_TIMESTAMP,
             "val": (time > VAL_TIMESTAMP) & (time <= TEST_TIMESTAMP),
             "test": time > TEST_TIMESTAMP}  # fmt: skip
    frame = df[[spec.time_col, spec.pkey, task.column]]
    return {
        split: sort_labels(frame[mask & df[task.column].notna()].reset_index(drop=True),
                           [spec.time_col, spec.pkey])
        for split, mask in masks.items()
    }  # fmt: skip


def _write_task(folder: Path, manifest: TaskManifest, labels: dict[str, pd.DataFrame]) -> None:
    manifest.validate()
    manifest.save(folder / "manifest.yaml")
    for split, df in labels.items():
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / f"{split}.parquet")


def write_database(db: RealShaped, root: Path) -> Path:
    """Write `db` as a RelBench-3 folder at `root` (created) and return it."""
    (root / "db").mkdir(parents=True, exist_ok=True)
    for name, df in db.tables.items():
        table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, root / "db" / f"{name}.parquet", compression="zstd")
    manifest = DatasetManifest(
        name=db.name, val_timestamp=VAL_TIMESTAMP.date().isoformat(),
        test_timestamp=TEST_TIMESTAMP.date().isoformat(),
        description=f"{db.description} Real-shaped test data (tests/realshaped.py).",
        tables=db.specs,
    )  # fmt: skip
    validate_dataset_manifest(manifest, root / "db")
    manifest.save(root / "manifest.yaml")
    for task in db.forecasts:
        _write_task(root / "tasks" / task.name, TaskManifest(
            name=task.name, kind=KIND_FORECAST, task_type="binary_classification",
            description=task.description, entity_table=task.entity_table,
            entity_col=task.entity_col, target_col=task.target_col, time_col="timestamp",
            timedelta=task.timedelta, sql=task.sql,
        ), _forecast_labels(db, task))  # fmt: skip
    for task in db.autocompletes:
        _write_task(root / "tasks" / task.name, TaskManifest(
            name=task.name, kind=KIND_AUTOCOMPLETE, task_type=task.task_type,
            description=task.description, entity_table=task.table, target_col=task.column,
            remove_columns=[[task.table, column] for column in task.leakage],
        ), _autocomplete_labels(db, task))  # fmt: skip
    return root


def build_all(seed: int = 0) -> dict[str, RealShaped]:
    """Every database, each from its own stream of `seed`."""
    return {name: build(np.random.default_rng([seed, i]))
            for i, (name, build) in enumerate(BUILDERS.items())}  # fmt: skip


def write_all(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write every database to `root/<name>/` and return name -> folder.

    Args:
        root: the parent folder (created).
        seed: the seed every table and label is a function of.
    """
    root = Path(root)
    return {name: write_database(db, root / name) for name, db in build_all(seed).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="parent folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="seed of every table (default 0)")
    args = parser.parse_args(argv)
    for name, folder in write_all(args.out, args.seed).items():
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
