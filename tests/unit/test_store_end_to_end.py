"""Preprocess → embed → sample on real stores: a generated database and a real-data-shaped
folder (strings, datetimes, nulls, a table with seven foreign keys)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from realdata import AUTOCOMPLETE_TASK, FORECAST_TASK, write_realdata_folder

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.store.embedding import embed
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import Sampler, Source
from plurel_ray.synth.database import generate_database

NO_TIME = np.iinfo(np.int64).min


@pytest.fixture(scope="module")
def generated(small_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    # With task folders, whose label files say which rows each split must sample.
    folder = write_dataset(generate_database(5, small_config), root / "plurel-5", small_config,
                           write_tasks=True)  # fmt: skip
    return folder, preprocess(folder, root / "stores")


@pytest.fixture(scope="module")
def realdata(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    store = preprocess(write_realdata_folder(root / "realdata"), root / "stores")
    embed(store, progress=False)
    return store


def sequences(batch: dict):
    for b in range(batch["true_batch_size"]):
        yield {k: v[b] for k, v in batch.items() if isinstance(v, np.ndarray)}


def check_invariants(batch: dict) -> None:
    for seq in sequences(batch):
        target = np.flatnonzero(seq["is_targets"])
        assert len(target) == 1 and seq["masks"][target[0]]
        t = seq["timestamps"][target[0]]
        if t != NO_TIME:
            # Rows newer than the target are only its f2p parents' side, never p2f children.
            assert not (seq["is_task_nodes"] & (seq["timestamps"] > t)).any()
        pad = seq["is_padding"]
        assert not pad[: pad.argmax() if pad.any() else len(pad)].any()  # a tail only


def autocomplete_items(store, task: str, split: str) -> set[int]:
    sampler = Sampler([Source(store, task=task, split=split)], batch_size=16, ctx_len=64)
    items = set()
    for i in range(sampler.batches_per_epoch):
        for seq in sequences(sampler.batch(i)):
            items.add(int(seq["node_idxs"][np.flatnonzero(seq["is_targets"])[0]]))
    assert len(items) == sampler.num_items
    return items


def test_autocomplete_splits_sample_exactly_the_rows_of_their_label_files(generated):
    folder, store = generated
    meta = json.loads((store / "meta.json").read_text())
    offsets = {t["name"]: t["node_offset"] for t in meta["tables"]}
    for task in [t for t in meta["tasks"] if t["kind"] == "autocomplete"][:4]:
        table, entity = task["entity_table"], "row_idx"
        for split in ("train", "val", "test"):
            labels = pq.read_table(folder / "tasks" / task["name"] / f"{split}.parquet")
            labels = labels.to_pandas()
            expected = {offsets[table] + int(r) for r in labels[entity]}
            if expected:
                assert autocomplete_items(store, task["name"], split) == expected, split


def test_generated_store_samples_with_the_context_invariants(generated):
    _, store = generated
    meta = json.loads((store / "meta.json").read_text())
    sources = [Source(store, task=t["name"]) for t in meta["tasks"][:6]]
    sampler = Sampler(sources, batch_size=8, ctx_len=128, seed=3)
    for i in range(min(3, sampler.batches_per_epoch)):
        check_invariants(sampler.batch(i))


def test_real_data_shaped_store_samples_in_both_forms(realdata):
    meta = json.loads((realdata / "meta.json").read_text())
    assert meta["counts"]["max_f2p"] >= 7  # the orders table's seven foreign keys
    sources = [Source(realdata, task=FORECAST_TASK), Source(realdata, task=AUTOCOMPLETE_TASK)]
    sampler = Sampler(sources, batch_size=4, ctx_len=48, seed=1)
    assert sampler.max_f2p >= 7
    compact = sampler.batch(0)
    full = sampler.batch(0, compact=False)
    check_invariants(compact)
    assert compact["f2p_nbr_idxs"].shape[-1] == sampler.max_f2p
    emb = sampler.embedding_matrix()
    ids = np.clip(compact["col_name_idxs"], 0, None)
    as_bf16 = (emb[ids].view(np.uint32) + 0x7FFF + ((emb[ids].view(np.uint32) >> 16) & 1)) >> 16
    real = ~compact["is_padding"]
    assert (full["col_name_values"][real] == as_bf16[real].astype(np.uint16)).all()
    sem = compact["sem_types"][real]
    assert {0, 1, 2} <= set(sem.tolist())  # numbers, text and datetimes all reach the model
