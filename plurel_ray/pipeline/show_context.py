"""`plurel-ray show-context`: one sampled context, as a person debugging a prediction reads it.

    description = describe_context(sample_context(Source(store, task="t", split="val"), 3))
    draw_context(description, "ctx.png")            # pipeline/context_figure.py
    show_context(store, "t", 3, "ctx.png", write_json=True)   # both, and ctx.json

A context (docs/contexts.md) is a sequence of cells; the cells of one row share its node
id, so the rows are the distinct node ids of the non-padding positions, the foreign-key
edges are each row's parents (`f2p_nbr_idxs`) that are rows of the context too, and the
target cell is the one `is_targets` marks. Values are shown on the target's own scale:
numbers and datetimes are un-standardised with the store's meta.json statistics (the
cell's column's mean and std; one global mean and std for datetimes).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from plurel_ray.errors import SamplerError
from plurel_ray.model.batch import SEM_TYPES
from plurel_ray.store.item_sampler import ItemSampler
from plurel_ray.store.meta import read_meta
from plurel_ray.store.sampler import DEFAULT_CTX_LEN, DEFAULT_MAX_BFS_WIDTH, Source


def sample_context(
    source: Source,
    item: int,
    *,
    seed: int = 0,
    ctx_len: int = DEFAULT_CTX_LEN,
    max_bfs_width: int = DEFAULT_MAX_BFS_WIDTH,
) -> dict[str, Any]:
    """The context of one item of `source`, as `plurel-ray predict` builds it: drawn
    from (seed, item) alone (`store.item_sampler`).

    Args:
        source: the task and split (a store's `Source`).
        item: the item number: its place among the split's rows holding the target, in
            row order (0 ≤ item < number of items).
        seed: the context seed.
        ctx_len, max_bfs_width: the context settings (docs/contexts.md).

    Returns:
        {"batch": a one-sequence compact batch, "vocabulary", "meta": the store's
        meta.json, "settings": the source and context settings}.

    Raises:
        SamplerError: unknown task or split, or `item` out of range.
        StoreError: the store is unusable.
    """
    sampler = ItemSampler([source], batch_size=1, ctx_len=ctx_len, max_bfs_width=max_bfs_width,
                          seed=seed)  # fmt: skip
    if not 0 <= item < sampler.num_items:
        raise SamplerError(
            f"--item {item} is out of range: task {source.label!r} has {sampler.num_items} "
            f"items in its {source.split or 'train'} split (0 … {sampler.num_items - 1})"
        )
    settings = {"store": str(Path(source.store).resolve()), "task": source.label,
                "split": source.split or "train", "item": item, "seed": seed,
                "ctx_len": ctx_len, "max_bfs_width": max_bfs_width,
                "context_rules": sampler.context_rules}  # fmt: skip
    return {"batch": sampler.batch_of_items([item]), "vocabulary": sampler.vocabulary(),
            "meta": read_meta(Path(source.store)), "settings": settings}  # fmt: skip


class _StoreNames:
    """Tables by node id and column statistics by vocabulary name, from meta.json."""

    def __init__(self, meta: dict):
        tables = meta["tables"]
        self.tables = tables
        self.order = {t["name"]: i for i, t in enumerate(tables)}
        self.offsets = np.array([t["node_offset"] for t in tables], dtype=np.int64)
        owner = {t["name"]: t["task"] if t.get("kind") == "task" else t["name"] for t in tables}
        # The vocabulary names a column "<column> of <table>", a task column by its task.
        self.columns = {f"{c['name']} of {owner.get(c['table'], c['table'])}": c
                        for c in meta.get("columns", [])}  # fmt: skip
        self.datetime = meta.get("datetime", {"mean": 0.0, "std": 1.0})

    def table_of(self, node: int) -> dict:
        return self.tables[int(np.searchsorted(self.offsets, node, side="right")) - 1]

    def value(self, column: dict | None, sem_type: str, batch: dict, pos: int, vocab: list[str]):
        """The cell's value on its own scale (JSON-able)."""
        if sem_type == "text":
            return vocab[int(batch["class_value_idxs"][0, pos])]
        if sem_type == "boolean":
            return bool(batch["boolean_values"][0, pos] > 0)
        if sem_type == "datetime":
            stats, value = self.datetime, float(batch["datetime_values"][0, pos])
            return _iso(stats["mean"] + stats["std"] * value)
        # A zero or missing std stands for 1, as the preprocessor divides (docs/contexts.md).
        mean, std = (column.get("mean", 0.0), column.get("std") or 1.0) if column else (0.0, 1.0)
        return float(mean) + float(std) * float(batch["number_values"][0, pos])


def _iso(seconds: float) -> str | None:
    if not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(round(seconds), UTC).isoformat().replace("+00:00", "Z")


def _table_order(
    rows: dict[int, dict],
    edges: list[tuple[int, int]],
    target: dict | None,
    store_order: dict[str, int],
) -> list[str]:
    """The context's tables: the item's first, then by foreign-key hops from it (so that
    drawn edges join neighbouring columns), then by edges to nearer tables."""
    links: dict[str, Counter[str]] = {}
    for child, parent in edges:
        a, b = rows[child]["table"], rows[parent]["table"]
        links.setdefault(a, Counter())[b] += 1
        links.setdefault(b, Counter())[a] += 1
    present = {r["table"] for r in rows.values()}
    hops = {target["table"]: 0} if target else {}
    queue = list(hops)
    for table in queue:  # breadth first: the queue grows as it is walked
        for other in sorted(links.get(table, ())):
            if other not in hops:
                hops[other] = hops[table] + 1
                queue.append(other)

    def place(name: str) -> tuple[int, int, int]:
        hop = hops.get(name, len(present))
        # Among tables as far from the item, the one most joined to nearer ones first.
        joins = sum(n for other, n in links.get(name, Counter()).items()
                    if hops.get(other, hop) < hop)  # fmt: skip
        return hop, -joins, store_order[name]

    return sorted(present, key=place)


def describe_context(sampled: dict[str, Any]) -> dict[str, Any]:
    """What `sampled` (a `sample_context` result) holds, by rows, tables and edges.

    Returns:
        a JSON-able dict: the settings, "cells" (non-padding positions), "tables" (name,
        rows, cells; the item's table first, then the store's order), "rows" (per
        distinct node in order of first position: node, table, row within the table,
        timestamp, whether it is the item's row, parents, its cells with column, type,
        value, masked and target), "edges" ([child node, parent node] with both in the
        context, sorted) and "target" (node, table, column, value).
    """
    batch, vocab = sampled["batch"], sampled["vocabulary"]
    names = _StoreNames(sampled["meta"])
    real = np.flatnonzero(~batch["is_padding"][0])
    rows: dict[int, dict] = {}
    target = None
    for pos in real:
        node = int(batch["node_idxs"][0, pos])
        table = names.table_of(node)
        if node not in rows:
            stamp = int(batch["timestamps"][0, pos])
            parents = [int(p) for p in batch["f2p_nbr_idxs"][0, pos] if p >= 0]
            rows[node] = {"node": node, "table": table["name"],
                          "row": node - table["node_offset"],
                          "timestamp": None if stamp == np.iinfo(np.int64).min else _iso(stamp),
                          "item": False, "parents": parents, "cells": []}  # fmt: skip
        column_name = vocab[int(batch["col_name_idxs"][0, pos])]
        sem_type = SEM_TYPES[int(batch["sem_types"][0, pos])]
        cell = {"column": column_name.rsplit(" of ", 1)[0], "type": sem_type,
                "value": names.value(names.columns.get(column_name), sem_type, batch, pos,
                                     vocab),
                "masked": bool(batch["masks"][0, pos]),
                "target": bool(batch["is_targets"][0, pos])}  # fmt: skip
        rows[node]["cells"].append(cell)
        if cell["target"]:
            rows[node]["item"] = True
            target = {"node": node, "table": table["name"], "column": cell["column"],
                      "value": cell["value"]}  # fmt: skip
    edges = sorted({(child, parent) for child, row in rows.items() for parent in row["parents"]
                    if parent in rows})  # fmt: skip
    tables = [{"name": name, "time_col": names.tables[names.order[name]].get("time_col"),
               "rows": sum(r["table"] == name for r in rows.values()),
               "cells": sum(len(r["cells"]) for r in rows.values() if r["table"] == name)}
              for name in _table_order(rows, edges, target, names.order)]  # fmt: skip
    return {**sampled["settings"], "cells": len(real), "tables": tables,
            "rows": list(rows.values()), "edges": [list(e) for e in edges],
            "target": target}  # fmt: skip


def show_context(
    store: str | os.PathLike,
    task: str,
    item: int,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    seed: int = 0,
    ctx_len: int = DEFAULT_CTX_LEN,
    max_bfs_width: int = DEFAULT_MAX_BFS_WIDTH,
    write_json: bool = False,
) -> list[Path]:
    """Sample one context and draw it into `out` (PNG); with `write_json`, also write
    what is drawn (`describe_context`) to `out` with the suffix .json.

    Args:
        store: the node store folder.
        task: a task of the store's meta.json, or TABLE.COLUMN (a derived autocomplete
            task), as `plurel-ray predict --task` takes it.
        item: the item number (the split's rows holding the target, in row order), as
            the rows of `plurel-ray predict`'s file are numbered.
        out: the PNG path.
        split: "train", "val" or "test" (default: train).
        seed, ctx_len, max_bfs_width: the context settings.
        write_json: also write the description.

    Returns:
        the files written.

    Raises:
        ConfigError: unknown task.
        SamplerError: unknown split, or `item` out of range.
        StoreError: the store is unusable.
    """
    from plurel_ray.pipeline.context_figure import draw_context
    from plurel_ray.pipeline.predict import task_source

    source = task_source(Path(store), task, split or "train")
    sampled = sample_context(source, item, seed=seed, ctx_len=ctx_len,
                             max_bfs_width=max_bfs_width)  # fmt: skip
    description = describe_context(sampled)
    out = Path(out)
    written = [draw_context(description, out)]
    if write_json:
        path = out.with_suffix(".json")
        path.write_text(json.dumps(description, indent=1) + "\n")
        written.append(path)
    return written
