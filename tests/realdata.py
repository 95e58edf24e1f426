"""A RelBench-3 folder shaped like real data rather than like our generator's output.

String and non-dense integer primary keys, timestamps in ms and ns with and without a
time zone, a date32 column, nullable integers, NaN and ±inf floats, text, a list-valued
column, a binary column, a table with seven foreign keys (nullable, float-encoded,
list-valued, dangling), a forecast-style task with train/val/test labels written with
snappy and zstd, and an autocomplete task. `EXPECTED` holds the counts a store of it
must have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

VAL_TIMESTAMP = "2021-01-01"
TEST_TIMESTAMP = "2022-01-01"
FORECAST_TASK = "user-churn"
AUTOCOMPLETE_TASK = "users-age"


def _ts(unit: str, tz: str | None, values: list[str | None]) -> pa.Array:
    """ISO times read as UTC, as a timestamp array of `unit` in zone `tz`."""
    ticks = [None if v is None else int(np.datetime64(v, unit).astype(np.int64)) for v in values]
    return pa.array(ticks, pa.timestamp(unit, tz))


def users() -> pa.Table:
    return pa.table({
        "user_id": pa.array(["u0", "u1", "u2", "u3"]),
        "signup": _ts("ms", "UTC", ["2020-01-01", "2020-06-01", None, "2021-06-01"]),
        "birthday": pa.array([7305, 7306, -1, None], pa.date32()),
        "age": pa.array([30, None, 50, 60], pa.int64()),
        "score": pa.array([1.0, float("nan"), float("inf"), -2.0]),
        "bio": pa.array(["likes tea", None, "likes tea", "runs"]),
        "tags": pa.array([["a", "b"], [], None, ["c"]], pa.list_(pa.string())),
        "avatar": pa.array([b"\x89PNG", None, b"", b"x"], pa.binary()),
    })  # fmt: skip


def products() -> pa.Table:
    return pa.table({
        "product_id": pa.array([100, 205, 310], pa.int64()),
        "price": pa.array([9.5, 20.0, None]),
        "added": _ts("ns", None, ["2019-05-01", "2019-05-02", "2019-05-03"]),
    })  # fmt: skip


def stores() -> pa.Table:
    return pa.table({"store_id": pa.array([0, 1], pa.int32()), "city": ["Oslo", "Lima"]})


def orders() -> pa.Table:
    return pa.table({
        "order_id": pa.array([7, 3, 9, 1], pa.int64()),
        "user_id": ["u0", "u1", "u3", "u0"],
        "product_id": pa.array([100, 205, 310, 100], pa.int64()),
        "store_id": pa.array([0, 1, 1, 0], pa.int64()),
        "referrer_id": pa.array([None, "u0", None, "u2"]),
        "bundle": pa.array([[100, 205], None, [], [310, None, 999]], pa.list_(pa.int64())),
        "seller_id": ["u1", "u1", "nobody", "u2"],
        # pandas writes a nullable integer key as float64 with NaN.
        "warehouse": pa.array([0.0, float("nan"), 1.0, 1.0]),
        "ordered_at": _ts("ns", "America/New_York",
                          ["2020-03-01", "2020-03-01", "2021-02-01", None]),
        "amount": pa.array([10.0, 20.0, 30.0, 40.0]),
    })  # fmt: skip


ORDER_FKEYS = {
    "user_id": "users", "product_id": "products", "store_id": "stores",
    "referrer_id": "users", "bundle": "products", "seller_id": "users", "warehouse": "stores",
}  # fmt: skip


def churn_labels(split: str) -> pa.Table:
    rows = {
        "train": (["2020-06-01", "2020-06-01", "2020-09-01"], ["u0", "u1", "u0"], [0, 1, 1]),
        "val": (["2021-03-01"], ["u3"], [0]),
        "test": (["2022-03-01", "2022-03-01"], ["u2", "u9"], [1, 0]),
    }[split]
    return pa.table({
        "timestamp": _ts("ns", None, rows[0]),
        "user_id": rows[1],
        "churn": pa.array(rows[2], pa.int64()),
    })  # fmt: skip


# What a store of the whole folder holds.
EXPECTED = {
    "tables": ["users", "products", "stores", "orders",
               f"{FORECAST_TASK}/train", f"{FORECAST_TASK}/val", f"{FORECAST_TASK}/test"],
    "num_nodes": [4, 3, 2, 4, 3, 1, 2],
    # orders: "nobody", 999 (a bundle element); user-churn/test: "u9".
    "dangling_fkeys": [0, 0, 0, 2, 0, 0, 1],
    # orders: 4 user + 4 product + 4 store + 2 referrer + 3 bundle + 3 seller + 3
    # warehouse; task rows: 3 + 1 + 1.
    "f2p_edges": 23 + 5,
    "skipped": [("users", "avatar", "binary")],
    "max_f2p": 7,
}  # fmt: skip


def _write(table: pa.Table, path: Path, compression: str = "zstd") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=compression)


def write_realdata_folder(root: Path) -> Path:
    """Write the folder at `root` (created) and return it."""
    tables = {"users": users(), "products": products(), "stores": stores(), "orders": orders()}
    specs = {
        "users": {"pkey": "user_id", "time_col": "signup", "fkeys": {}},
        "products": {"pkey": "product_id", "time_col": "added", "fkeys": {}},
        "stores": {"pkey": "store_id", "time_col": None, "fkeys": {}},
        "orders": {"pkey": "order_id", "time_col": "ordered_at", "fkeys": ORDER_FKEYS},
    }
    for name, table in tables.items():
        _write(table, root / "db" / f"{name}.parquet", "snappy" if name == "users" else "zstd")
    manifest = {
        "name": "realdata", "manifest_version": 1, "val_timestamp": VAL_TIMESTAMP,
        "test_timestamp": TEST_TIMESTAMP, "tables": specs,
    }  # fmt: skip
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    forecast = root / "tasks" / FORECAST_TASK
    for split, codec in {"train": "snappy", "val": "zstd", "test": "snappy"}.items():
        _write(churn_labels(split), forecast / f"{split}.parquet", codec)
    (forecast / "manifest.yaml").write_text(yaml.safe_dump({
        "name": FORECAST_TASK, "kind": "forecast", "task_type": "binary_classification",
        "entity_table": "users", "entity_col": "user_id", "target_col": "churn",
        "time_col": "timestamp", "timedelta": "90 days",
        "sql": "SELECT 1", "remove_columns": [["users", "score"]],
    }))  # fmt: skip
    autocomplete = root / "tasks" / AUTOCOMPLETE_TASK
    autocomplete.mkdir(parents=True)
    (autocomplete / "manifest.yaml").write_text(yaml.safe_dump({
        "name": AUTOCOMPLETE_TASK, "kind": "autocomplete", "task_type": "regression",
        "entity_table": "users", "target_col": "age",
    }))  # fmt: skip
    return root
