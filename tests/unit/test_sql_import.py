"""`plurel-ray import` on SQLite and DuckDB files the tests build: keys from the catalog and
from a keys file, keys renumbered for RelBench with the database's own kept, the type
mapping, and every bad input as a one-line error that writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import relbench
import yaml
from byod_database import STAMPS, TEST_TIMESTAMP, VAL_TIMESTAMP, write_shop_sqlite

from plurel_ray.cli import main
from plurel_ray.dataset.sql_import import database_keys, import_database
from plurel_ray.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory) -> Path:
    return write_shop_sqlite(tmp_path_factory.mktemp("db") / "shop.sqlite")


def test_a_sqlite_file_becomes_a_folder_relbench_loads_with_its_keys(shop_file, tmp_path):
    report = import_database(shop_file, tmp_path / "shop", **STAMPS)
    assert report.reader == "Python's sqlite3"  # DuckDB's sqlite extension is not installed
    assert report.time_cols == {"customers": "signed_up", "products": None,
                                "orders": "ordered_at"}  # fmt: skip
    assert report.skipped == ["products.photo (values of no cell type)"]
    dataset = relbench.load_dataset(tmp_path / "shop")
    assert (dataset.manifest.val_timestamp, dataset.manifest.test_timestamp) == (
        VAL_TIMESTAMP, TEST_TIMESTAMP)  # fmt: skip
    db = dataset.get_db(upto_test_timestamp=False)  # checks keys are 0..n-1 in row order
    orders = db.table_dict["orders"]
    assert (orders.pkey_col, orders.time_col) == ("order_id", "ordered_at")
    assert orders.fkey_col_to_pkey_table == {"customer_id": "customers", "sku": "products"}
    assert orders.df["ordered_at"].is_monotonic_increasing  # time order: RelBench's upto
    types = orders.df.dtypes.astype(str).to_dict()
    assert types["quantity"] == "int64" and types["amount"] == "float64"
    assert types["returned"] == "bool" and types["ordered_at"].startswith("datetime64")
    # The database's own keys: each order still points at its customer and product.
    with sqlite3.connect(shop_file) as con:
        raw = pd.read_sql_query("SELECT order_id, customer_id, sku FROM orders", con)
    con.close()
    mapped = pd.DataFrame({
        "order_id": database_keys(tmp_path / "shop", "orders", orders.df["order_id"]),
        "customer_id": database_keys(tmp_path / "shop", "customers", orders.df["customer_id"]),
        "sku": database_keys(tmp_path / "shop", "products", orders.df["sku"]),
    })  # fmt: skip
    pd.testing.assert_frame_equal(
        mapped.sort_values("order_id").reset_index(drop=True),
        raw.sort_values("order_id").reset_index(drop=True), check_dtype=False,
    )  # fmt: skip


def test_default_timestamps_are_quantiles_of_the_time_columns(shop_file, tmp_path):
    report = import_database(shop_file, tmp_path / "shop")
    assert report.timestamps_from.startswith("the 0.8 and 0.9 quantiles")
    assert report.val_timestamp < report.test_timestamp
    assert len(report.val_timestamp) == 10  # floored to a day on a timeline of months


def _duck_file(path: Path, with_keys: bool) -> Path:
    key = "PRIMARY KEY" if with_keys else ""
    ref = "REFERENCES teams(team)" if with_keys else ""
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE teams (team VARCHAR {key}, founded DATE, budget DECIMAL(9,2),"
                    " tags VARCHAR[], mood ENUM('calm', 'loud'))")  # fmt: skip
        con.execute(f"CREATE TABLE games (game BIGINT {key}, team VARCHAR {ref}, "
                    "played TIMESTAMP, won BOOLEAN, score HUGEINT, kickoff TIME)")  # fmt: skip
        con.execute("INSERT INTO teams VALUES ('b', '2001-01-01', 10.5, ['x'], 'calm'), "
                    "('a', '2000-01-01', 2.25, [], 'loud')")  # fmt: skip
        con.execute("INSERT INTO games SELECT 10 + i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, "
                    "TIMESTAMP '2020-01-01' + i * INTERVAL 1 DAY, i % 3 = 0, i, TIME '12:00' "
                    "FROM range(30) t(i)")  # fmt: skip
    return path


def test_a_duckdb_file_keys_from_the_catalog_and_the_type_mapping(tmp_path):
    report = import_database(_duck_file(tmp_path / "league.duckdb", True), tmp_path / "league")
    assert report.reader == "DuckDB"
    assert sorted(report.skipped) == ["games.kickoff (TIME)", "teams.tags (VARCHAR[])"]
    db = relbench.load_dataset(tmp_path / "league").get_db(upto_test_timestamp=False)
    teams, games = db.table_dict["teams"].df, db.table_dict["games"].df
    assert teams["team"].tolist() == [0, 1]  # renumbered; 'a' before 'b' in time order
    assert database_keys(tmp_path / "league", "teams", np.array([1, 0])).tolist() == ["b", "a"]
    assert db.table_dict["games"].fkey_col_to_pkey_table == {"team": "teams"}
    assert games["team"].tolist()[:2] == [0, 1]  # game 10 is team 'a'
    assert teams.dtypes.astype(str).to_dict() == {
        "team": "int64",
        "founded": "datetime64[us]",
        "budget": "float64",
        "mood": "object",
    }
    assert str(games["score"].dtype) == "float64" and str(games["won"].dtype) == "bool"


def test_keys_from_a_keys_file_when_the_database_declares_none(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({
        "tables": {"teams": {"pkey": "team", "time_col": "founded"},
                   "games": {"pkey": "game", "fkeys": {"team": "teams"}}},
        "val_timestamp": "2020-01-10", "test_timestamp": "2020-01-20",
    }))  # fmt: skip
    source = _duck_file(tmp_path / "bare.duckdb", False)
    report = import_database(source, tmp_path / "bare", keys=keys)
    assert report.timestamps_from == "given"
    manifest = relbench.load_dataset(tmp_path / "bare").manifest
    assert manifest.tables["games"].fkeys == {"team": "teams"}
    assert (manifest.tables["teams"].time_col, manifest.tables["games"].time_col) == (
        "founded", "played")  # fmt: skip


def test_the_cli_imports_with_time_col_flags(shop_file, tmp_path, capsys):
    code = main(["import", str(shop_file), "--out", str(tmp_path / "shop"),
                 "--time-col", "customers.signed_up", "--val-timestamp", VAL_TIMESTAMP,
                 "--test-timestamp", TEST_TIMESTAMP])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "orders  rows=" in out and "read by Python's sqlite3" in out


def _sqlite(path: Path, script: str) -> Path:
    with sqlite3.connect(path) as con:
        con.executescript(script)
    con.close()
    return path


@pytest.mark.parametrize(
    "script, options, message",
    [
        ("CREATE TABLE t (a INT, d DATE); INSERT INTO t VALUES (1, '2020-01-01');", {},
         r"table 't' has no primary key .*--keys keys.yaml.*`tables: \{t: \{pkey: <column>\}\}`"),
        ("CREATE TABLE t (a INT PRIMARY KEY, p INT REFERENCES parent(id));", {},
         "foreign key t.p references missing table 'parent'"),
        ("CREATE TABLE t (a INT, d DATE); INSERT INTO t VALUES (1, NULL), (1, NULL);",
         {"keys": "tables: {t: {pkey: a}}"}, "primary key 'a' has a duplicate"),
        ("CREATE TABLE t (a INT PRIMARY KEY, b DATE, c TIMESTAMP);", {},
         "table 't' has date/time columns b, c; choose its time column with --time-col t.b"),
        ("CREATE TABLE t (a INT PRIMARY KEY, b INT);", {"time_cols": ["t.x"]},
         "--time-col t.x: no column of that name"),
        ('CREATE TABLE "../evil" (a INT PRIMARY KEY);', {}, "table '../evil' contains '/'"),
        ("CREATE TABLE t (a INT PRIMARY KEY, b INT); INSERT INTO t VALUES (1, 2);", {},
         "no time column to choose the val/test timestamps from"),
    ],
)  # fmt: skip
def test_bad_databases_are_one_line_errors_and_write_nothing(tmp_path, script, options, message):
    source = _sqlite(tmp_path / "bad.sqlite", script)
    if "keys" in options:
        (tmp_path / "keys.yaml").write_text(options["keys"])
        options = {"keys": tmp_path / "keys.yaml"}
    with pytest.raises(DatasetError, match=message) as err:
        import_database(source, tmp_path / "out", **options)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.*"))


def test_unreadable_and_unsupported_uris(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database")
    for uri, message in [
        (tmp_path / "notes.txt", "neither a SQLite nor a DuckDB database file"),
        (tmp_path / "missing.db", "not a SQLite or DuckDB file, nor a postgresql://"),
        ("oracle://host/db", "not a SQLite or DuckDB file"),
        ("postgresql://user:pw@localhost/shop", "DuckDB's 'postgres' extension cannot be loaded"),
        ("mysql://localhost/shop", "DuckDB's 'mysql' extension cannot be loaded.*INSTALL mysql"),
    ]:
        with pytest.raises(DatasetError, match=message):
            import_database(uri, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_and_a_bad_keys_file(shop_file, tmp_path):
    (tmp_path / "shop").mkdir()
    with pytest.raises(DatasetError, match="already exists; pass --overwrite"):
        import_database(shop_file, tmp_path / "shop")
    import_database(shop_file, tmp_path / "shop", overwrite=True, **STAMPS)
    assert (tmp_path / "shop" / "manifest.yaml").is_file()
    keys = tmp_path / "keys.yaml"
    for content, message in [
        ("tables: [", "invalid YAML"),
        ("tables: {orders: {primary: id}}", "give pkey:, fkeys: or time_col:"),
        ("tables: {nope: {pkey: id}}", "names table\\(s\\) nope"),
    ]:
        keys.write_text(content)
        error = DatasetError if "nope" in content else ConfigError
        with pytest.raises(error, match=message):
            import_database(shop_file, tmp_path / "other", keys=keys)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("special", ["/dev/zero", "oversized"])
def test_a_keys_file_is_read_bounded(special, tmp_path):
    """A device or a huge file is refused after DOCUMENT_BYTES, never read whole."""
    from plurel_ray.dataset.sql_keys import read_keys_file
    from plurel_ray.limits import DOCUMENT_BYTES

    path = Path(special)
    if special == "oversized":
        path = tmp_path / "keys.yaml"
        path.write_text("# padding\n" * (DOCUMENT_BYTES.value // 10 + 1))
    with pytest.raises(ConfigError, match=f"--keys {path}: more than .* bytes, not a keys file"):
        read_keys_file(path)
