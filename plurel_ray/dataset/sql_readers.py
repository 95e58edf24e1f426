"""Read the catalog and the rows of an existing SQL database (`plurel-ray import`).

    with open_database("shop.sqlite") as db:      # or shop.duckdb, postgresql://…, mysql://…
        db.catalog()                               # [CatalogTable(name, columns, pkey, fkeys)]
        db.read("orders")                          # a pandas frame of every row

DuckDB files are read by DuckDB itself. SQLite files are read by DuckDB's `sqlite`
extension when it is installed, else by Python's own sqlite3 (DuckDB's extension is not
bundled with the wheel and installing it needs the network); their catalog — declared
types, primary and foreign keys, which DuckDB's scanner does not expose — always comes
from sqlite3. Postgres and MySQL URIs go through DuckDB's `postgres` and `mysql`
extensions; where one cannot be loaded the error says how to install it. `reader` says
which was used.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from plurel_ray.errors import DatasetError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_DUCKDB_MAGIC = b"DUCK"  # at byte 8 of a DuckDB file
_URI_EXTENSIONS = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql"}


@dataclass(frozen=True)
class CatalogTable:
    """One table as the database declares it.

    Args:
        name: the table's name.
        columns: (column name, declared type) in column order; the type "" when undeclared.
        pkey: the primary key column, or None (no primary key, or a composite one).
        fkeys: (column, referenced table) of each single-column foreign key.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    pkey: str | None
    fkeys: tuple[tuple[str, str], ...]


class _Database:
    """What `open_database` returns: `catalog()`, `read(table)`, `reader`, `dialect`."""

    reader: str
    dialect: str

    def catalog(self) -> list[CatalogTable]:
        """The database's tables, keys and declared column types."""
        raise NotImplementedError

    def read(self, table: str) -> pd.DataFrame:
        """Every row of `table`.

        Args:
            table: a table name of the catalog.
        """
        raise NotImplementedError


class _SqliteDatabase(_Database):
    dialect = "sqlite"

    def __init__(self, path: Path):
        self.path = path
        self.connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        self.duck = _duckdb_with_extension("sqlite")
        if self.duck is not None:
            self.duck.execute("ATTACH ? AS source (TYPE sqlite, READ_ONLY)", [str(path)])
        self.reader = "DuckDB's sqlite extension" if self.duck else "Python's sqlite3"

    def catalog(self) -> list[CatalogTable]:
        names = [row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
        )]  # fmt: skip
        tables = []
        for name in names:
            info = self.connection.execute("SELECT name, type, pk FROM pragma_table_info(?)",
                                           [name]).fetchall()  # fmt: skip
            pkey = [column for column, _, pk in info if pk]
            fkeys = self.connection.execute(
                'SELECT id, "from", "table" FROM pragma_foreign_key_list(?)', [name]
            ).fetchall()
            parts = pd.Series([fk[0] for fk in fkeys]).value_counts()
            single = tuple((col, ref) for id_, col, ref in fkeys if parts[id_] == 1)
            columns = tuple((column, kind or "") for column, kind, _ in info)
            tables.append(CatalogTable(name, columns, pkey[0] if len(pkey) == 1 else None,
                                       single))  # fmt: skip
        return tables

    def read(self, table: str) -> pd.DataFrame:
        if self.duck is not None:
            return self.duck.sql(f"SELECT * FROM source.{_quote(table)}").df()
        return pd.read_sql_query(f"SELECT * FROM {_quote(table)}", self.connection)

    def close(self) -> None:
        self.connection.close()
        if self.duck is not None:
            self.duck.close()


class _DuckDatabase(_Database):
    """A DuckDB file, or a Postgres/MySQL database attached to DuckDB as `source`."""

    dialect = "duckdb"

    def __init__(self, connection, catalog_name: str, reader: str):
        self.connection = connection
        self.catalog_name = catalog_name
        self.reader = reader

    def catalog(self) -> list[CatalogTable]:
        con, where = self.connection, [self.catalog_name]
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT internal "
            "ORDER BY table_oid", where).fetchall()]  # fmt: skip
        columns: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
        for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = ? ORDER BY table_oid, column_index",
            where,
        ).fetchall():
            columns.setdefault(table, []).append((column, kind))
        pkeys: dict[str, str] = {}
        fkeys: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
        for table, kind, cols, ref in con.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table "
            "FROM duckdb_constraints() WHERE database_name = ? ORDER BY constraint_index",
            where,
        ).fetchall():
            if kind == "PRIMARY KEY" and len(cols) == 1:
                pkeys[table] = cols[0]
            elif kind == "FOREIGN KEY" and len(cols) == 1 and ref:
                fkeys[table].append((cols[0], ref))
        return [CatalogTable(n, tuple(columns[n]), pkeys.get(n), tuple(dict.fromkeys(fkeys[n])))
                for n in names]  # fmt: skip

    def read(self, table: str) -> pd.DataFrame:
        return self.connection.sql(
            f"SELECT * FROM {_quote(self.catalog_name)}.{_quote(table)}"
        ).df()

    def close(self) -> None:
        self.connection.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_with_extension(extension: str):
    """A DuckDB connection with `extension` loaded, or None when it is not installed
    (never downloads: autoinstall is switched off first)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET autoinstall_known_extensions = false")
        con.execute(f"LOAD {extension}")
    except duckdb.Error:
        con.close()
        return None
    return con


def _kind_of_file(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        raise DatasetError(f"{path}: cannot read: {err.strerror or err}") from None
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == _DUCKDB_MAGIC:
        return "duckdb"
    return None


def _open(uri: str) -> _Database:
    import duckdb

    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme in _URI_EXTENSIONS:
        extension = _URI_EXTENSIONS[scheme]
        con = _duckdb_with_extension(extension)
        if con is None:
            raise DatasetError(
                f"{scheme} URI: DuckDB's {extension!r} extension cannot be loaded here; install "
                f"it once with `python -c \"import duckdb; duckdb.sql('INSTALL {extension}')\"` "
                "on a machine with network access (or export the database to a DuckDB file)"
            )
        try:
            con.execute(f"ATTACH ? AS source (TYPE {extension}, READ_ONLY)", [uri])
        except duckdb.Error as err:
            con.close()
            raise DatasetError(f"{scheme} URI: cannot attach: {_first_line(err)}") from None
        return _DuckDatabase(con, "source", f"DuckDB's {extension} extension")
    path = Path(uri.removeprefix("sqlite:///").removeprefix("duckdb:///")).expanduser()
    if scheme not in ("", "sqlite", "duckdb") or not path.is_file():
        raise DatasetError(
            f"{uri}: not a SQLite or DuckDB file, nor a postgresql:// or mysql:// URI; "
            "give the path of a database file or such a URI"
        )
    kind = _kind_of_file(path)
    if kind == "sqlite":
        return _SqliteDatabase(path)
    if kind == "duckdb":
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as err:
            raise DatasetError(f"{path}: DuckDB cannot open it: {_first_line(err)}") from None
        name = con.execute("SELECT current_database()").fetchone()[0]
        return _DuckDatabase(con, name, "DuckDB")
    raise DatasetError(f"{path}: neither a SQLite nor a DuckDB database file (by its header)")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@contextlib.contextmanager
def open_database(uri: str | os.PathLike) -> Iterator[_Database]:
    """The database at `uri`, open read-only for the duration of the `with` block.

    Args:
        uri: a SQLite or DuckDB file (a path, or sqlite:///path, duckdb:///path), or a
            postgresql:// or mysql:// URI.

    Raises:
        DatasetError: the file is missing, unreadable or of another kind; the URI's
            DuckDB extension cannot be loaded or the database cannot be attached.
    """
    database = _open(os.fspath(uri))
    try:
        yield database
    finally:
        database.close()
