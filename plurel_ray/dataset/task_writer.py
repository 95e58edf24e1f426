"""`plurel-ray tasks add DIR FILE`: write the tasks a suite file defines into a dataset.

    written = add_tasks("data/shop", "shop-tasks.yaml")     # [Path("data/shop/tasks/…"), …]

The file is a task suite (`dataset.suite`, docs/tasks.md); its entries for DIR's dataset
that *define* a task become RelBench-3 task folders — `tasks/<name>/manifest.yaml` and
`{train,val,test}.parquet` — that `relbench.load_dataset(DIR).load_task(name)` loads:

- `table` + `target`: an autocomplete task named `<table>-<target>`, its labels the rows
  of the table (which needs a time column) in RelBench's windows at the dataset's val/test
  timestamps;
- `task` + `table` + `target` + `timedelta` + `query`: a forecast task whose labels the
  query computes at RelBench's seed timestamps of each split (train back from
  val_timestamp - timedelta, val at val_timestamp, test at test_timestamp).

Labels come from RelBench's own regeneration (`build_task(..., regenerate=True)`), run on
the whole database; `leakage` becomes the manifest's `remove_columns`. Every task is built
and checked before anything is written, and each folder appears whole (renamed into
place), so a bad entry leaves the dataset as it was.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from relbench.manifest import KIND_AUTOCOMPLETE, KIND_FORECAST, DatasetManifest, TaskManifest

from plurel_ray.dataset.relbench_io import parquet_bytes
from plurel_ray.dataset.suite import Suite, SuiteEntry, load_suite
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.names import check_name, path_inside
from plurel_ray.util.atomic_dir import atomic_directory

SPLITS = ("train", "val", "test")
FORECAST_TIME_COL = "timestamp"  # the seed-time column of RelBench's label SQL


def add_tasks(
    dataset: str | os.PathLike, suite_file: str | os.PathLike, *, overwrite: bool = False
) -> list[Path]:
    """Write the tasks `suite_file` defines for the dataset at `dataset` (module docstring).

    Args:
        dataset: a RelBench-3 dataset folder (e.g. one `plurel-ray import` wrote).
        suite_file: a task suite file with defining entries for that dataset.
        overwrite: replace task folders that already exist.

    Returns:
        The task folders written, in file order.

    Raises:
        ConfigError: the file is invalid, defines no task of this dataset, or has an
            entry of another dataset under `match: all`.
        DatasetError: a task that exists, an unknown table or column, a query that fails
            or returns duplicate (key, timestamp) rows or null labels; one line naming
            the entry.
    """
    root = Path(dataset).expanduser()
    try:
        manifest = DatasetManifest.load(root / "manifest.yaml")
    except OSError as err:
        raise DatasetError(f"{root}: not a RelBench-3 dataset folder ({err.strerror})") from None
    suite = load_suite(suite_file)
    entries = _defining_entries(suite, manifest.name, root)
    import relbench

    loaded = relbench.load_dataset(root)
    built = [_build(loaded, manifest, root, entry, f"{suite.path}: {entry.label}", overwrite)
             for entry in entries]  # fmt: skip
    names = [task.name for task, _ in built]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{suite.path}: task(s) {', '.join(twice)} defined more than once")
    return [_write(root, task, labels, overwrite) for task, labels in built]


def _defining_entries(suite: Suite, name: str, root: Path) -> list[SuiteEntry]:
    defining = []
    for entry in suite.entries:
        if entry.dataset != name:
            if suite.match == "given":
                continue
            raise ConfigError(f"{suite.path}: entry {entry.label} is for dataset "
                              f"{entry.dataset!r}, but {root} is {name!r}; fix dataset: or "
                              "set `match: given`")  # fmt: skip
        if entry.query is not None or entry.table is not None:
            defining.append(entry)
        elif not (root / "tasks" / entry.task / "manifest.yaml").is_file():
            raise DatasetError(f"{suite.path}: entry {entry.label} names task {entry.task!r}, "
                               f"which {root} does not have and the entry does not define "
                               "(add table:, target:, timedelta: and query:)")  # fmt: skip
    if not defining:
        raise ConfigError(f"{suite.path}: defines no task of dataset {name!r} (docs/tasks.md)")
    return defining


def _columns(root: Path, table: str) -> list[str]:
    return pq.read_schema(path_inside(root, "db", f"{table}.parquet")).names


def _build(
    dataset, manifest: DatasetManifest, root: Path, entry: SuiteEntry, where: str, overwrite: bool
) -> tuple[TaskManifest, dict[str, pd.DataFrame]]:
    """The task's manifest and labels per split, checked."""
    forecast = entry.query is not None
    name = check_name("task", entry.task if forecast else f"{entry.table}-{entry.target}",
                      DatasetError, f"{where}: ")  # fmt: skip
    if (root / "tasks" / name).exists() and not overwrite:
        raise DatasetError(f"{where}: task {name!r} already exists in {root}; pass --overwrite "
                           "to replace it")  # fmt: skip
    for key in ("val_timestamp", "test_timestamp"):
        wanted, actual = getattr(entry, key), getattr(manifest, key)
        if wanted is not None and pd.Timestamp(wanted) != pd.Timestamp(actual):
            flag = "--" + key.replace("_", "-")
            raise DatasetError(f"{where}: {key} {wanted}, but {root} splits at {actual}; "
                               "RelBench splits every task of a dataset at the dataset's "
                               f"timestamps: import it again with {flag} {wanted}")  # fmt: skip
    spec = manifest.tables.get(entry.table)
    if spec is None:
        raise DatasetError(f"{where}: no table {entry.table!r} in {root} (tables: "
                           f"{', '.join(manifest.tables)})")  # fmt: skip
    columns = _columns(root, entry.table)
    if not forecast:
        if entry.target not in columns:
            raise DatasetError(f"{where}: table {entry.table!r} has no column {entry.target!r} "
                               f"(columns: {', '.join(columns)})")  # fmt: skip
        if spec.time_col is None:
            raise DatasetError(f"{where}: table {entry.table!r} has no time column to split its "
                               "rows by; import it with --time-col TABLE.COLUMN")  # fmt: skip
        _check_windows(root, entry, spec.time_col, manifest, where)
    task = TaskManifest(
        name=name, kind=KIND_FORECAST if forecast else KIND_AUTOCOMPLETE,
        task_type=entry.task_type or "binary_classification",  # provisional: see below
        description=f"{entry.label}, defined in {where.split(': ')[0]}.",
        entity_table=entry.table, entity_col=spec.pkey if forecast else None,
        target_col=entry.target, time_col=FORECAST_TIME_COL if forecast else None,
        timedelta=entry.timedelta, sql=entry.query,
    )  # fmt: skip
    labels = _labels(dataset, task, where)
    # An autocomplete task's labels are keyed by the table's own key and time columns.
    key_cols = [spec.pkey, FORECAST_TIME_COL if forecast else spec.time_col]
    for split, frame in labels.items():
        _check_labels(frame, key_cols, entry.target, f"{where}: {split} labels")
    task_type = entry.task_type or _task_type(labels["train"][entry.target], where)
    pairs = [_leakage_pair(column, entry, manifest, root, where) for column in entry.leakage]
    return replace(task, task_type=task_type, remove_columns=[list(p) for p in pairs if p]), labels


def _check_windows(
    root: Path, entry: SuiteEntry, time_col: str, manifest: DatasetManifest, where: str
) -> None:
    """An autocomplete target is a number or boolean column with a row in every split
    (RelBench fails on an empty one)."""
    frame = pd.read_parquet(
        root / "db" / f"{entry.table}.parquet", columns=[time_col, entry.target]
    )
    _task_type(frame[entry.target], where)  # a text column is no task, whatever its rows
    time = frame.loc[frame[entry.target].notna(), time_col]
    val, test = pd.Timestamp(manifest.val_timestamp), pd.Timestamp(manifest.test_timestamp)
    windows = {"train": time <= val, "val": (time > val) & (time <= test), "test": time > test}
    empty = [split for split, rows in windows.items() if not rows.any()]
    if empty:
        raise DatasetError(f"{where}: no {' or '.join(empty)} items: no row of {entry.table!r} "
                           f"with a {entry.target!r} has its {time_col!r} in that split's window "
                           f"(train up to {manifest.val_timestamp}, val up to "
                           f"{manifest.test_timestamp}, test after); choose other "
                           "timestamps at import")  # fmt: skip


def _labels(dataset, task: TaskManifest, where: str) -> dict[str, pd.DataFrame]:
    """RelBench's labels of each split, regenerated from the whole database.

    Built with a provisional task type (binary: regression would already compute the
    train split's std) and without `remove_columns` (a query may read a column it hides).
    """
    import duckdb
    from relbench.load import build_task

    try:
        built = build_task(dataset, task, regenerate=True)
        db = built.get_db(upto_test_timestamp=False)
        return {s: built.get_table(s, mask_input_cols=False, db=db).df for s in SPLITS}
    except (duckdb.Error, ValueError, RuntimeError, KeyError, TypeError, AssertionError) as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise DatasetError(f"{where}: RelBench cannot build its labels: {text[:400]}") from None


def _check_labels(frame: pd.DataFrame, key_cols: list[str], target: str, where: str) -> None:
    wanted = [*key_cols, target]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DatasetError(f"{where}: the query returns columns {list(frame.columns)}, without "
                           f"{', '.join(missing)}; it must return {', '.join(wanted)}")  # fmt: skip
    duplicated = frame.duplicated(key_cols)
    if duplicated.any():
        row = frame.loc[duplicated, key_cols].iloc[0].tolist()
        raise DatasetError(f"{where}: {int(duplicated.sum())} duplicate "
                           f"({', '.join(key_cols)}) rows, e.g. {row}; return one label per "
                           "entity and timestamp")  # fmt: skip
    nulls = int(frame[target].isna().sum())
    if nulls:
        raise DatasetError(f"{where}: {nulls} null {target!r} labels; give every row a label "
                           "(e.g. COALESCE) or leave the row out")  # fmt: skip
    if frame.empty:
        raise DatasetError(f"{where}: no labels; check the query and the timestamps")


def _task_type(labels: pd.Series, where: str) -> str:
    if pd.api.types.is_bool_dtype(labels):
        return "binary_classification"
    if pd.api.types.is_numeric_dtype(labels):
        return "regression"
    raise DatasetError(f"{where}: the label is a {labels.dtype} column; a task predicts a "
                       "number or a boolean")  # fmt: skip


def _leakage_pair(
    name: str, entry: SuiteEntry, manifest: DatasetManifest, root: Path, where: str
) -> tuple[str, str] | None:
    """(table, column) of a leakage name; None for a column of the forecast's own labels."""
    prefix, dot, column = name.partition(".")
    if dot and prefix in manifest.tables:
        table = prefix
    elif entry.query is not None and name in (entry.target, FORECAST_TIME_COL):
        return None
    else:
        table, column = entry.table, name
    if column not in _columns(root, table):
        raise DatasetError(f"{where}: leakage column {column!r} is not a column of table "
                           f"{table!r}")  # fmt: skip
    return table, column


def _write(
    root: Path, task: TaskManifest, labels: dict[str, pd.DataFrame], overwrite: bool
) -> Path:
    out = path_inside(root, "tasks", task.name)
    with atomic_directory(out, overwrite=overwrite, error=DatasetError) as tmp:
        task.save(tmp / "manifest.yaml")
        for split, frame in labels.items():
            (tmp / f"{split}.parquet").write_bytes(parquet_bytes(frame))
    return out
