"""Task suites (docs/tasks.md): parsing, the built-in relbench-paper suite, resolution into
sampler sources with their leakage, every bad input, and leakage absent from the contexts
of sampled batches — on stores preprocessed from real-shaped Parquet folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from realshaped import write_all

from plurel_ray.dataset.suite import built_in_suites, load_suite
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.suite_sources import resolve_suite
from plurel_ray.store.meta import read_meta
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import Sampler


def _rel_event(root: Path) -> Path:
    """A tiny folder named rel-event with the paper's rel-event tasks' shape."""
    rng = np.random.default_rng(0)
    n_users, n = 40, 200
    times = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D")
    interested = rng.random(n) < 0.5
    tables = {
        "users": pd.DataFrame({"user_id": np.arange(n_users),
                               "birthyear": rng.integers(1950, 2005, n_users).astype(float)}),
        "event_interest": pd.DataFrame({
            "interest_id": np.arange(n), "user": rng.integers(0, n_users, n),
            "timestamp": times, "interested": interested, "not_interested": ~interested,
        }),
    }  # fmt: skip
    for name, df in tables.items():
        (root / "db").mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / "db" / f"{name}.parquet")
    manifest = {
        "name": "rel-event", "manifest_version": 1, "val_timestamp": "2021-06-01",
        "test_timestamp": "2021-09-01",
        "tables": {"users": {"pkey": "user_id", "time_col": None, "fkeys": {}},
                   "event_interest": {"pkey": "interest_id", "time_col": "timestamp",
                                      "fkeys": {"user": "users"}}},
    }  # fmt: skip
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    for task in ("user-ignore", "user-repeat", "user-attendance", "user-unlisted"):
        folder = root / "tasks" / task
        folder.mkdir(parents=True)
        for split, day in {
            "train": "2021-01-01",
            "val": "2021-07-01",
            "test": "2021-10-01",
        }.items():
            labels = pd.DataFrame({"timestamp": pd.Timestamp(day), "user": np.arange(10),
                                   "target": rng.integers(0, 2, 10)})  # fmt: skip
            labels.to_parquet(folder / f"{split}.parquet")
        (folder / "manifest.yaml").write_text(yaml.safe_dump({
            "name": task, "kind": "forecast", "task_type": "binary_classification",
            "entity_table": "users", "entity_col": "user", "target_col": "target",
            "time_col": "timestamp", "timedelta": "7 days",
        }))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("suite")
    folders = write_all(root / "data")
    folders["rel-event"] = _rel_event(root / "data" / "rel-event")
    return {name: preprocess(folder, root / "stores") for name, folder in folders.items()}


def write_suite(tmp_path: Path, tasks: list, **fields) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "tasks": tasks, **fields}))
    return path


SHOP_TASKS = [
    {"dataset": "shop", "task": "customer-churn", "target": "churn",
     "leakage": ["segment", "customer-churn.timestamp"]},
    {"dataset": "shop", "table": "orders", "target": "returned"},
    {"dataset": "shop", "table": "orders", "target": "quantity",
     "leakage": ["amount", "amount_with_tax", "order_id", "customers.segment"]},
]  # fmt: skip


def test_entries_resolve_to_sources_with_their_leakage(stores, tmp_path):
    suite = load_suite(write_suite(tmp_path, SHOP_TASKS, description="shop tasks"))
    assert (suite.name, suite.description, suite.match) == ("mine", "shop tasks", "all")
    picked = resolve_suite(suite, {"shop": stores["shop"]}, split="val")["shop"]
    assert [s.label for s in picked] == ["customer-churn", "orders-returned", "orders-quantity"]
    assert all(s.split == "val" for s in picked)
    churn, returned, quantity = picked
    # The task table's own column belongs to the task; a key (order_id) is no cell.
    assert churn.leakage == [["customers", "segment"], ["customer-churn", "timestamp"]]
    # An existing autocomplete task of that column is taken, with its manifest's leakage.
    assert (returned.task, returned.leakage) == ("orders-returned", [["orders", "refund_amount"]])
    assert (quantity.task, quantity.table, quantity.target) == (None, "orders", "quantity")
    assert quantity.leakage == [["orders", "amount"], ["orders", "amount_with_tax"],
                                ["customers", "segment"]]  # fmt: skip


def test_the_built_in_suite_picks_exactly_the_given_datasets_paper_tasks(stores):
    assert "relbench-paper" in built_in_suites()
    suite = load_suite("relbench-paper")
    assert suite.match == "given" and len(suite.entries) == 36
    assert {e.dataset for e in suite.entries} == {
        "rel-amazon", "rel-avito", "rel-event", "rel-f1", "rel-hm", "rel-stack", "rel-trial",
    }  # fmt: skip
    adult = next(e for e in suite.entries if (e.table, e.target) == ("eligibilities", "adult"))
    assert {"child", "older_adult", "minimum_age", "criteria"} <= set(adult.leakage)
    given = {"rel-event": stores["rel-event"], "shop": stores["shop"]}
    picked = resolve_suite(suite, given)
    assert picked["shop"] == []
    assert [s.label for s in picked["rel-event"]] == [
        "user-ignore", "user-repeat", "user-attendance", "event_interest-not_interested",
        "users-birthyear",
    ]  # fmt: skip
    interest = picked["rel-event"][3]
    assert interest.leakage == [["event_interest", "interested"]]
    # users has no time column and the folder no plurel.json: the split cannot be taken.
    assert (
        "item_splits"
        not in {t["name"]: t for t in read_meta(stores["rel-event"])["tables"]}["users"]
    )


def test_leakage_columns_are_absent_from_the_item_rows_of_sampled_batches(stores, tmp_path):
    suite = load_suite(write_suite(tmp_path, SHOP_TASKS))
    for source in resolve_suite(suite, {"shop": stores["shop"]}, split="train")["shop"]:
        sampler = Sampler([source], batch_size=8, ctx_len=64, seed=1)
        vocab = sampler.vocabulary()
        # A column's vocabulary name is "<column> of <table>" (a task table's: the task).
        names = {f"{col} of {table}" for table, col in source.leakage}
        leak_ids = {i for i, text in enumerate(vocab) if text in names}
        assert len(leak_ids) == len(source.leakage) > 0
        for index in range(3):
            batch = sampler.batch(index)
            for b in range(batch["true_batch_size"]):
                item = batch["node_idxs"][b][batch["is_targets"][b]][0]
                row = batch["node_idxs"][b] == item
                assert not leak_ids & set(batch["col_name_idxs"][b][row].tolist())


@pytest.mark.parametrize(
    "content, match",
    [
        ("tasks: [", "invalid YAML"),
        ("- a list", "a suite is a mapping"),
        ("name: x\ntasks: []", "tasks must be a non-empty list"),
        ("name: x\nmatch: some\ntasks: [{dataset: shop, task: t}]", "match is 'some'"),
        ("name: x\ntask: []", r"unknown field\(s\) task "),
        ("name: x\ntasks: [{dataset: shop, task: t, table: orders}]", "either task: or table:"),
        ("name: x\ntasks: [{dataset: shop, table: orders}]", "needs a target: column"),
        ("name: x\ntasks: [{dataset: shop, task: t, leakage: a}]", "leakage must be a list"),
        ("name: x\ntasks: [{dataset: shop, task: t, sql: s}]", r"tasks\[0\]: unknown field"),
        ("tasks: [{dataset: shop, task: t}]", "name must be a non-empty string"),
    ],
)
def test_bad_suite_files_are_one_line_config_errors(tmp_path, content, match):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match) as err:
        load_suite(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_suite_name_lists_the_built_in_ones():
    with pytest.raises(ConfigError, match=r"not a built-in suite .*relbench-paper"):
        load_suite("relbench-papers")


@pytest.mark.parametrize(
    "entry, error, match",
    [
        ({"dataset": "shop", "task": "customer-chrun"}, DatasetError,
         "no task 'customer-chrun'.*close matches: customer-churn"),
        ({"dataset": "shop", "task": "customer-churn", "target": "churned"}, DatasetError,
         "target 'churned', but the task's target is 'churn'"),
        ({"dataset": "shop", "table": "order", "target": "amount"}, DatasetError,
         "no table 'order'.*close matches: orders"),
        ({"dataset": "shop", "table": "orders", "target": "amount", "leakage": ["amount_tax"]},
         DatasetError, "leakage column 'amount_tax' is not a column of table 'orders'.*"
         "amount_with_tax"),
        ({"dataset": "shop", "table": "orders", "target": "amount",
          "leakage": ["products.weight"]}, DatasetError,
         "leakage column 'weight' is not a column of table 'products'"),
        ({"dataset": "shop", "table": "orders", "target": "channel"}, DatasetError,
         "target 'channel' is a text column"),
        ({"dataset": "shop", "table": "orders", "target": "nope"}, DatasetError,
         "target 'nope' is not a cell column"),
        ({"dataset": "rel-f1", "task": "driver-dnf"}, ConfigError,
         "dataset 'rel-f1', which is not given .*match: given"),
    ],
)  # fmt: skip
def test_entries_that_do_not_fit_the_datasets_are_one_line_errors(
    stores, tmp_path, entry, error, match
):
    suite = load_suite(write_suite(tmp_path, [entry]))
    with pytest.raises(error, match=match) as err:
        resolve_suite(suite, {"shop": stores["shop"]})
    assert "\n" not in str(err.value)


def test_match_given_skips_entries_of_datasets_not_given(stores, tmp_path):
    entries = [{"dataset": "rel-f1", "task": "driver-dnf"}, *SHOP_TASKS[:1]]
    suite = load_suite(write_suite(tmp_path, entries, match="given"))
    picked = resolve_suite(suite, {"shop": stores["shop"], "forum": stores["forum"]})
    assert {k: [s.label for s in v] for k, v in picked.items()} == {
        "shop": ["customer-churn"], "forum": [],
    }  # fmt: skip


def test_a_suite_file_larger_than_the_document_limit_is_refused(tmp_path):
    from plurel_ray.limits import DOCUMENT_BYTES

    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (DOCUMENT_BYTES.value // 10 + 1))
    with pytest.raises(ConfigError, match=r"more than .* bytes, not a suite"):
        load_suite(str(path))
