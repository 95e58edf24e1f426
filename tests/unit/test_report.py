"""The report's figures and tables on small inputs: no Ray, no generator."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.report import (
    eval_summary_table,
    eval_table,
    plot_loss,
    plot_schema,
    read_metrics,
    read_schema,
    smooth,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_drawn(path) -> None:
    """A PNG with something on it: the signature, and pixels that are not all one colour."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert imread(path).std() > 0.01


@pytest.fixture
def dataset(tmp_path):
    """A RelBench-3 folder of 3 tables: users ← orders → items (orders has the time)."""
    folder = tmp_path / "shop"
    (folder / "db").mkdir(parents=True)
    tables = {
        "users": pa.table({"user_id": [0, 1], "age": [30.0, 41.0]}),
        "items": pa.table({"item_id": [0, 1], "vegan": [True, False]}),
        "orders": pa.table({
            "order_id": [0, 1], "user_id": [0, 1], "item_id": [1, 0],
            "at": pa.array([0, 1], pa.timestamp("us")),
        }),
    }  # fmt: skip
    for name, table in tables.items():
        pq.write_table(table, folder / "db" / f"{name}.parquet")
    manifest = {"name": "shop", "tables": {
        "users": {"pkey": "user_id", "time_col": None, "fkeys": {}},
        "items": {"pkey": "item_id", "time_col": None, "fkeys": {}},
        "orders": {"pkey": "order_id", "time_col": "at",
                   "fkeys": {"user_id": "users", "item_id": "items"}},
    }}  # fmt: skip
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_read_schema_takes_columns_from_parquet_and_keys_from_the_manifest(dataset):
    schemas = {t.name: t for t in read_schema(dataset)}
    orders = schemas["orders"]
    assert orders.columns == (("order_id", "int64"), ("user_id", "int64"),
                              ("item_id", "int64"), ("at", "timestamp"))  # fmt: skip
    assert orders.label("order_id", "int64") == "order_id: int64  [PK]"
    assert orders.label("user_id", "int64") == "user_id: int64  [FK → users]"
    assert orders.label("at", "timestamp") == "at: timestamp  [time]"
    assert schemas["items"].columns[1] == ("vegan", "bool")


def test_plot_schema_draws_a_png(dataset, tmp_path):
    _assert_drawn(plot_schema(dataset, tmp_path / "schema.png"))


def test_plot_schema_survives_a_foreign_key_cycle(dataset, tmp_path):
    manifest = yaml.safe_load((dataset / "manifest.yaml").read_text())
    manifest["tables"]["users"]["fkeys"] = {"age": "orders"}  # users → orders → users
    (dataset / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    _assert_drawn(plot_schema(dataset, tmp_path / "schema.png"))


def test_read_schema_names_the_missing_parquet(dataset):
    (dataset / "db" / "items.parquet").unlink()
    with pytest.raises(DatasetError, match=r"items\.parquet: missing"):
        read_schema(dataset)


def test_read_schema_refuses_a_table_name_that_is_a_path(dataset, tmp_path):
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"x": [1]}), outside)
    manifest = yaml.safe_load((dataset / "manifest.yaml").read_text())
    manifest["tables"]["../../outside"] = {"pkey": None, "time_col": None, "fkeys": {}}
    (dataset / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(DatasetError, match=r"table '\.\./\.\./outside'"):
        read_schema(dataset)


def test_read_schema_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(DatasetError, match=r"no manifest\.yaml"):
        read_schema(tmp_path)


def test_plot_loss_draws_a_png_from_metrics_jsonl(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 2.0 / s, "tokens_per_s": 1e3}) + "\n"
                           for s in range(1, 41)))  # fmt: skip
    steps = read_metrics(log)
    assert len(steps) == 40 and steps[-1]["step"] == 40
    _assert_drawn(plot_loss(steps, tmp_path / "loss.png"))


def test_plot_loss_refuses_records_without_a_loss(tmp_path):
    with pytest.raises(DatasetError, match="no steps with a loss"):
        plot_loss([{"step": 1}], tmp_path / "loss.png")


def test_read_metrics_names_the_bad_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\nnot json\n')
    with pytest.raises(DatasetError, match="line 2 is not JSON"):
        read_metrics(log)


def test_smooth_is_a_trailing_mean_that_skips_nan():
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([1.0, math.nan, 3.0], 3) == [1.0, 1.0, 2.0]


def test_eval_table_shows_auroc_or_r2_and_the_note_of_empty_tasks():
    rows = [
        {"store": "s", "task": "a", "task_type": "binary_classification", "items": 8,
         "loss": 0.5, "auroc": 0.75},
        {"store": "s", "task": "b", "task_type": "regression", "items": 8, "loss": 0.25,
         "r2": "nan", "mae": 0.5},
        {"store": "s", "task": "c", "task_type": "regression", "items": 0,
         "note": "no items in the val split"},
    ]  # fmt: skip
    header, _, a, b, c = eval_table(rows)
    assert header == "| store | task | type | items | loss | score |"
    assert a == "| s | a | binary_classification | 8 | 0.5000 | AUROC 0.7500 |"
    assert b.endswith("| 0.2500 | R² n/a · MAE 0.5000 |")
    assert c.endswith("|  | no items in the val split |")


def _eval_rows(scores: dict[int, float]) -> list[dict]:
    """eval.jsonl rows of one task and the mean, val split, with these val scores."""
    rows = []
    for step, score in scores.items():
        rows.append({"step": step, "split": "val", "store": "s", "task": "t",
                     "task_type": "regression", "items": 10, "r2": score})  # fmt: skip
        rows.append({"step": step, "split": "val", "task": None, "items": 10, "score": score})
    return rows


@pytest.mark.parametrize(
    ("scores", "columns"),
    [
        ({0: 0.1, 4: 0.5, 8: 0.3}, ["step 0", "step 4 (best)", "step 8"]),
        ({0: 0.1, 4: 0.2, 8: 0.3}, ["step 0", "step 8 (best)"]),
        ({0: 0.4, 4: 0.2, 8: 0.3}, ["step 0 (best)", "step 8"]),
    ],
)
def test_eval_summary_has_one_column_per_step_first_best_last(scores, columns):
    header, _, *body = eval_summary_table(_eval_rows(scores))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == columns
    mean = next(line for line in body if line.startswith("| (mean)"))
    assert [float(c) for c in mean.strip("|").split("|")[4:]] == [
        scores[int(c.split()[1])] for c in columns
    ]
