"""`plurel-ray show-context`: one sampled context drawn as a PNG and described as JSON, the
JSON checked against the sampler's own batch for that item (rows, tables, edges, target,
masks) and against the database's Parquet (the target's value on its own scale), a
context of 1024 cells kept readable, and bad input refused in one line with nothing
written.

Real components: a real-shaped RelBench-3 database (tests/realshaped.py), its node store
written by the preprocessor, the native sampler.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realshaped import TEST_TIMESTAMP, VAL_TIMESTAMP, write_all

from plurel_ray.cli import build_parser, main
from plurel_ray.pipeline.context_figure import MAX_ROWS_SHOWN
from plurel_ray.store.item_sampler import ItemSampler
from plurel_ray.store.meta import read_meta
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import DEFAULT_CTX_LEN, DEFAULT_MAX_BFS_WIDTH, Source

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset folder, node store) of the real-shaped shop database."""
    root = tmp_path_factory.mktemp("show_context")
    dataset = write_all(root / "data")["shop"]
    return dataset, preprocess(dataset, root / "stores")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return struct.unpack(">II", head[16:24])


def _sampler_batch(store: Path, task: str, split: str, item: int, **settings) -> dict:
    """The sampler's context of that item in a batch of several, asked of it directly."""
    table, dot, column = task.partition(".")
    source = (Source(store, table=table, target=column, split=split) if dot else
              Source(store, task=task, split=split))  # fmt: skip
    sampler = ItemSampler([source], batch_size=3, **settings)
    batch = sampler.batch_of_items([item + 1, item, 0])
    return {key: value if key == "true_batch_size" else value[1:2] for key, value in batch.items()}


def _expected(store: Path, batch: dict) -> dict:
    """Rows, tables, edges and target that the batch holds, read off its arrays."""
    tables = read_meta(store)["tables"]
    starts = np.array([t["node_offset"] for t in tables])
    real = ~batch["is_padding"][0]
    nodes = batch["node_idxs"][0][real]
    order = list(dict.fromkeys(int(n) for n in nodes))
    table_of = {n: tables[np.searchsorted(starts, n, side="right") - 1]["name"] for n in order}
    parents = {int(n): {int(p) for p in ps if p >= 0}
               for n, ps in zip(nodes, batch["f2p_nbr_idxs"][0][real], strict=True)}  # fmt: skip
    edges = sorted((c, p) for c in order for p in parents[c] if p in parents)
    target = int(batch["node_idxs"][0][batch["is_targets"][0]][0])
    return {"nodes": order, "table_of": table_of, "edges": edges, "target": target,
            "cells": int(real.sum()), "masked": int(batch["masks"][0].sum())}  # fmt: skip


@pytest.mark.parametrize(("task", "split", "item"),
                         [("orders-amount", "val", 5), ("customer-churn", "test", 2),
                          ("orders.quantity", "train", 9)])  # fmt: skip
def test_the_json_is_what_the_sampler_built(shop, tmp_path, task, split, item, capsys):
    _, store = shop
    out = tmp_path / "ctx.png"
    args = ["show-context", str(store), "--task", task, "--item", str(item), "--split", split,
            "--ctx-len", "256", "--context-seed", "7", "--out", str(out), "--json"]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".json"))]
    _png_size(out)
    drawn = json.loads(out.with_suffix(".json").read_text())
    want = _expected(store, _sampler_batch(store, task, split, item, ctx_len=256, seed=7))
    assert [r["node"] for r in drawn["rows"]] == want["nodes"]
    assert {r["node"]: r["table"] for r in drawn["rows"]} == want["table_of"]
    assert [tuple(e) for e in drawn["edges"]] == want["edges"] and want["edges"]
    assert drawn["tables"][0]["name"] == want["table_of"][want["target"]]
    assert {t["name"]: t["rows"] for t in drawn["tables"]} == {
        name: list(want["table_of"].values()).count(name) for name in set(want["table_of"].values())
    }
    assert drawn["cells"] == sum(len(r["cells"]) for r in drawn["rows"]) == want["cells"]
    assert sum(c["masked"] for r in drawn["rows"] for c in r["cells"]) == want["masked"]
    assert drawn["target"]["node"] == want["target"]
    assert [r["node"] for r in drawn["rows"] if r["item"]] == [want["target"]]
    label = task.replace(".", "-")  # a table's column is named as Source.label names it
    assert (drawn["task"], drawn["split"], drawn["item"], drawn["seed"], drawn["ctx_len"]) == (
        label, split, item, 7, 256)  # fmt: skip


def test_values_are_on_the_target_scale(shop, tmp_path):
    dataset, store = shop
    out = tmp_path / "ctx.png"
    assert main(["show-context", str(store), "--task", "orders-amount", "--item", "11",
                 "--split", "val", "--out", str(out), "--json"]) == 0  # fmt: skip
    drawn = json.loads(out.with_suffix(".json").read_text())
    target = drawn["target"]
    row = next(r for r in drawn["rows"] if r["node"] == target["node"])
    # Item 11 is the 11th val row holding the target, in row order (as predict numbers them).
    sampler = ItemSampler([Source(store, task="orders-amount", split="val")], batch_size=1)
    assert target["node"] == sampler.item_nodes()[1][11]
    orders = pd.read_parquet(dataset / "db" / "orders.parquet")
    truth = orders.iloc[row["row"]]
    when = orders["ordered_at"]
    val_rows = (when > VAL_TIMESTAMP) & (when <= TEST_TIMESTAMP) & orders["amount"].notna()
    assert row["row"] == np.flatnonzero(val_rows)[11]
    assert target["column"] == "amount"
    assert target["value"] == pytest.approx(float(truth["amount"]), rel=1e-5, abs=1e-4)
    assert row["timestamp"][:19] == truth["ordered_at"].strftime("%Y-%m-%dT%H:%M:%S")
    cells = {c["column"]: c for c in row["cells"]}
    assert cells["amount"]["masked"] and cells["amount"]["target"]
    assert cells["channel"]["value"] == truth["channel"]  # text through the vocabulary
    assert "amount_with_tax" not in cells  # the task's leakage column is dropped


def test_a_full_context_stays_readable(shop, tmp_path):
    _, store = shop
    out = tmp_path / "ctx.png"
    assert main(["show-context", str(store), "--task", "orders-amount", "--item", "0",
                 "--split", "val", "--out", str(out), "--json"]) == 0  # fmt: skip
    drawn = json.loads(out.with_suffix(".json").read_text())
    assert drawn["cells"] > DEFAULT_CTX_LEN - 50  # a full context of the default length
    assert max(t["rows"] for t in drawn["tables"]) > MAX_ROWS_SHOWN  # some rows aggregated
    width, height = _png_size(out)
    # Columns of at most MAX_ROWS_SHOWN boxes: bounded whatever the number of rows.
    assert height <= (MAX_ROWS_SHOWN * 0.46 + 2.5) * 100 and width <= len(drawn["tables"]) * 450


def test_defaults_are_the_samplers():
    args = build_parser().parse_args(["show-context", "s", "--task", "t", "--item", "0",
                                      "--out", "x.png"])  # fmt: skip
    assert (args.ctx_len, args.max_bfs_width, args.context_seed, args.split, args.json) == (
        DEFAULT_CTX_LEN, DEFAULT_MAX_BFS_WIDTH, 0, "train", False)  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--task", "no-such-task", "--item", "0"], ["--task no-such-task", "customer-churn"]),
        (["--task", "orders-amount", "--item", "100000", "--split", "val"],
         ["--item 100000 is out of range", "orders-amount", "val split"]),
        (["--task", "orders-amount", "--item", "-1"], ["--item -1 is out of range"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(shop, tmp_path, capsys, extra, expected):
    _, store = shop
    out = tmp_path / "ctx.png"
    assert main(["show-context", str(store), *extra, "--out", str(out), "--json"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("plurel-ray: error: ")
    assert all(part in err for part in expected), err
    assert list(tmp_path.iterdir()) == []
