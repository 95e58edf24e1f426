"""The context sampler on hand-made stores (users ← orders ← items, a task table).

Stores are written by tests/store_builder.py straight from docs/store-format.md, so
these tests hold the sampler to the document, independent of the preprocessor.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from store_builder import NO_TIME, Table, write_store

from plurel_ray.errors import SamplerError, StoreError
from plurel_ray.store.arrays import write_array
from plurel_ray.store.sampler import Sampler, Source

DIM = 8
COMPACT_KEYS = {
    "node_idxs",
    "f2p_nbr_idxs",
    "table_name_idxs",
    "col_name_idxs",
    "class_value_idxs",
    "sem_types",
    "number_values",
    "datetime_values",
    "boolean_values",
    "masks",
    "is_targets",
    "is_task_nodes",
    "is_padding",
    "timestamps",
    "true_batch_size",
}
TASKS = [
    {
        "name": "orders-amount",
        "kind": "autocomplete",
        "task_type": "regression",
        "entity_table": "orders",
        "target_col": "amount",
        "time_col": "time",
        "tables": {"train": "orders"},
        "remove_columns": [["orders", "refund"]],
    },
    {
        "name": "churn",
        "kind": "entity",
        "task_type": "binary_classification",
        "entity_table": "users",
        "target_col": "label",
        "time_col": "time",
        "tables": {"train": "churn/train"},
        "remove_columns": [],
    },
]


def shop_tables() -> list[Table]:
    """6 users, 30 orders (times in pairs, so rows share timestamps), 60 items, 12 task rows."""
    rng = np.random.default_rng(0)
    age = rng.normal(40, 10, 6)
    age[2] = np.nan
    order_time = 1_000 + 100 * (np.arange(30) // 2)
    order_user = rng.integers(0, 6, 30)
    refund = rng.normal(size=30)
    item_order = np.repeat(np.arange(30), 2)
    shipped = (order_time[item_order] + 50).astype("datetime64[s]")
    return [
        Table(
            "users",
            6,
            {
                "age": age,
                "name": np.array(["ann", "bob", None, "dan", "eve", "fay"], object),
                "vip": np.array([True, False, True, False, False, True]),
                "ghost": np.full(6, np.nan),
            },
        ),
        Table(
            "orders",
            30,
            {
                "amount": rng.normal(size=30),
                "refund": refund,
                "status": np.array(["open", "paid", "sent"] * 10, object),
            },
            time=order_time,
            fkeys={"user_id": ("users", order_user)},
        ),
        Table(
            "items",
            60,
            {"price": rng.normal(size=60), "shipped": shipped},
            time=order_time[item_order],
            fkeys={"order_id": ("orders", item_order)},
        ),
        Table(
            "churn/train",
            12,
            {"label": rng.random(12) < 0.5},
            time=1_000 + 250 * np.arange(12),
            fkeys={"user_id": ("users", np.arange(12) % 6)},
            task="churn",
            split="train",
        ),
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_store(
        tmp_path_factory.mktemp("s") / "shop", shop_tables(), TASKS, embedding_dim=DIM
    )


def make(store: Path, **kw) -> Sampler:
    kw = {"batch_size": 4, "ctx_len": 64, "seed": 7, **kw}
    sources = kw.pop("sources", [Source(store, task="orders-amount")])
    return Sampler(sources, **kw)


def real_sequences(batch: dict):
    for b in range(batch["true_batch_size"]):
        yield {k: v[b] for k, v in batch.items() if isinstance(v, np.ndarray)}


def target_node(seq: dict) -> int:
    return int(seq["node_idxs"][np.flatnonzero(seq["is_targets"])[0]])


def epoch_items(sampler: Sampler, epoch: int) -> list[int]:
    first = epoch * sampler.batches_per_epoch
    return [
        target_node(seq)
        for i in range(first, first + sampler.batches_per_epoch)
        for seq in real_sequences(sampler.batch(i))
    ]


def test_batch_has_documented_fields_shapes_and_dtypes(store):
    s = make(store)
    batch = s.batch(0)
    assert set(batch) == COMPACT_KEYS
    assert batch["node_idxs"].shape == (4, 64) and batch["node_idxs"].dtype == np.int32
    assert batch["f2p_nbr_idxs"].shape == (4, 64, s.max_f2p) and s.max_f2p == 1
    assert batch["timestamps"].dtype == np.int64 and batch["masks"].dtype == np.bool_
    assert batch["number_values"].dtype == np.float32
    assert all(v.flags.c_contiguous for v in batch.values() if isinstance(v, np.ndarray))
    assert s.num_items == 30 and s.batches_per_epoch == 8


def test_no_visible_row_is_newer_than_the_target_row(store):
    for source in (Source(store, task="orders-amount"), Source(store, task="churn")):
        s = make(store, sources=[source], ctx_len=256)
        for i in range(s.batches_per_epoch):
            for seq in real_sequences(s.batch(i)):
                t = seq["timestamps"][seq["is_targets"]][0]
                seen = seq["timestamps"][~seq["is_padding"]]
                assert np.all((seen == NO_TIME) | (seen <= t))


def test_the_target_appears_once_masked_with_its_label_in_place(store):
    s = make(store, ctx_len=8)
    amount = s.vocabulary().index("amount of orders")
    for seq in real_sequences(s.batch(1)):
        assert seq["is_targets"].sum() == 1
        assert np.array_equal(seq["masks"], seq["is_targets"])
        p = np.flatnonzero(seq["is_targets"])[0]
        assert seq["col_name_idxs"][p] == amount and seq["sem_types"][p] == 0
        assert np.isfinite(seq["number_values"][p])


def test_padding_is_only_a_tail_and_holds_no_ids(store):
    s = make(store, ctx_len=512)
    batch = s.batch(0)
    for b in range(4):
        pad = batch["is_padding"][b]
        used = int((~pad).sum())
        assert not pad[:used].any() and pad[used:].all() and used > 0
        assert (batch["node_idxs"][b, used:] == -1).all()
        assert (batch["f2p_nbr_idxs"][b, used:] == -1).all()
        assert (batch["timestamps"][b, used:] == NO_TIME).all()


def test_cells_are_ordered_by_column_and_typed_values_land_in_their_arrays(store):
    s = make(store, ctx_len=512)
    for seq in real_sequences(s.batch(2)):
        real = ~seq["is_padding"]
        names = [s.vocabulary()[c] for c in seq["col_name_idxs"][real]]
        assert len(set(names)) > 3
        sem = seq["sem_types"][real]
        assert ((seq["class_value_idxs"][real] >= 0) == (sem == 1)).all()
        for values, code in (("number_values", 0), ("datetime_values", 2), ("boolean_values", 3)):
            assert (seq[values][real][sem != code] == 0).all()
        assert set(np.unique(seq["boolean_values"][real][sem == 3])) <= {0.0, 1.0}
        assert not seq["is_task_nodes"].any()


def test_ranks_take_disjoint_shares_that_cover_every_item(store):
    taken = []
    for rank in range(3):
        s = make(store, batch_size=4, rank=rank, world_size=3)
        assert s.batches_per_epoch == 3
        batches = [s.batch(i) for i in range(s.batches_per_epoch)]
        taken += [target_node(seq) for b in batches for seq in real_sequences(b)]
        assert all(b["is_padding"][b["true_batch_size"] :].all() for b in batches)
    assert sorted(taken) == list(range(6, 36))


def test_batches_are_deterministic_across_samplers_and_thread_counts(store):
    one, two = make(store, num_threads=1), make(store, num_threads=2)
    for i in (0, 3, 9):
        a, b = one.batch(i), two.batch(i)
        for key in COMPACT_KEYS:
            assert np.array_equal(a[key], b[key]), key
    other_seed = make(store, seed=8).batch(0)
    assert not np.array_equal(one.batch(0)["node_idxs"], other_seed["node_idxs"])


def test_epochs_reshuffle_every_item_once(store):
    s = make(store)
    first, second = epoch_items(s, 0), epoch_items(s, 1)
    assert sorted(first) == sorted(second) == list(range(6, 36))
    assert first != second
    assert s.epoch_of(s.batches_per_epoch) == 1 and s.epoch_of(0) == 0


def cells_of(seq: dict, column: int, node: int | None = None) -> np.ndarray:
    hit = seq["col_name_idxs"] == column
    return hit & (seq["node_idxs"] == node) if node is not None else hit


def test_leakage_columns_drop_from_the_item_and_same_time_rows_only(store):
    s = make(store, ctx_len=1024)
    refund = s.vocabulary().index("refund of orders")
    kept_elsewhere = 0
    for i in range(s.batches_per_epoch):
        for seq in real_sequences(s.batch(i)):
            t = seq["timestamps"][seq["is_targets"]][0]
            rows = cells_of(seq, refund)
            assert not cells_of(seq, refund, target_node(seq)).any()
            assert (seq["timestamps"][rows] != t).all(), "a same-time row kept a leakage cell"
            kept_elsewhere += rows.sum()
    assert kept_elsewhere > 0, "earlier rows keep the leakage column"
    explicit = make(store, ctx_len=1024, sources=[Source(store, task="orders-amount", leakage=[])])
    seq = next(real_sequences(explicit.batch(0)))
    assert cells_of(seq, refund, target_node(seq)).any()


def test_task_rows_are_context_only_for_their_own_task(store):
    s = make(store, ctx_len=1024, sources=[Source(store, task="churn")])
    assert s.num_items == 12
    seen_history = False
    for i in range(s.batches_per_epoch):
        for seq in real_sequences(s.batch(i)):
            assert seq["is_task_nodes"][seq["is_targets"]].all()
            seen_history |= seq["is_task_nodes"][~seq["is_targets"] & ~seq["is_padding"]].any()
    assert seen_history, "earlier task rows of the same user are context"
    by_table = make(store, sources=[Source(store, table="churn/train", target="label")])
    assert by_table.num_items == 12


def test_compact_and_full_forms_agree(store):
    s = make(store, ctx_len=128)
    compact, full = s.batch(5), s.batch(5, compact=False)
    assert set(full) == COMPACT_KEYS | {"col_name_values", "text_values"}
    for key in COMPACT_KEYS:
        assert np.array_equal(compact[key], full[key]), key
    emb = s.embedding_matrix()
    assert emb.shape == (len(s.vocabulary()), DIM) and emb.dtype == np.float32
    real = ~full["is_padding"]
    want = bf16_bits(emb[full["col_name_idxs"][real]])
    assert np.array_equal(full["col_name_values"][real], want)
    text = full["class_value_idxs"] >= 0
    assert text.any()
    assert np.array_equal(full["text_values"][text], bf16_bits(emb[full["class_value_idxs"][text]]))
    assert (full["text_values"][~text] == 0).all() and (full["col_name_values"][~real] == 0).all()


def bf16_bits(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def test_vocabulary_is_merged_by_string_across_stores(store, tmp_path):
    twin = shutil.copytree(store, tmp_path / "twin")
    one = make(store)
    both = make(store, sources=[Source(store, task="orders-amount"), Source(twin, task="churn")])
    assert both.vocabulary() == one.vocabulary()
    assert both.num_items == 30 + 12
    assert np.array_equal(both.embedding_matrix(), one.embedding_matrix())


def test_full_form_without_embeddings_says_to_run_embed(store, tmp_path):
    bare = write_store(tmp_path / "bare", shop_tables(), TASKS)
    s = make(bare)
    s.batch(0)
    for call in (lambda: s.batch(0, compact=False), s.embedding_matrix):
        with pytest.raises(SamplerError, match=r"plurel_ray\.store\.embed"):
            call()
    mixed = make(bare, sources=[Source(bare, task="churn"), Source(store, task="churn")])
    with pytest.raises(SamplerError, match="no text embeddings"):
        mixed.embedding_matrix()


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (dict(table="nope", target="amount"), "no table 'nope'"),
        (dict(table="orders", target="nope"), "no column 'nope'"),
        (dict(task="nope"), "no task 'nope'"),
        (dict(task="churn", split="test"), "no split 'test'"),
        (dict(table="users", target="ghost"), "nothing to sample"),
        (dict(task="orders-amount", leakage=[["orders", "nope"]]), "no column 'nope'"),
        (dict(task="orders-amount", table="orders"), "exactly one"),
    ],
)
def test_bad_sources_raise_sampler_error(store, source, match):
    with pytest.raises(SamplerError, match=match):
        make(store, sources=[Source(store, **source)])


def test_bad_arguments_raise_sampler_error(store):
    s = make(store)
    with pytest.raises(SamplerError, match="batch index"):
        s.batch(-1)
    with pytest.raises(SamplerError, match="out of range"):
        s.batch(2**63)
    with pytest.raises(SamplerError, match="max_f2p=0"):
        make(store, max_f2p=0)
    assert make(store, max_f2p=3).batch(0)["f2p_nbr_idxs"].shape[2] == 3
    with pytest.raises(SamplerError, match="rank"):
        make(store, rank=2, world_size=2)
    with pytest.raises(SamplerError, match="no sources"):
        make(store, sources=[])


def broken_copy(store: Path, tmp_path: Path, file: str, edit) -> Path:
    copy = shutil.copytree(store, tmp_path / "broken")
    path = copy / file
    if edit is None:
        path.unlink()
    else:
        path.write_bytes(edit(path.read_bytes()))
    return copy


def flip_last(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 1])


@pytest.mark.parametrize(
    ("file", "edit", "match"),
    [
        ("p2f_nodes.bin", flip_last, "p2f_nodes.bin.*checksum"),
        ("cell_value.bin", lambda b: b[:-4], "cell_value.bin.*truncated"),
        ("node_time.bin", lambda b: b[:8] + (2).to_bytes(4, "little") + b[12:], "version 2"),
        ("f2p_nodes.bin", None, "f2p_nodes.bin.*cannot open"),
        ("meta.json", None, "meta.json is missing"),
        (
            "meta.json",
            lambda b: b.replace(b'"format_version": 1', b'"format_version": 9'),
            "version 9",
        ),
        ("meta.json", lambda b: b.replace(b'"nodes": 108', b'"nodes": 107'), "counts disagree"),
    ],
)
def test_damaged_stores_raise_store_error(store, tmp_path, file, edit, match):
    broken = broken_copy(store, tmp_path, file, edit)
    with pytest.raises(StoreError, match=match):
        make(broken)


def test_a_store_whose_arrays_disagree_raises_store_error(store, tmp_path):
    copy = shutil.copytree(store, tmp_path / "inconsistent")
    nodes = np.fromfile(copy / "f2p_nodes.bin", np.uint32, offset=64)
    nodes[0] = 10_000
    write_array(copy / "f2p_nodes.bin", "FNOD", nodes)
    with pytest.raises(StoreError, match=r"f2p_nodes\.bin.*10000"):
        make(copy)
