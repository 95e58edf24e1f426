"""`plurel-ray import`: an existing SQL database → a RelBench-3 dataset folder.

    report = import_database("shop.sqlite", "data/shop", time_cols=["orders.ordered_at"])

What it writes (docs/tasks.md#your-own-database):

    <out>/manifest.yaml        tables, primary/foreign keys, time columns, val/test timestamps
    <out>/db/<table>.parquet   every row in time order; keys renumbered 0..n-1 (RelBench)
    <out>/keys/<table>.parquet the database's own key of each row, where it is not 0..n-1
    <out>/import.json          source, reader, time columns, timestamps and skipped columns

Keys and time columns come from the database's catalog, overridden per table by a keys
YAML file (`read_keys_file`) and by `--time-col`. A table with one DATE/TIMESTAMP column
and no time column given takes that one, as the generator's SQL-schema path does. Column
types are mapped as that path maps them (`sql_schema.column_kind`); a column it has no cell
for (BLOB, JSON, lists) is skipped and listed. The folder is built beside `out` and renamed
into place: a failed import leaves nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from relbench.manifest import DatasetManifest, TableSpec

from plurel_ray.config import Config
from plurel_ray.dataset.relbench_io import _iso, parquet_bytes
from plurel_ray.dataset.sql_keys import KeysFile, TablePlan, plan_tables, read_keys_file
from plurel_ray.dataset.sql_readers import open_database
from plurel_ray.errors import DatasetError
from plurel_ray.names import check_name, path_inside
from plurel_ray.synth.sql_schema import BOOLEAN, NUMBER, TEXT, TIME
from plurel_ray.util.atomic_dir import atomic_directory

IMPORT_FILE = "import.json"
KEYS_DIR = "keys"
# Default val/test timestamps: these quantiles of every time column's values, pooled (the
# generator's default split fractions), floored to whole days on a timeline of days.
VAL_QUANTILE, TEST_QUANTILE = Config().val_split, Config().test_split
_DAY_FLOOR_SPAN = pd.Timedelta(days=10)


@dataclass
class ImportReport:
    """What `import_database` did.

    Args:
        path: the dataset folder written.
        reader: what read the database (DuckDB, an extension of it, or sqlite3).
        rows: table → rows written.
        time_cols: table → its time column (None without one).
        val_timestamp: the dataset's validation timestamp (ISO).
        test_timestamp: its test timestamp (ISO).
        timestamps_from: "given", or how they were chosen from the time columns.
        skipped: "table.column (TYPE)" of each column without a cell type.
        dangling: "table.column" → foreign-key values naming no row (written as null).
    """

    path: Path
    reader: str
    rows: dict[str, int] = field(default_factory=dict)
    time_cols: dict[str, str | None] = field(default_factory=dict)
    val_timestamp: str = ""
    test_timestamp: str = ""
    timestamps_from: str = ""
    skipped: list[str] = field(default_factory=list)
    dangling: dict[str, int] = field(default_factory=dict)


def import_database(
    uri: str | os.PathLike,
    out: str | os.PathLike,
    *,
    keys: str | os.PathLike | None = None,
    time_cols: tuple[str, ...] | list[str] = (),
    val_timestamp: str | None = None,
    test_timestamp: str | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Write the database at `uri` as a RelBench-3 dataset folder at `out`, atomically.

    Args:
        uri: a SQLite or DuckDB file, or a postgresql:// or mysql:// URI (`open_database`).
        out: the dataset folder to create; its name is the dataset's name.
        keys: a keys YAML file (`read_keys_file`) for what the catalog does not declare.
        time_cols: `table.column` of time columns, over the keys file and the catalog.
        val_timestamp: the validation timestamp (over the keys file's); default from the
            time columns' quantiles (`VAL_QUANTILE`).
        test_timestamp: the test timestamp, likewise (`TEST_QUANTILE`).
        overwrite: replace an existing folder at `out`.

    Raises:
        DatasetError: `out` exists, the database cannot be read, a table has no primary
            key, a key or time column names a missing table or column, duplicate or null
            primary keys; one line naming the table and the fix.
        ConfigError: the keys file is invalid.
    """
    out = Path(out).expanduser()
    name = check_name("dataset", out.resolve().name, DatasetError, f"--out {out}: ")
    if os.path.lexists(out) and not overwrite:
        raise DatasetError(f"{out} already exists; pass --overwrite to replace it")
    given = read_keys_file(keys) if keys is not None else KeysFile({}, None, None)
    where = f"{os.fspath(uri)}: "
    with open_database(uri) as database:
        plans = plan_tables(database.catalog(), given, list(time_cols), database.dialect, where)
        report = ImportReport(out, database.reader)
        frames = {plan.name: database.read(plan.name) for plan in plans}
    tables, originals = _renumber(plans, frames, report, where)
    val, test, report.timestamps_from = _timestamps(
        tables, plans, val_timestamp or given.val_timestamp, test_timestamp or given.test_timestamp,
        where,
    )  # fmt: skip
    report.val_timestamp, report.test_timestamp = _iso(val), _iso(test)
    manifest = DatasetManifest(
        name=name, val_timestamp=report.val_timestamp, test_timestamp=report.test_timestamp,
        description=f"Imported by plurel-ray from {_shown(uri)} ({database.reader}).",
        tables={p.name: TableSpec(pkey=p.pkey, time_col=p.time_col, fkeys=dict(p.fkeys))
                for p in plans},
    )  # fmt: skip
    with atomic_directory(out, overwrite=overwrite, error=DatasetError) as tmp:
        _write(tmp, tables, originals, manifest, report, uri)
    return report


def _shown(uri: str | os.PathLike) -> str:
    """The URI without its password (postgresql://user:secret@host → user:***@host)."""
    text = os.fspath(uri)
    scheme, sep, rest = text.partition("://")
    credentials, at, host = rest.rpartition("@")
    if sep and at and ":" in credentials:
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return text


def _renumber(
    plans: list[TablePlan], frames: dict[str, pd.DataFrame], report: ImportReport, where: str
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Each table with rows sorted by time (if it has a time column) and key, the key
    renumbered 0..n-1, foreign keys pointing at the new numbers, and cells typed; plus
    the original keys."""
    originals: dict[str, pd.Series] = {}
    for plan in plans:
        key = frames[plan.name][plan.pkey]
        if key.isna().any() or key.duplicated().any():
            bad = "null" if key.isna().any() else f"duplicate ({key[key.duplicated()].iloc[0]!r})"
            raise DatasetError(f"{where}table {plan.name!r}: primary key {plan.pkey!r} has a "
                               f"{bad} value; a primary key identifies each row once")  # fmt: skip
        frame = frames[plan.name]
        order = [plan.pkey]
        if plan.time_col is not None:
            # RelBench keeps rows up to a timestamp and still wants keys 0..k-1: rows in
            # time order, undated ones last.
            frame[plan.time_col] = _typed(frame[plan.time_col], TIME)
            order.insert(0, plan.time_col)
        frame = frame.sort_values(order, kind="stable", na_position="last")
        frame = frame.reset_index(drop=True)
        frames[plan.name] = frame
        originals[plan.name] = frame[plan.pkey]
    tables = {}
    for plan in plans:
        frame = frames[plan.name].copy()
        frame[plan.pkey] = np.arange(len(frame), dtype=np.int64)
        for column, parent in plan.fkeys:
            index = pd.Index(originals[parent]).get_indexer(frames[plan.name][column])
            missing = (index < 0) & frames[plan.name][column].notna().to_numpy()
            if missing.any():
                report.dangling[f"{plan.name}.{column}"] = int(missing.sum())
            frame[column] = (index if (index >= 0).all()
                             else np.where(index >= 0, index, np.nan))  # fmt: skip
        skipped = [f"{plan.name}.{c} ({t or 'no type'})" for c, t in plan.skipped]
        for column, kind in plan.cells.items():
            kind = kind or infer_kind(frame[column])
            if kind is None:
                skipped.append(f"{plan.name}.{column} (values of no cell type)")
                frame = frame.drop(columns=[column])
            else:
                frame[column] = _typed(frame[column], kind)
        frame = frame.drop(columns=[c for c, _ in plan.skipped])
        report.skipped += skipped
        report.rows[plan.name] = len(frame)
        report.time_cols[plan.name] = plan.time_col
        tables[plan.name] = frame
    return tables, originals


def _typed(values: pd.Series, kind: str) -> pd.Series:
    """A column as the store reads its cell type (docs/store-format.md)."""
    if kind == NUMBER:
        return pd.to_numeric(values, errors="coerce")
    if kind == BOOLEAN:
        as_bool = values.map(lambda v: None if pd.isna(v) else bool(v), na_action="ignore")
        return as_bool.astype("boolean" if values.isna().any() else bool)
    if kind == TEXT:
        return values.map(str, na_action="ignore").astype(object)
    times = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return times.dt.tz_localize(None)


def infer_kind(values: pd.Series) -> str | None:
    """The cell type of an untyped column (SQLite allows them) by its values.

    Args:
        values: the column as read.
    """
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(values):
        return NUMBER
    if pd.api.types.is_datetime64_any_dtype(values):
        return TIME
    if len(present) and present.map(lambda v: isinstance(v, str)).all():
        return TEXT
    return None


def _timestamps(
    tables: dict[str, pd.DataFrame],
    plans: list[TablePlan],
    val: str | None,
    test: str | None,
    where: str,
) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    times = pd.concat(
        [tables[p.name][p.time_col] for p in plans if p.time_col is not None]
        or [pd.Series([], dtype="datetime64[ns]")]
    ).dropna()
    how = "given"
    if val is None or test is None:
        if times.empty:
            raise DatasetError(f"{where}no time column to choose the val/test timestamps "
                               "from; give --time-col TABLE.COLUMN or --val-timestamp and "
                               "--test-timestamp")  # fmt: skip
        floor = times.max() - times.min() > _DAY_FLOOR_SPAN
        chosen = [times.quantile(q).floor("D" if floor else "s")
                  for q in (VAL_QUANTILE, TEST_QUANTILE)]  # fmt: skip
        val = val or _iso(chosen[0])
        test = test or _iso(chosen[1])
        how = (f"the {VAL_QUANTILE:g} and {TEST_QUANTILE:g} quantiles of {len(times):,} "
               f"time-column values{', floored to days' if floor else ''}")  # fmt: skip
    try:
        val_ts, test_ts = pd.Timestamp(val), pd.Timestamp(test)
    except ValueError as err:
        raise DatasetError(f"{where}val/test timestamp: {err}") from None
    if not val_ts < test_ts:
        raise DatasetError(f"{where}val timestamp {val} is not before test timestamp {test}; "
                           "give --val-timestamp before --test-timestamp")  # fmt: skip
    return val_ts, test_ts, how


def _write(
    root: Path,
    tables: dict[str, pd.DataFrame],
    originals: dict[str, pd.Series],
    manifest: DatasetManifest,
    report: ImportReport,
    uri: str | os.PathLike,
) -> None:
    for name, frame in tables.items():
        path_inside(root, "db", f"{name}.parquet").parent.mkdir(exist_ok=True)
        (root / "db" / f"{name}.parquet").write_bytes(parquet_bytes(frame))
        original = originals[name]
        if not np.array_equal(original.to_numpy(), np.arange(len(original))):
            path_inside(root, KEYS_DIR, f"{name}.parquet").parent.mkdir(exist_ok=True)
            (root / KEYS_DIR / f"{name}.parquet").write_bytes(parquet_bytes(original.to_frame()))
    manifest.save(root / "manifest.yaml")
    record = {
        "source": _shown(uri), "reader": report.reader, "rows": report.rows,
        "time_cols": report.time_cols, "val_timestamp": report.val_timestamp,
        "test_timestamp": report.test_timestamp, "timestamps_from": report.timestamps_from,
        "skipped_columns": report.skipped, "dangling_foreign_keys": report.dangling,
        "keys": f"{KEYS_DIR}/<table>.parquet: row i holds the database's key of row i of "
                "db/<table>.parquet (absent where that key is already i)",
    }  # fmt: skip
    (root / IMPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")


def database_keys(dataset: str | os.PathLike, table: str, index: np.ndarray) -> np.ndarray:
    """The database's own primary keys of rows `index` of an imported table (the numbers
    its db/<table>.parquet holds); `index` itself when the table kept its keys.

    Args:
        dataset: the dataset folder `import_database` wrote.
        table: the table's name.
        index: row numbers (0..n-1 keys) of that table.
    """
    check_name("table", table, DatasetError)
    file = Path(dataset).expanduser() / KEYS_DIR / f"{table}.parquet"
    if not file.is_file():
        return np.asarray(index)
    keys = pd.read_parquet(file).iloc[:, 0].to_numpy()
    return keys[np.asarray(index, dtype=np.int64)]
