"""Golden contexts of the two context-rule settings (docs/contexts.md), one store per rule.

For each difference between `reference` and `strict` a store small enough to derive
its contexts by hand; every expected context below is derived from the rule in the
comment above it, not read back from the sampler. Rules 1–3 and 6 (and the leakage rule
of untimed items) are sampling rules: one store of tests/store_builder.py is written
twice, differing only in meta.json "context_rules". Rules 4 and 5 are values: a tiny
RelBench-3 folder is preprocessed under each setting.

A context is compared as rows (node, column name, value, mask, is_target,
is_task_node), ordered by column then node: the sampler orders cells by column, and
cells of one column from rows at the same walk depth come in random walk order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from store_builder import NO_TIME, Table, write_store

from plurel_ray.errors import SamplerError, StoreError
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import Sampler, Source

RULES = ("reference", "strict")
VALUE_KEY = ("number_values", "text_values", "datetime_values", "boolean_values")


def contexts(source: Source, ctx_len: int = 64) -> dict[int, list[tuple]]:
    """Every item's context by the item's node id, as `canon` rows; one batch holds all
    the items."""
    probe = Sampler([source], batch_size=1, ctx_len=ctx_len)
    sampler = Sampler([source], batch_size=probe.num_items, ctx_len=ctx_len)
    vocab, batch = sampler.vocabulary(), sampler.batch(0)
    out = {}
    for s in range(batch["true_batch_size"]):
        used = ~batch["is_padding"][s]
        assert not used[used.sum() :].any(), "padding is a tail"
        # Column names enter the vocabulary in column-id order, so global ids keep it.
        assert (np.diff(batch["col_name_idxs"][s][used]) >= 0).all(), "ordered by column"
        rows = []
        for p in np.flatnonzero(used):
            sem = batch["sem_types"][s, p]
            value = 0.0 if sem == 1 else float(batch[VALUE_KEY[sem]][s, p])
            rows.append((
                int(batch["node_idxs"][s, p]), vocab[batch["col_name_idxs"][s, p]],
                round(value, 6), bool(batch["masks"][s, p]), bool(batch["is_targets"][s, p]),
                bool(batch["is_task_nodes"][s, p]),
            ))  # fmt: skip
        out[int(batch["node_idxs"][s][batch["is_targets"][s]][0])] = canon(rows)
    return out


def canon(rows: list[tuple]) -> list[tuple]:
    """Rows ordered by column name, then node."""
    return sorted(rows, key=lambda r: (r[1], r[0]))


def both(tmp_path: Path, tables: list[Table], tasks=(), ctx_len=64, **source) -> dict:
    """Every item's context under each setting, from one store written twice."""
    out = {}
    for rules in RULES:
        store = write_store(tmp_path / rules, tables, tasks, context_rules=rules)
        assert Sampler([Source(store, **source)], batch_size=1).context_rules == rules
        out[rules] = contexts(Source(store, **source), ctx_len)
    return out


# --- rule 1: the context budget ---------------------------------------------------------


def test_rule_1_reference_stops_before_the_row_that_reaches_ctx_len(tmp_path):
    # users (node 0: age, vip) ← orders (node 1: amount, paid); item: the order, target
    # amount; ctx_len 4. Both settings take the item's 2 cells, then its parent from the
    # stack. Reference: 2 + 2 cells would reach ctx_len 4 → it stops before the user.
    # Strict: whole rows up to ctx_len → 4 cells fit, the user enters.
    tables = [
        Table("users", 1, {"age": np.array([30.0]), "vip": np.array([True])}),
        Table("orders", 1, {"amount": np.array([5.0]), "paid": np.array([False])},
              fkeys={"user": ("users", np.array([0]))}),
    ]  # fmt: skip
    got = both(tmp_path, tables, table="orders", target="amount", ctx_len=4)
    # Single-row number columns standardise to 0 (store_builder: std 0 → 1). Rule 6:
    # reference flags the target column's cells as task cells, the item's own included.
    user = [(0, "age of users", 0.0, False, False, False),
            (0, "vip of users", 1.0, False, False, False)]  # fmt: skip
    assert got["reference"][1] == [(1, "amount of orders", 0.0, True, True, True),
                                   (1, "paid of orders", 0.0, False, False, False)]  # fmt: skip
    order = [(1, "amount of orders", 0.0, True, True, False),
             (1, "paid of orders", 0.0, False, False, False)]  # fmt: skip
    assert got["strict"][1] == canon(user + order)


def test_rule_1_no_setting_cuts_a_row_to_fill_the_context(tmp_path):
    # Same store, ctx_len 3: the user's 2 cells do not fit beside the order's 2, so both
    # settings end the context after the order (filling 3 would cut the user's row).
    tables = [
        Table("users", 1, {"age": np.array([30.0]), "vip": np.array([True])}),
        Table("orders", 1, {"amount": np.array([5.0]), "paid": np.array([False])},
              fkeys={"user": ("users", np.array([0]))}),
    ]  # fmt: skip
    got = both(tmp_path, tables, table="orders", target="amount", ctx_len=3)
    for rules in RULES:
        assert [(r[0], r[1]) for r in got[rules][1]] == [
            (1, "amount of orders"), (1, "paid of orders"),
        ]  # fmt: skip


# --- rule 2: items without a timestamp --------------------------------------------------


def untimed_user_tables() -> list[Table]:
    # users (node 0, no time column: age, vip) ← orders o1 (node 1, time 100) and o2
    # (node 2, no timestamp), each with amount (10, 20) and paid (True, False).
    return [
        Table("users", 1, {"age": np.array([30.0]), "vip": np.array([False])}),
        Table("orders", 2, {"amount": np.array([10.0, 20.0]), "paid": np.array([True, False])},
              time=np.array([100, NO_TIME]), fkeys={"user": ("users", np.array([0, 0]))}),
    ]  # fmt: skip


def test_rule_2_an_untimed_item_follows_untimed_children_only_under_reference(tmp_path):
    got = both(tmp_path, untimed_user_tables(), table="users", target="age")
    # amount: mean 15, population std 5 → o1 -1, o2 +1. Rule 6: reference flags the
    # target column (age) as a task cell.
    user = {rules: [(0, "age of users", 0.0, True, True, rules == "reference"),
                    (0, "vip of users", 0.0, False, False, False)] for rules in RULES}  # fmt: skip
    o1 = [(1, "amount of orders", -1.0, False, False, False),
          (1, "paid of orders", 1.0, False, False, False)]  # fmt: skip
    o2 = [(2, "amount of orders", 1.0, False, False, False),
          (2, "paid of orders", 0.0, False, False, False)]  # fmt: skip
    # Reference: the user has no timestamp → only o2 (no timestamp) is followed.
    assert got["reference"][0] == canon(user["reference"] + o2)
    # Strict: an untimed item has no time to leak across → every child.
    assert got["strict"][0] == canon(user["strict"] + o1 + o2)


def test_untimed_items_drop_leakage_from_untimed_rows_only_under_reference(tmp_path):
    # Leakage column "paid of orders". Reference compares optional timestamps (none ==
    # none), so an untimed item drops it from every untimed row it sees (o2); strict
    # drops leakage only from the item and rows at the item's timestamp (it has none).
    got = both(tmp_path, untimed_user_tables(), table="users", target="age",
               leakage=[("orders", "paid")])  # fmt: skip
    has_paid = {rules: {r[0] for r in got[rules][0] if r[1] == "paid of orders"}
                for rules in RULES}  # fmt: skip
    assert has_paid == {"reference": set(), "strict": {1, 2}}


# --- rule 3: a task's label tables are one table ----------------------------------------

CHURN = {
    "name": "churn", "kind": "forecast", "task_type": "binary_classification",
    "entity_table": "users", "target_col": "label", "time_col": "time",
    "tables": {s: f"churn/{s}" for s in ("train", "val", "test")}, "remove_columns": [],
}  # fmt: skip


def test_rule_3_label_rows_of_every_split_cut_by_time(tmp_path):
    # users u (node 0, untimed, age) ← churn label rows, all about u:
    #   train: nodes 1 (t 100, True), 2 (t 200, False); val: node 3 (t 300, True);
    #   test: nodes 4 (t 400, False) and 5 (t 400, True).
    # Item: test row 4. The walk: row 4, its parent u, then u's label rows.
    # Reference: the splits are one table, cut at ≤ 400 → rows 1, 2, 3 and 5 (4 is the
    # item itself). Strict: strictly earlier than 400 → rows 1, 2, 3; row 5 shares the
    # item's timestamp, so its label stays out.
    tables = [Table("users", 1, {"age": np.array([30.0])})]
    for split, times, labels in [("train", [100, 200], [True, False]), ("val", [300], [True]),
                                 ("test", [400, 400], [False, True])]:  # fmt: skip
        tables.append(Table(
            f"churn/{split}", len(times), {"label": np.array(labels)}, time=np.array(times),
            fkeys={"user": ("users", np.zeros(len(times), int))}, task="churn", split=split,
        ))  # fmt: skip
    got = both(tmp_path, tables, [CHURN], task="churn", split="test")
    label = {1: 1.0, 2: 0.0, 3: 1.0, 4: 0.0, 5: 1.0}

    def ctx(rows):
        # Label cells of task rows are task cells under both settings; the item's own
        # label is the masked target.
        user = [(0, "age of users", 0.0, False, False, False)]
        return canon(user + [(n, "label of churn", label[n], n == 4, n == 4, True) for n in rows])

    assert got["reference"][4] == ctx([1, 2, 3, 4, 5])
    assert got["strict"][4] == ctx([1, 2, 3, 4])


# --- rule 6: task cells -----------------------------------------------------------------


def test_rule_6_reference_flags_every_cell_of_the_target_column(tmp_path):
    # users u (node 0, age) ← orders at t 100 (node 1, amount 10) and t 200 (node 2,
    # amount 30). Item: order 2, target amount (an autocomplete-style item of a
    # database table: no task table anywhere). Both settings see order 1 (t ≤ 200).
    # Reference flags every cell of the target column as a task cell — order 1's amount
    # and the item's own; strict flags only cells of task-table rows: none here.
    tables = [
        Table("users", 1, {"age": np.array([30.0])}),
        Table("orders", 2, {"amount": np.array([10.0, 30.0])}, time=np.array([100, 200]),
              fkeys={"user": ("users", np.array([0, 0]))}),
    ]  # fmt: skip
    got = both(tmp_path, tables, table="orders", target="amount")
    for rules, flag in (("reference", True), ("strict", False)):
        # amount: mean 20, population std 10 → -1, +1.
        assert got[rules][2] == [
            (0, "age of users", 0.0, False, False, False),
            (1, "amount of orders", -1.0, False, False, flag),
            (2, "amount of orders", 1.0, True, True, flag),
        ]


# --- rules 4 and 5: values, from a preprocessed folder ----------------------------------


def write_folder(root: Path) -> Path:
    """users: signup (time), age, vip; val_timestamp 2021-01-01, so users 0 and 1 are
    training rows and users 2 and 3 are not."""
    (root / "db").mkdir(parents=True)
    signup = pd.to_datetime(["2020-01-01", "2020-06-01", "2021-06-01", "2021-09-01"])
    pq.write_table(pa.table({
        "id": [0, 1, 2, 3], "signup": pa.array(signup, pa.timestamp("s")),
        "age": [30, 50, 70, 90], "vip": [True, False, False, True],
    }), root / "db" / "users.parquet")  # fmt: skip
    (root / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "manifest_version": 1, "val_timestamp": "2021-01-01",
        "test_timestamp": "2022-01-01",
        "tables": {"users": {"pkey": "id", "time_col": "signup", "fkeys": {}}},
    }))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def value_stores(tmp_path_factory) -> dict[str, Path]:
    folder = write_folder(tmp_path_factory.mktemp("tiny") / "tiny")
    out = tmp_path_factory.mktemp("stores")
    return {r: preprocess(folder, out / r, context_rules=r) for r in RULES}


def user_0_context(store: Path) -> dict[str, float]:
    ctx = contexts(Source(store, table="users", target="age"))[0]
    assert [r[0] for r in ctx] == [0, 0, 0], "an unlinked row's context is the row itself"
    return {r[1]: r[2] for r in ctx}


def test_rules_4_and_5_standardise_as_each_setting_says(value_stores):
    signup = pd.to_datetime(["2020-01-01", "2020-06-01", "2021-06-01", "2021-09-01"])
    seconds = signup.astype("int64").to_numpy() / 1e9
    # Reference (rule 5): statistics over all rows. age 30, 50, 70, 90: mean 60, sample
    # std sqrt(2000 / 3). Datetimes over every row, population std (ddof 0).
    # Rule 4: vip True, False, False, True standardised per column: mean 0.5, sample std
    # sqrt(1/3), so user 0's True is 0.5 / sqrt(1/3).
    reference = user_0_context(value_stores["reference"])
    assert reference == {
        "age of users": pytest.approx((30 - 60) / np.sqrt(2000 / 3), abs=2e-6),
        "signup of users": pytest.approx(
            (seconds[0] - seconds.mean()) / seconds.std(ddof=0), abs=2e-6
        ),
        "vip of users": pytest.approx(0.5 / np.sqrt(1 / 3), abs=2e-6),
    }
    # Strict: training rows only (users 0, 1): age mean 40, sample std sqrt(200);
    # datetimes likewise with the sample std; booleans stay 0/1.
    train = seconds[:2]
    strict = user_0_context(value_stores["strict"])
    assert strict == {
        "age of users": pytest.approx((30 - 40) / np.sqrt(200), abs=2e-6),
        "signup of users": pytest.approx((train[0] - train.mean()) / train.std(ddof=1), abs=2e-6),
        "vip of users": 1.0,
    }


def test_a_standardised_boolean_keeps_its_truth_in_its_sign(value_stores):
    # The loss and AUROC read a boolean target as value > 0: under reference a False
    # is (0 - 0.5) / std < 0 and a True (1 - 0.5) / std > 0, so the sign is the truth.
    for rules, store in value_stores.items():
        ctx = contexts(Source(store, table="users", target="vip"))
        truth = {n: next(r[2] > 0 for r in rows if r[4]) for n, rows in ctx.items()}
        assert truth == {0: True, 1: False, 2: False, 3: True}, rules


# --- the setting itself -----------------------------------------------------------------


def test_stores_of_different_rules_cannot_share_a_sampler(value_stores):
    sources = [Source(store, table="users", target="age") for store in value_stores.values()]
    with pytest.raises(SamplerError, match="different context rules"):
        Sampler(sources, batch_size=1)


def test_a_store_without_recorded_rules_is_strict(tmp_path):
    store = write_store(tmp_path / "old", untimed_user_tables())
    sampler = Sampler([Source(store, table="users", target="age")], batch_size=1)
    assert sampler.context_rules == "strict"


def test_rerunning_preprocess_under_other_rules_refuses_until_overwrite(value_stores):
    store = value_stores["strict"]
    folder = Path(json.loads((store / "meta.json").read_text())["source"]["path"])
    with pytest.raises(StoreError, match="'strict' context rules, not 'reference'"):
        preprocess(folder, store.parent, name=store.name)
    assert preprocess(folder, store.parent, name=store.name, context_rules="strict") == store
