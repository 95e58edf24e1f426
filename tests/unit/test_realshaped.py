"""The real-shaped test databases: RelBench 3 loads them, their forecast labels are what
their SQL regenerates, leakage columns exist, output is a function of the seed, and the
planted signal is there (a feature read from related rows ranks the labels)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import relbench
from realshaped import VAL_TIMESTAMP, write_all
from sklearn.metrics import roc_auc_score

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("realshaped"))


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_every_task_loads_with_labels_in_every_split(folders):
    assert sorted(folders) == ["clinic", "forum", "shop"]
    for folder in folders.values():
        dataset = relbench.load_dataset(folder)
        names = dataset.get_task_names()
        kinds = {dataset.load_task(n).kind for n in names}
        assert kinds == {"forecast", "autocomplete"} and len(names) == 3
        db = dataset.get_db(upto_test_timestamp=False)
        for name in names:
            task = dataset.load_task(name)
            for split in SPLITS:
                labels = task.get_table(split, mask_input_cols=False).df
                assert len(labels) >= 100, (name, split)
            if task.kind == "autocomplete":
                # Binary targets are bool; each leakage column is a column of the table.
                (table, column), *_ = dataset.load_task(name).remove_columns
                assert column in db.table_dict[table].df.columns
            if task.task_type.value == "binary_classification":
                assert labels[task.target_col].dtype == bool


def test_forecast_labels_are_what_their_sql_regenerates(folders):
    for folder in folders.values():
        dataset = relbench.load_dataset(folder)
        for name in dataset.get_task_names():
            if dataset.load_task(name).kind != "forecast":
                continue
            hosted, regenerated = (dataset.load_task(name, regenerate=r) for r in (False, True))
            for split in SPLITS:
                a = hosted.get_table(split, mask_input_cols=False).df.reset_index(drop=True)
                b = regenerated.get_table(split, mask_input_cols=False).df
                pd.testing.assert_frame_equal(a, b.reset_index(drop=True))


def test_same_seed_same_bytes_other_seed_other_data(folders, tmp_path):
    again = write_all(tmp_path / "again")
    other = write_all(tmp_path / "other", seed=1)
    for name, folder in folders.items():
        assert _digest(again[name]) == _digest(folder)
        assert _digest(other[name]) != _digest(folder)


def test_churn_follows_the_customers_past_orders(folders):
    """Past order counts rank churn far better than chance: the signal is relational."""
    dataset = relbench.load_dataset(folders["shop"])
    orders = dataset.get_db(upto_test_timestamp=False).table_dict["orders"].df
    labels = dataset.load_task("customer-churn").get_table("val").df
    past = orders[orders["ordered_at"] <= VAL_TIMESTAMP]["customer_id"].value_counts()
    count = labels["customer_id"].map(past).fillna(0).to_numpy()
    assert roc_auc_score(labels["churn"], -count) > 0.75


def test_returns_follow_the_products_other_orders(folders):
    """A product's return rate among its training orders ranks later returns."""
    dataset = relbench.load_dataset(folders["shop"])
    orders = dataset.get_db(upto_test_timestamp=False).table_dict["orders"].df
    train = orders[orders["ordered_at"] <= VAL_TIMESTAMP]
    rate = train.groupby("product_id")["returned"].mean()
    later = orders[orders["ordered_at"] > VAL_TIMESTAMP]
    score = later["product_id"].map(rate).fillna(rate.mean()).to_numpy()
    assert roc_auc_score(later["returned"], score) > 0.75
    assert np.isfinite(score).all()
