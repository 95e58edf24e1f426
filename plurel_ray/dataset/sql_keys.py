"""Which keys and time column each imported table has: the catalog's, a keys file's, flags'.

A keys file says what a database does not declare (SQLite files often declare no foreign
keys, views and exports no primary keys), per table; a field it gives replaces the
catalog's, one it leaves out keeps it:

    tables:
      customers:
        pkey: customer_id
      orders:
        pkey: order_id
        fkeys: {customer_id: customers, product_id: products}
        time_col: ordered_at
    val_timestamp: 2021-01-01        # optional: the dataset's val/test timestamps
    test_timestamp: 2021-06-01
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plurel_ray.dataset.sql_readers import CatalogTable
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.limits import load_yaml_file
from plurel_ray.names import check_name
from plurel_ray.synth.sql_schema import TIME, column_kind

_FILE_KEYS = {"tables", "val_timestamp", "test_timestamp"}
_TABLE_KEYS = {"pkey", "fkeys", "time_col"}


@dataclass(frozen=True)
class KeysFile:
    """A keys file as read: table → the fields it gives, and the timestamps (or None)."""

    tables: dict[str, dict[str, Any]]
    val_timestamp: str | None
    test_timestamp: str | None


@dataclass(frozen=True)
class TablePlan:
    """How one table is imported.

    Args:
        name: the table.
        pkey: its primary key column.
        fkeys: (column, referenced table) pairs.
        time_col: its time column, or None.
        cells: every other column → its cell type (`sql_schema.column_kind`), or None
            when the database declares no usable type and the values decide.
        skipped: (column, declared type) of columns without a cell type.
    """

    name: str
    pkey: str
    fkeys: tuple[tuple[str, str], ...]
    time_col: str | None
    cells: dict[str, str | None]
    skipped: tuple[tuple[str, str], ...]


def read_keys_file(path: str | os.PathLike) -> KeysFile:
    """The keys file at `path` (module docstring).

    Args:
        path: the YAML file.

    Raises:
        ConfigError: unreadable, invalid YAML, or a field unknown or of the wrong type.
    """
    path = Path(path).expanduser()
    where = f"--keys {path}"
    content = load_yaml_file(path, where, ConfigError, "a keys file")
    if not isinstance(content, dict) or set(content) - _FILE_KEYS:
        raise ConfigError(f"{where}: a mapping with tables: (and val_timestamp:, "
                          "test_timestamp:), see docs/tasks.md#your-own-database")  # fmt: skip
    tables = content.get("tables") or {}
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: tables: maps table names to pkey/fkeys/time_col")
    for table, fields in tables.items():
        if not isinstance(fields, dict) or set(fields) - _TABLE_KEYS:
            raise ConfigError(f"{where}: tables.{table}: give pkey:, fkeys: or time_col: only")
        fkeys = fields.get("fkeys", {})
        if not isinstance(fkeys, dict) or not all(isinstance(v, str) for v in fkeys.values()):
            raise ConfigError(f"{where}: tables.{table}.fkeys: maps columns to table names")
    stamps = [_timestamp(content.get(k), where, k) for k in ("val_timestamp", "test_timestamp")]
    return KeysFile({str(t): dict(f) for t, f in tables.items()}, *stamps)


def _timestamp(value: Any, where: str, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2021-01-01 as a date
        return value.isoformat()
    raise ConfigError(f"{where}: {key} must be an ISO date or datetime, got {value!r}")


def _time_flags(flags: list[str], tables: dict[str, CatalogTable], where: str) -> dict[str, str]:
    """`table.column` flags → {table: column}; a table name may itself hold dots."""
    chosen: dict[str, str] = {}
    for flag in flags:
        splits = [(flag[:i], flag[i + 1 :]) for i, c in enumerate(flag) if c == "."]
        found = [(t, c) for t, c in splits if t in tables and c in dict(tables[t].columns)]
        if not found:
            raise DatasetError(f"{where}--time-col {flag}: no column of that name; write it as "
                               f"TABLE.COLUMN (tables: {', '.join(tables)})")  # fmt: skip
        chosen[found[0][0]] = found[0][1]
    return chosen


def plan_tables(
    catalog: list[CatalogTable], given: KeysFile, time_flags: list[str], dialect: str, where: str
) -> list[TablePlan]:
    """Each table's keys, time column and cell types, checked against each other.

    Args:
        catalog: the database's tables (`open_database(...).catalog()`).
        given: the keys file's fields.
        time_flags: `--time-col` values, TABLE.COLUMN.
        dialect: how the catalog spells types ("sqlite", "duckdb").
        where: the prefix of error messages (the database's URI).

    Raises:
        DatasetError: a name that cannot be a file name, a table without a primary key,
            a key or time column that names a missing table or column.
    """
    tables = {}
    for table in catalog:
        check_name("table", table.name, DatasetError, where)
        for column, _ in table.columns:
            check_name(f"column of table {table.name!r}", column, DatasetError, where)
        tables[table.name] = table
    unknown = sorted(set(given.tables) - set(tables))
    if unknown:
        raise DatasetError(f"{where}the keys file names table(s) {', '.join(unknown)}, which the "
                           f"database does not have (tables: {', '.join(tables)})")  # fmt: skip
    if not tables:
        raise DatasetError(f"{where}the database has no tables")
    flags = _time_flags(time_flags, tables, where)
    return [_plan(t, given.tables.get(t.name, {}), flags.get(t.name), tables, dialect, where)
            for t in tables.values()]  # fmt: skip


def _plan(
    table: CatalogTable,
    fields: dict[str, Any],
    time_flag: str | None,
    tables: dict[str, CatalogTable],
    dialect: str,
    where: str,
) -> TablePlan:
    name, types = table.name, dict(table.columns)
    pkey = fields.get("pkey", table.pkey)
    if pkey is None:
        raise DatasetError(
            f"{where}table {name!r} has no primary key (or a composite one); declare one, or "
            f"give it in a keys file (--keys keys.yaml): `tables: {{{name}: {{pkey: <column>}}}}`"
        )
    fkeys = tuple(fields["fkeys"].items()) if "fkeys" in fields else table.fkeys
    time_col = time_flag or fields.get("time_col")
    for what, column in [("primary key", pkey), ("time column", time_col),
                         *(("foreign key", c) for c, _ in fkeys)]:  # fmt: skip
        if column is not None and column not in types:
            raise DatasetError(f"{where}table {name!r}: {what} {column!r} is not a column "
                               f"(columns: {', '.join(types)})")  # fmt: skip
    for column, parent in fkeys:
        if parent not in tables:
            raise DatasetError(f"{where}foreign key {name}.{column} references missing table "
                               f"{parent!r}; fix it in a keys file (fkeys:) or import that "
                               "table too")  # fmt: skip
        if column == pkey:
            raise DatasetError(f"{where}{name}.{column} is both the primary key and a foreign "
                               "key; give the table its own key column in a keys file")  # fmt: skip
    keys = {pkey, *(c for c, _ in fkeys)}
    kinds = {c: column_kind(t, dialect) if t else None for c, t in types.items() if c not in keys}
    if time_col is None:
        dated = [c for c, kind in kinds.items() if kind == TIME]
        if len(dated) > 1:
            raise DatasetError(f"{where}table {name!r} has date/time columns {', '.join(dated)}; "
                               f"choose its time column with --time-col {name}.{dated[0]} (or "
                               "time_col: in a keys file)")  # fmt: skip
        time_col = dated[0] if dated else None
    kinds.pop(time_col, None)
    # SQLite's declared types are free text (any spelling has an affinity): the values
    # decide where the mapping has no answer. DuckDB's types are exact.
    skipped = tuple((c, types[c]) for c, k in kinds.items() if k is None and dialect != "sqlite")
    cells = {c: k for c, k in kinds.items() if c not in dict(skipped)}
    return TablePlan(name, pkey, fkeys, time_col, cells, skipped)
