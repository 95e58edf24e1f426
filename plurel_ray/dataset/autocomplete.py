"""Autocomplete tasks: one RelBench-3 task per feature column, with its labels.

What they are: docs/prior.md#autocomplete-tasks.

Every feature column of every table is a task whose target is the column's value in a
row; a row whose target is null is not an item. Labels are always written as
`{train,val,test}.parquet` when a folder is written with `write_tasks=True`, and
`load_task(name)` reads them; by default only `task_descriptions` is recorded (in
plurel.json) and the store derives the same items from the tables. RelBench 3 regenerates
(`load_task(name, regenerate=True)`) exactly these labels for a table with a time column;
its `AutoCompleteTask` splits by the entity table's time column only, so for a table
without one it has no split rule and fails inside DuckDB (`column named "None"`). No
task manifest can express a split by row position, so those tasks say in their
description that their label files are the only source of their splits.

Splits:
- a table with a time column uses RelBench's own windows — train `time <= val_timestamp`,
  val `(val_timestamp, test_timestamp]`, test `> test_timestamp` — and label columns
  `[time_col, entity_col, target]`, sorted by time then entity (`sort_labels`);
- a table without one is split by row position — the first `floor(n * val_split)` rows
  train, rows up to `floor(n * test_split)` val, the rest test — with label columns
  `[entity_col, target]`, sorted by entity.

The entity column is the primary key; for a table without one it is `primary_key`, the
row position, which is the column RelBench's `AutoCompleteTask` adds to such a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from plurel_ray.synth.schema import TableSpec

if TYPE_CHECKING:
    from relbench.manifest import TaskManifest

SPLITS = ("train", "val", "test")
# RelBench's TaskType values, spelled out: importing relbench pulls in scikit-learn
# (~0.7 s), which only the write_tasks path needs.
REGRESSION = "regression"
BINARY_CLASSIFICATION = "binary_classification"
MULTICLASS_CLASSIFICATION = "multiclass_classification"
TASK_TYPES = (REGRESSION, BINARY_CLASSIFICATION, MULTICLASS_CLASSIFICATION)
# What RelBench's AutoCompleteTask names the row-position key of a table without one.
POSITION_KEY = "primary_key"


@dataclass(frozen=True)
class AutocompleteTask:
    """One task: its manifest and a label frame per split.

    Args:
        manifest: the RelBench task manifest (kind "autocomplete").
        labels: split name -> label frame, in canonical RelBench order.
    """

    manifest: TaskManifest
    labels: dict[str, pd.DataFrame]


def task_type_of(column: pd.Series | np.dtype) -> str:
    """Boolean → binary classification, numeric → regression, anything else (strings) →
    multiclass classification, as RelBench's TaskType value.

    Args:
        column: the target column, or its dtype (all that decides).
    """
    if pd.api.types.is_bool_dtype(column):
        return BINARY_CLASSIFICATION
    if pd.api.types.is_numeric_dtype(column):
        return REGRESSION
    return MULTICLASS_CLASSIFICATION


def feature_columns(spec: TableSpec, df: pd.DataFrame) -> list[str]:
    """The frame's columns that are neither keys nor the time column, in frame order.

    Taken from the frame rather than `spec.features`: post-processing drops constant
    boolean columns, which then have no task.
    """
    structural = {spec.pkey, spec.time_col, *(col for col, _ in spec.fkeys)}
    return [col for col in df.columns if col not in structural]


def _split_masks(
    spec: TableSpec,
    df: pd.DataFrame,
    val_timestamp: pd.Timestamp,
    test_timestamp: pd.Timestamp,
    val_split: float,
    test_split: float,
) -> dict[str, np.ndarray]:
    if spec.time_col is not None:
        time = df[spec.time_col]
        return {
            "train": (time <= val_timestamp).to_numpy(),
            "val": ((time > val_timestamp) & (time <= test_timestamp)).to_numpy(),
            "test": (time > test_timestamp).to_numpy(),
        }
    n = len(df)
    position = np.arange(n)
    val_start, test_start = math.floor(n * val_split), math.floor(n * test_split)
    return {
        "train": position < val_start,
        "val": (position >= val_start) & (position < test_start),
        "test": position >= test_start,
    }


def _description(spec: TableSpec, column: str, val_split: float, test_split: float) -> str:
    text = f"Predict {column} of a {spec.name} row from the rest of the database."
    if spec.time_col is not None:
        return text
    return (
        f"{text} {spec.name} has no time column, so its n rows are split by position: rows "
        f"[0, floor(n*{val_split:g})) train, [floor(n*{val_split:g}), floor(n*{test_split:g}))"
        " val, the rest test. RelBench 3 cannot regenerate such a split (it splits by time "
        "only): the label files are authoritative."
    )


def split_rule(val_split: float, test_split: float) -> str:
    """The one-line rule that splits every autocomplete task's items (plurel.json's
    `autocomplete_split`).

    Args:
        val_split: the config's fraction of rows in train (tables without a time column).
        test_split: the config's fraction of rows in train + val.
    """
    return (
        "a table with a time column by time t against manifest.yaml's timestamps: train "
        "t <= val_timestamp, val val_timestamp < t <= test_timestamp, test t > "
        "test_timestamp; a table without one by row position of its n rows: train "
        f"[0, floor(n*{val_split:g})), val [floor(n*{val_split:g}), floor(n*{test_split:g})),"
        " test the rest; rows whose target is null are no items"
    )


def task_descriptions(schema_tables: list[TableSpec], tables: dict[str, pd.DataFrame]) -> list:
    """One `{"name", "table", "column", "task_type"}` per feature column, in table then
    column order: what plurel.json records so that a reader can derive the tasks.

    Args:
        schema_tables: the tables' keys and time columns, in schema order.
        tables: table name -> generated frame.
    """
    tasks = []
    for spec in schema_tables:
        dtypes = tables[spec.name].dtypes.to_dict()  # not df[column]: a Series each, ~40 µs
        tasks += [{"name": f"{spec.name}-{column}", "table": spec.name, "column": column,
                   "task_type": task_type_of(dtypes[column])}
                  for column in feature_columns(spec, tables[spec.name])]  # fmt: skip
    return tasks


def table_tasks(
    spec: TableSpec,
    df: pd.DataFrame,
    val_timestamp: pd.Timestamp,
    test_timestamp: pd.Timestamp,
    val_split: float,
    test_split: float,
) -> list[AutocompleteTask]:
    """The autocomplete tasks of one table, named `<table>-<column>`, with their labels
    (the write_tasks path: it imports relbench, and so scikit-learn).

    Args:
        spec: the table's keys and time column.
        df: the generated table.
        val_timestamp: the dataset's validation cut-off.
        test_timestamp: the dataset's test cut-off.
        val_split: fraction of rows in train, for a table without a time column.
        test_split: fraction of rows in train + val, for a table without a time column.
    """
    from relbench.base.task_base import sort_labels
    from relbench.manifest import KIND_AUTOCOMPLETE, TaskManifest

    entity_col = spec.pkey or POSITION_KEY
    keys = pd.DataFrame(
        {entity_col: df[spec.pkey] if spec.pkey else np.arange(len(df), dtype=np.int64)}
    )
    if spec.time_col is not None:
        keys.insert(0, spec.time_col, df[spec.time_col])
    masks = _split_masks(spec, df, val_timestamp, test_timestamp, val_split, test_split)
    sort_cols = [spec.time_col, entity_col]  # relbench's label_sort_cols for entity tasks
    tasks = []
    for column in feature_columns(spec, df):
        frame = keys.assign(**{column: df[column]})
        present = df[column].notna().to_numpy()
        labels = {
            split: sort_labels(frame[masks[split] & present].reset_index(drop=True), sort_cols)
            for split in SPLITS
        }
        manifest = TaskManifest(
            name=f"{spec.name}-{column}",
            kind=KIND_AUTOCOMPLETE,
            task_type=task_type_of(df[column]),
            description=_description(spec, column, val_split, test_split),
            entity_table=spec.name,
            target_col=column,
        )
        manifest.validate()
        tasks.append(AutocompleteTask(manifest, labels))
    return tasks
