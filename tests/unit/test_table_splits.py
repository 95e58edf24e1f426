"""Split rules of database tables (meta.json `tables[i].item_splits`) and table sources
with a split — a derived autocomplete task — on stores preprocessed from real Parquet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from realdata import (
    AUTOCOMPLETE_TASK,
    FORECAST_TASK,
    TEST_TIMESTAMP,
    VAL_TIMESTAMP,
    write_realdata_folder,
)

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import EmptySourceError, SamplerError, StoreError
from plurel_ray.pipeline.pretrain_data import source_target_sem_type
from plurel_ray.store.meta import read_meta
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import Sampler, Source
from plurel_ray.synth.database import generate_database


def _seconds(day: str) -> int:
    return pd.Timestamp(day, tz="UTC").value // 10**9


@pytest.fixture(scope="module")
def realdata_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    return preprocess(write_realdata_folder(root / "realdata"), root / "stores")


@pytest.fixture(scope="module")
def generated_store(small_config, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    folder = write_dataset(generate_database(5, small_config), root / "plurel-5", small_config)
    return preprocess(folder, root / "stores")


def test_tables_with_a_time_column_split_at_the_dataset_timestamps(realdata_store):
    tables = {t["name"]: t for t in read_meta(realdata_store)["tables"]}
    val, test = _seconds(VAL_TIMESTAMP), _seconds(TEST_TIMESTAMP)
    windows = {"train": [None, val], "val": [val, test], "test": [test, None]}
    for name in ("users", "products", "orders"):
        assert tables[name]["item_splits"] == {s: {"time": w} for s, w in windows.items()}
    # No time column and no plurel.json fractions: no rule; task tables have none either.
    assert "item_splits" not in tables["stores"]
    assert not any("item_splits" in t for t in tables.values() if t["kind"] == "task")
    task = {t["name"]: t for t in read_meta(realdata_store)["tasks"]}[AUTOCOMPLETE_TASK]
    assert task["item_splits"] == tables["users"]["item_splits"]


def test_tables_without_time_split_by_row_position_at_the_generator_fractions(
    generated_store, small_config
):
    meta = read_meta(generated_store)
    for table in meta["tables"]:
        rules = table["item_splits"]
        if table["time_col"] is None:
            n = table["num_nodes"]
            val_row = int(n * small_config.val_split)
            test_row = int(n * small_config.test_split)
            assert rules == {"train": {"rows": [0, val_row]}, "val": {"rows": [val_row, test_row]},
                             "test": {"rows": [test_row, n]}}  # fmt: skip
        else:
            assert set(next(iter(r)) for r in rules.values()) == {"time"}
    by_name = {t["name"]: t for t in meta["tables"]}
    for task in meta["tasks"]:
        assert task["item_splits"] == by_name[task["entity_table"]]["item_splits"]


def test_a_table_source_with_a_split_takes_the_rows_of_that_split(realdata_store):
    def items(split: str | None) -> int:
        source = Source(realdata_store, table="orders", target="amount", split=split)
        return Sampler([source], batch_size=2, ctx_len=32).num_items

    # orders at 2020-03-01 (x2), 2021-02-01 and one without a time: every row with None.
    assert (items(None), items("train"), items("val")) == (4, 2, 1)
    with pytest.raises(EmptySourceError):
        items("test")


def test_a_derived_task_equals_the_autocomplete_task_of_the_same_column(realdata_store):
    for split in ("train", "val", "test"):
        derived = Source(realdata_store, table="users", target="age", split=split)
        named = Source(realdata_store, task=AUTOCOMPLETE_TASK, split=split)
        try:
            a = Sampler([derived], batch_size=4, ctx_len=32).batch(0)
        except EmptySourceError:
            with pytest.raises(EmptySourceError):
                Sampler([named], batch_size=4, ctx_len=32)
            continue
        b = Sampler([named], batch_size=4, ctx_len=32).batch(0)
        assert a["true_batch_size"] == b["true_batch_size"] > 0
        assert (a["node_idxs"] == b["node_idxs"]).all()


def test_a_split_of_a_table_without_a_rule_names_the_table_and_the_fix(realdata_store):
    source = Source(realdata_store, table="stores", target="store_id", split="val")
    with pytest.raises(
        SamplerError, match=r"table 'stores' has no split rule.*split=None.*--overwrite"
    ):
        Sampler([source], batch_size=2)
    with pytest.raises(SamplerError, match="table 'orders' has no split 'dev'"):
        Sampler(
            [Source(realdata_store, table="orders", target="amount", split="dev")], batch_size=2
        )


def test_a_task_source_without_a_split_is_its_train_split(realdata_store):
    default = Sampler([Source(realdata_store, task=FORECAST_TASK)], batch_size=4, ctx_len=32)
    train = Sampler([Source(realdata_store, task=FORECAST_TASK, split="train")], batch_size=4,
                    ctx_len=32)  # fmt: skip
    assert default.num_items == train.num_items == 3


def test_label_names_the_task_or_the_table_and_target():
    assert Source("s", task="user-churn", split="val").label == "user-churn"
    assert Source("s", table="eligibilities", target="adult").label == "eligibilities-adult"


def test_source_target_sem_type_for_task_and_table_sources(realdata_store):
    assert source_target_sem_type(Source(realdata_store, task=FORECAST_TASK)) == "number"
    assert source_target_sem_type(Source(realdata_store, task=AUTOCOMPLETE_TASK)) == "number"
    assert source_target_sem_type(Source(realdata_store, table="users", target="bio")) == "text"
    table = Source(realdata_store, table=f"{FORECAST_TASK}/val", target="churn")
    assert source_target_sem_type(table) == "number"
    for missing in (Source(realdata_store, table="users", target="avatar"),  # skipped
                    Source(realdata_store, table="nope", target="age"),
                    Source(realdata_store, task="nope")):  # fmt: skip
        assert source_target_sem_type(missing) is None


def test_a_malformed_table_split_rule_is_a_store_error(realdata_store, tmp_path):
    store = Path(shutil.copytree(realdata_store, tmp_path / "copy"))
    meta = json.loads((store / "meta.json").read_text())
    meta["tables"][0]["item_splits"] = {"val": {"time": [1]}}
    (store / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"tables\[0\]\.item_splits\.val"):
        read_meta(store)
