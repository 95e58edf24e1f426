"""Which row each item of a task split is: its entity key (and timestamp), its target
column's semantic type and standardisation, and the rows a user lists.

A task's items are the rows of its split table that hold the target (the sampler's
`item_nodes`, in file row order): for a forecast task the rows of
`tasks/<task>/<split>.parquet`, keyed by the entity column and the timestamp; for an
autocomplete or derived task the split's rows of the entity table, keyed by its primary
key (or, for a table without one, by the row's position in its file, column `row`).
Store nodes are the file's rows in order, so item → row is node − the table's first node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from plurel_ray.dataset.sql_import import database_keys
from plurel_ray.errors import ConfigError, StoreError
from plurel_ray.store.item_sampler import ItemSampler
from plurel_ray.store.meta import read_meta
from plurel_ray.store.sampler import Source

# The key column of rows of a table without a primary key: their position in its file.
ROW_COLUMN = "row"
_SHOWN_KEYS = 5


@dataclass(frozen=True)
class TaskItems:
    """The items of one task split and the rows they are.

    Args:
        source: the task split.
        dataset: the RelBench-3 folder the store was built from.
        task_type: "binary_classification" or "regression".
        target: the target column.
        key_column: the entity key column (forecast: the label table's entity column).
        keys: the key of every item, in item order: the database's own key (an imported
            database keeps it in keys/<table>.parquet, `sql_import.database_keys`).
        folder_keys: the key of every item as the dataset folder holds it (RelBench's
            0..n-1 for an imported database; else equal to `keys`).
        time_column: the label table's time column (forecast tasks), else None.
        timestamps: datetime64 of every item when `time_column`, else None.
        rows: every item's row in `file`.
        file: the Parquet file the rows are of.
        mean, std: the target's standardisation (value = standardised · std + mean).
    """

    source: Source
    dataset: Path
    task_type: str
    target: str
    key_column: str
    keys: np.ndarray
    folder_keys: np.ndarray
    time_column: str | None
    timestamps: np.ndarray | None
    rows: np.ndarray
    file: Path
    mean: float
    std: float

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def sem_type(self) -> str:
        """The target cells' semantic type: "boolean" or "number"."""
        return "boolean" if self.task_type == "binary_classification" else "number"

    def on_target_scale(self, raw: np.ndarray) -> np.ndarray:
        """The model's outputs as answers: a boolean logit → its probability, a
        standardised number → the target's own scale (docs/contexts.md: stored
        numbers are (value − mean) / std, std 1 where it is zero or undefined)."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.sem_type == "boolean":
            return 1.0 / (1.0 + np.exp(-raw))
        return raw * self.std + self.mean

    def key_frame(self, folder_keys: bool = False) -> pd.DataFrame:
        """One row per item: the key column (and the time column), in item order.

        Args:
            folder_keys: the keys as the dataset folder holds them (what RelBench's
                evaluator joins on), instead of the database's own.
        """
        frame = pd.DataFrame({self.key_column: self.folder_keys if folder_keys else self.keys})
        if self.time_column is not None:
            frame[self.time_column] = self.timestamps
        return frame

    def select(self, wanted: pd.DataFrame, where: str) -> np.ndarray:
        """The item numbers of the rows `wanted` lists (its key column, and the time
        column for a forecast task), in its order.

        Args:
            wanted: the listed rows.
            where: the file they came from, named in errors.

        Raises:
            ConfigError: a key column is missing, or keys that are no item of the split
                (some of them named).
        """
        columns = [c for c in (self.key_column, self.time_column) if c is not None]
        missing = [c for c in columns if c not in wanted.columns]
        if missing:
            raise ConfigError(f"--rows {where}: no column {', '.join(missing)} (it needs "
                              f"{', '.join(columns)})")  # fmt: skip
        index = {key: i for i, key in enumerate(_key_tuples(self.key_frame(), columns))}
        asked = _key_tuples(_like(wanted[columns], self.key_frame()), columns)
        unknown = [key for key in asked if key not in index]
        if unknown:
            shown = ", ".join(str(k[0]) if len(k) == 1 else f"({', '.join(map(str, k))})"
                              for k in unknown[:_SHOWN_KEYS])  # fmt: skip
            raise ConfigError(
                f"--rows {where}: {len(unknown)} of {len(asked)} rows are no item of "
                f"{self.source.label} ({self.source.split} split), e.g. {shown}; list keys "
                "of rows of that split holding the target"
            )
        return np.array([index[key] for key in asked], dtype=np.int64)


def _key_tuples(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return list(zip(*(frame[c].tolist() for c in columns), strict=True))


def _like(wanted: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """`wanted` with the key dtypes of `reference` (a CSV reads timestamps as text)."""
    out = wanted.copy()
    for column in out.columns:
        kind = reference[column].dtype
        try:
            if pd.api.types.is_datetime64_any_dtype(kind):
                out[column] = pd.to_datetime(out[column]).astype(kind)
            else:
                out[column] = out[column].astype(kind)
        except (TypeError, ValueError):
            pass  # left as it is: its keys are reported unknown
    return out


def task_items(sampler: ItemSampler) -> TaskItems:
    """The rows of the items of a sampler built on one task split.

    Args:
        sampler: an `ItemSampler` over exactly one source.

    Raises:
        StoreError: the store's tables no longer match the dataset's files.
        ConfigError: the target is not a number or boolean column.
    """
    (source,) = sampler.sources
    meta = read_meta(source.store)
    dataset = Path(meta["source"]["path"])
    tables = {t["name"]: t for t in meta["tables"]}
    task = next((t for t in meta.get("tasks", []) if t["name"] == source.task), None)
    _, nodes = sampler.item_nodes()
    if task is not None and task["kind"] != "autocomplete":
        table = tables[task["tables"][source.split or "train"]]
        file = _task_file(dataset, source.task, table["split"])
        key_column = next(col for col, parent in table["fkeys"] if parent == task["entity_table"])
        time_column = table["time_col"]
    else:
        table = tables[task["entity_table"] if task is not None else source.table]
        file = dataset / "db" / f"{table['name']}.parquet"
        key_column, time_column = table["pkey"] or ROW_COLUMN, None
    target = task["target_col"] if task is not None else source.target
    rows = nodes.astype(np.int64) - table["node_offset"]
    frame = _read_rows(file, table["num_nodes"], [key_column, time_column])
    folder_keys = rows if key_column == ROW_COLUMN else frame[key_column].to_numpy()[rows]
    keys = folder_keys
    if key_column != ROW_COLUMN:
        entity_table = task["entity_table"] if task is not None else table["name"]
        keys = database_keys(dataset, entity_table, folder_keys)
    times = None if time_column is None else frame[time_column].to_numpy()[rows]
    column = _target_column(meta, table, target)
    std = column.get("std")
    std = std if isinstance(std, int | float) and math.isfinite(std) and std > 0 else 1.0
    return TaskItems(source=source, dataset=dataset, task_type=_task_type(column, source),
                     target=target, key_column=key_column, keys=keys, folder_keys=folder_keys,
                     time_column=time_column,
                     timestamps=times, rows=rows, file=file,
                     mean=float(column.get("mean") or 0.0), std=float(std))  # fmt: skip


def _task_file(dataset: Path, task: str, split: str) -> Path:
    """The label file of a task split: tasks/<folder>/<split>.parquet, the folder being
    the one whose manifest names the task."""
    from plurel_ray.store.dataset_tasks import task_manifests

    _, folder = task_manifests(dataset)[task]
    return folder / f"{split}.parquet"


def _read_rows(file: Path, expected: int, columns: list[str | None]) -> pd.DataFrame:
    """The key (and time) columns of `file`, which must have as many rows as the store."""
    wanted = [c for c in columns if c not in (None, ROW_COLUMN)]
    try:
        frame = pd.read_parquet(file, columns=wanted)
    except (OSError, ValueError) as err:
        raise StoreError(f"{file}: cannot read the item keys ({err}); rebuild the store "
                         "from the dataset as it is now") from None  # fmt: skip
    if len(frame) != expected:
        raise StoreError(f"{file} has {len(frame)} rows but the store {expected}: the dataset "
                         "changed since the store was built; rebuild it "
                         "(plurel-ray preprocess --overwrite)")  # fmt: skip
    return frame


def _target_column(meta: dict, table: dict, target: str) -> dict:
    """The meta.json entry of the target column (a task's columns are listed under its
    first split table)."""
    owners = {table["name"]}
    if table.get("kind") == "task":
        task = next(t for t in meta["tasks"] if t["name"] == table["task"])
        owners |= set(task["tables"].values())
    for column in meta.get("columns", []):
        if column["table"] in owners and column["name"] == target:
            return column
    raise ConfigError(f"{table['name']}: no cell column {target!r} in the store")


def _task_type(column: dict, source: Source) -> str:
    kinds = {"boolean": "binary_classification", "number": "regression"}
    if column.get("sem_type") not in kinds:
        raise ConfigError(f"{source.label}: its target is a {column.get('sem_type')} column; "
                          "predict takes number and boolean targets")  # fmt: skip
    return kinds[column["sem_type"]]
