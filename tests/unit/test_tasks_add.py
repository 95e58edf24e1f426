"""`plurel-ray tasks add`: a task suite's defining entries written into an imported dataset
as task folders that RelBench loads (labels equal to RelBench's own regeneration), usable
as a training suite, and every bad entry a one-line error that writes nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import relbench
import yaml
from byod_database import SHOP_TASKS, STAMPS, write_shop_sqlite

from plurel_ray.cli import main
from plurel_ray.dataset.sql_import import import_database
from plurel_ray.dataset.suite import load_suite
from plurel_ray.dataset.task_writer import add_tasks
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.suite_sources import resolve_suite
from plurel_ray.store.preprocessing import preprocess


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    import_database(write_shop_sqlite(root / "shop.sqlite"), root / "shop", **STAMPS)
    return root / "shop"


def _task_file(path: Path, tasks: list[dict], **fields) -> Path:
    path.write_text(yaml.safe_dump({"name": "mine", "tasks": tasks, **fields}))
    return path


@pytest.fixture(scope="module")
def with_tasks(shop, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tasks")
    dataset = folder / "shop"
    import_database(shop.parent / "shop.sqlite", dataset, **STAMPS)
    written = add_tasks(dataset, _task_file(folder / "tasks.yaml", SHOP_TASKS["tasks"]))
    assert [p.name for p in written] == ["customer-churn", "orders-returned", "orders-amount"]
    return dataset


def test_written_tasks_load_in_relbench_with_its_own_labels(with_tasks):
    dataset = relbench.load_dataset(with_tasks)
    assert dataset.get_task_names() == ["customer-churn", "orders-amount", "orders-returned"]
    binary = "binary_classification"
    expected = {"customer-churn": ("forecast", binary, [["customers", "segment"]]),
                "orders-returned": ("autocomplete", binary, []),
                "orders-amount": ("autocomplete", "regression", [["orders", "quantity"]]),
                }  # fmt: skip
    for name, (kind, task_type, removed) in expected.items():
        hosted = dataset.load_task(name)
        regenerated = dataset.load_task(name, regenerate=True)
        assert (hosted.kind, hosted.task_type.value) == (kind, task_type)
        assert hosted.remove_columns == [tuple(p) for p in removed]
        for split in ("train", "val", "test"):
            labels = hosted.get_table(split, mask_input_cols=False).df
            assert len(labels) > 0
            if kind == "autocomplete":  # a forecast query may read a column it hides
                again = regenerated.get_table(split, mask_input_cols=False).df
                pd.testing.assert_frame_equal(labels, again, check_dtype=False)
    churn = dataset.load_task("customer-churn").get_table("val", mask_input_cols=False).df
    assert list(churn.columns) == ["timestamp", "id", "churn"] and churn["churn"].dtype == bool
    assert (churn["timestamp"] == pd.Timestamp(dataset.manifest.val_timestamp)).all()


def test_the_same_file_is_a_training_suite_of_the_store(with_tasks, tmp_path):
    store = preprocess(with_tasks, tmp_path / "stores")
    suite = load_suite(_task_file(tmp_path / "suite.yaml", SHOP_TASKS["tasks"]))
    picked = resolve_suite(suite, {"shop": store}, split="val")["shop"]
    assert [s.label for s in picked] == ["customer-churn", "orders-returned", "orders-amount"]
    assert picked[2].leakage == [["orders", "quantity"]]


def test_the_cli_adds_tasks_and_refuses_to_replace_them(shop, tmp_path, capsys):
    file = _task_file(tmp_path / "t.yaml", SHOP_TASKS["tasks"][1:2])
    dataset = tmp_path / "shop"
    import_database(shop.parent / "shop.sqlite", dataset, **STAMPS)
    assert main(["tasks", "add", str(dataset), str(file)]) == 0
    assert "orders-returned  train=" in capsys.readouterr().out
    assert main(["tasks", "add", str(dataset), str(file)]) == 1
    assert "task 'orders-returned' already exists" in capsys.readouterr().err
    assert main(["tasks", "add", str(dataset), str(file), "--overwrite"]) == 0


def _churn(**changes) -> dict:
    entry = copy.deepcopy(SHOP_TASKS["tasks"][0])
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


DUPLICATES = "SELECT t.timestamp, c.id, TRUE AS churn FROM timestamps t, customers c, products"
NULLS = "SELECT t.timestamp, c.id, NULL::BOOLEAN AS churn FROM timestamps t, customers c"


@pytest.mark.parametrize(
    "entry, error, match",
    [
        (_churn(query=DUPLICATES), DatasetError, r"duplicate \(id, timestamp\) rows"),
        (_churn(query=NULLS), DatasetError, "null 'churn' labels"),
        (_churn(query="SELECT * FROM timestamps t, customer c"), DatasetError,
         "RelBench cannot build its labels: Catalog Error: Table with name customer"),
        (_churn(query="SELECT t.timestamp, c.idd FROM timestamps t, customers c"), DatasetError,
         "Binder Error.*idd"),
        (_churn(query="SELECT t.timestamp, c.id FROM timestamps t, customers c"), DatasetError,
         "returns columns \\['timestamp', 'id'\\], without churn"),
        (_churn(table="clients"), DatasetError, "no table 'clients'"),
        (_churn(leakage=["segmnt"]), DatasetError, "leakage column 'segmnt' is not a column"),
        (_churn(timedelta="200 days"), DatasetError, "timedelta cannot be larger"),
        (_churn(val_timestamp="2021-06-01"), DatasetError, "import it again with --val-timestamp"),
        (_churn(timedelta=None), ConfigError, "also needs timedelta:"),
        ({"dataset": "shop", "table": "customers", "target": "name"}, DatasetError,
         "the label is a .* column; a task predicts a number or a boolean"),
        ({"dataset": "shop", "table": "orders", "target": "sku"}, DatasetError,
         "Column sku is a foreign key"),
        ({"dataset": "shop", "table": "orders", "target": "price"}, DatasetError,
         "table 'orders' has no column 'price'"),
        ({"dataset": "shop", "table": "products", "target": "price"}, DatasetError,
         "table 'products' has no time column"),
        ({"dataset": "shop", "task": "customer-lifetime"}, DatasetError,
         "does not have and the entry does not define"),
        ({"dataset": "other", "table": "orders", "target": "amount"}, ConfigError,
         "is for dataset 'other', but"),
    ],
)  # fmt: skip
def test_bad_entries_are_one_line_errors_and_write_nothing(shop, tmp_path, entry, error, match):
    good = SHOP_TASKS["tasks"][1]  # checked first, and still not written
    with pytest.raises(error, match=match) as err:
        add_tasks(shop, _task_file(tmp_path / "t.yaml", [good, entry]))
    assert "\n" not in str(err.value)
    assert not (shop / "tasks").exists()


def test_a_task_defined_twice_is_refused(shop, tmp_path):
    twice = [SHOP_TASKS["tasks"][1], SHOP_TASKS["tasks"][1]]
    with pytest.raises(ConfigError, match="orders-returned defined more than once"):
        add_tasks(shop, _task_file(tmp_path / "t.yaml", twice))
    assert not (shop / "tasks").exists()
