"""The prediction core (plurel_ray/predict): an item's prediction does not depend on its
batch, items map to the rows they are, regression predictions come back on the target's
own scale and binary ones as probabilities; `--rows` keys are checked.

Real components: the real-shaped `shop` database (tests/realshaped.py: a forecast task and
a number and a boolean autocomplete task) written as RelBench-3, preprocessed and
embedded by a tiny random BERT, and a small random checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realshaped import BUILDERS, write_database
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.errors import ConfigError, SamplerError
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.model.checkpoint import save_checkpoint
from plurel_ray.predict.core import ContextSettings, Predictor
from plurel_ray.predict.pretrained import from_pretrained
from plurel_ray.store import embed, preprocess
from plurel_ray.store.item_sampler import ItemSampler
from plurel_ray.store.sampler import Source
from plurel_ray.train import TrainConfig

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=HIDDEN)
TASKS = ("customer-churn", "orders-amount", "orders-returned")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset folder, embedded store) of the real-shaped shop."""
    root = tmp_path_factory.mktemp("predict-core")
    folder = write_database(BUILDERS["shop"](np.random.default_rng([0, 0])), root / "shop")
    store = preprocess(folder, root / "stores")
    embed(store, model=str(write_tiny_bert(root / "bert")), progress=False)
    return folder, store


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "step_1"
    save_checkpoint(folder, init_model(SMALL, 0), SMALL,
                    {"train": TrainConfig(ctx_len=48).to_dict()})  # fmt: skip
    return from_pretrained(folder)


def predictor(pretrained, store: Path, task: str, **settings) -> Predictor:
    return Predictor(pretrained, Source(store, task=task, split="test"),
                     ContextSettings(**settings), device="cpu", batch_size=8)  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_an_items_prediction_does_not_depend_on_its_batch(shop, pretrained, task):
    model = predictor(pretrained, shop[1], task)
    items = np.arange(min(len(model), 40))
    in_order = model.predict(items)
    shuffled = np.random.default_rng(1).permutation(items)
    again = np.empty(len(items))
    again[shuffled] = model.predict(shuffled)
    one_by_one = np.array([model.predict([i])[0] for i in items[:9]])
    assert np.array_equal(in_order, again) and np.array_equal(in_order[:9], one_by_one)
    other_seed = predictor(pretrained, shop[1], task, seed=1).predict(items)
    assert not np.array_equal(in_order, other_seed)  # the seed draws other contexts


def test_forecast_items_are_the_label_rows_keyed_by_entity_and_time(shop, pretrained):
    model = predictor(pretrained, shop[1], "customer-churn")
    labels = pd.read_parquet(shop[0] / "tasks" / "customer-churn" / "test.parquet")
    frame = model.items.key_frame()
    assert list(frame.columns) == ["customer_id", "timestamp"]
    assert frame.equals(labels[["customer_id", "timestamp"]].iloc[model.items.rows]
                        .reset_index(drop=True))  # fmt: skip
    probabilities = model.predict(np.arange(len(model)))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert model.items.task_type == "binary_classification"


def test_autocomplete_values_come_back_on_the_targets_scale(shop, pretrained):
    """The stored target cells de-standardised equal the raw Parquet values of the rows
    the items map to: the mapping and the scale are both right."""
    model = predictor(pretrained, shop[1], "orders-amount")
    items = model.items
    orders = pd.read_parquet(shop[0] / "db" / "orders.parquet")
    assert items.key_column == "order_id" and items.time_column is None
    assert np.array_equal(items.keys, orders["order_id"].to_numpy()[items.rows])
    batch = model.sampler.batch_of_items(list(range(8)))
    stored = batch["number_values"][batch["is_targets"]]
    raw = orders["amount"].to_numpy()[items.rows[:8]]
    np.testing.assert_allclose(items.on_target_scale(stored), raw, rtol=1e-5, atol=1e-4)
    predictions = model.predict(np.arange(len(model)))
    assert abs(np.mean(predictions) - raw.mean()) < 3 * orders["amount"].std()


def test_listed_rows_select_items_and_unknown_keys_are_named(shop, pretrained):
    items = predictor(pretrained, shop[1], "customer-churn").items
    wanted = items.key_frame().iloc[[5, 2]].reset_index(drop=True)
    wanted["timestamp"] = wanted["timestamp"].astype(str)  # as a CSV reads it
    assert items.select(wanted, "rows.csv").tolist() == [5, 2]
    wanted.loc[len(wanted)] = [999_999, "2022-07-01"]
    with pytest.raises(
        ConfigError, match=r"rows.csv: 1 of 3 rows .* e\.g\. \(999999, 2022-07-01 00:00:00\)"
    ):
        items.select(wanted, "rows.csv")
    with pytest.raises(ConfigError, match="no column timestamp"):
        items.select(wanted[["customer_id"]], "rows.csv")


def test_the_item_sampler_refuses_items_out_of_range_and_overfull_batches(shop):
    sampler = ItemSampler([Source(shop[1], task="orders-amount", split="test")], batch_size=2)
    with pytest.raises(SamplerError, match="out of range"):
        sampler.batch_of_items([sampler.num_items])
    with pytest.raises(SamplerError, match="3 items for a batch of 2"):
        sampler.batch_of_items([0, 1, 2])
    with pytest.raises(SamplerError, match="item must be >= 0"):
        sampler.batch_of_items([-1])
