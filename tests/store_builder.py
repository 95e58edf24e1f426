"""Write node stores (docs/store-format.md) from small column-wise tables.

For the sampler's tests and benchmark, independent of `plurel_ray.store.preprocess`:
it lays the arrays out exactly as the format document says (CSR offsets, per-parent
children sorted by time; headers through `plurel_ray.store.arrays`) so that the sampler
is checked against the document rather than against the preprocessor's reading of it.

Column dtypes decide semantic types: bool → boolean, other numbers → number (NaN = no
cell), datetime64 → datetime (NaT = no cell), object (str or None) → text.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plurel_ray._native import STORE_FORMAT_VERSION
from plurel_ray.store.arrays import write_array

NO_TIME = np.iinfo(np.int64).min
NUMBER, TEXT, DATETIME, BOOLEAN = 0, 1, 2, 3

TAGS = {
    "node_table": (b"NTAB", np.uint32),
    "node_time": (b"NTIM", np.int64),
    "node_cells": (b"NCEL", np.uint64),
    "cell_column": (b"CCOL", np.uint32),
    "cell_type": (b"CTYP", np.uint8),
    "cell_value": (b"CVAL", np.float32),
    "cell_text": (b"CTXT", np.int32),
    "f2p_offsets": (b"FOFF", np.uint64),
    "f2p_nodes": (b"FNOD", np.uint32),
    "p2f_offsets": (b"POFF", np.uint64),
    "p2f_nodes": (b"PNOD", np.uint32),
    "p2f_time": (b"PTIM", np.int64),
    "task_p2f_offsets": (b"TPOF", np.uint64),
    "task_p2f_nodes": (b"TPND", np.uint32),
    "task_p2f_table": (b"TPTB", np.uint32),
    "task_p2f_time": (b"TPTM", np.int64),
    "table_nodes": (b"TNOD", np.uint64),
    "table_name": (b"TNAM", np.uint32),
    "table_kind": (b"TKND", np.uint8),
    "column_name": (b"KNAM", np.uint32),
    "column_table": (b"KTAB", np.uint32),
    "vocab_offsets": (b"VOFF", np.uint64),
    "vocab_bytes": (b"VBYT", np.uint8),
    "text_emb": (b"TEMB", np.float32),
}


@dataclass
class Table:
    """One table. Task tables set `task` and `split`; their columns belong to the task.

    Args:
        name: store table name ("users", or "<task>/<split>" for a task table).
        num_rows: rows.
        columns: feature columns, one value per row (see the module docstring).
        time: int64 seconds per row (NO_TIME = none), or None for a table without time.
        fkeys: foreign key column → (parent table, parent row per row, -1 = dangling).
    """

    name: str
    num_rows: int
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    time: np.ndarray | None = None
    fkeys: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    task: str | None = None
    split: str | None = None


class _Vocab:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        return self.ids.setdefault(s, len(self.ids))


def _cells(values: np.ndarray, vocab: _Vocab) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Semantic type, presence, float value and text id of a column."""
    kind = values.dtype.kind
    if kind == "b":
        return BOOLEAN, np.ones(len(values), bool), values.astype(np.float32), None
    if kind == "M":
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return DATETIME, ~np.isnat(values), seconds.astype(np.float64), None
    if kind == "O":
        present = np.array([v is not None for v in values], bool)
        text = np.array([vocab(v) if v is not None else -1 for v in values], np.int32)
        return TEXT, present, np.zeros(len(values)), text
    values = values.astype(np.float64)
    present = ~np.isnan(values)
    if not present.any():
        return NUMBER, present, values, None
    mean, std = values[present].mean(), values[present].std()
    return NUMBER, present, (values - mean) / (std if std > 0 else 1.0), None


def _csr(owner: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.uint64)


def _columns(tables: Sequence[Table], vocab: _Vocab) -> list[dict]:
    """meta.json "columns" (plus "tab", the first table's index); task splits share columns."""
    columns, seen = [], set()
    for i, t in enumerate(tables):
        owner = t.task or t.name
        for col in t.columns:
            if (owner, col) not in seen:
                seen.add((owner, col))
                name = vocab(f"{col} of {owner}")
                columns.append({"id": len(columns), "table": owner, "name": col, "tab": i,
                                "vocab_id": name})  # fmt: skip
    return columns


def _cell_arrays(tables, offset, columns, vocab) -> dict[str, np.ndarray]:
    """node_time, node_cells and the cell_* arrays (cells ascending by column per node)."""
    column_of = {(c["table"], c["name"]): c["id"] for c in columns}
    n = int(offset[-1])
    node_time = np.full(n, NO_TIME, np.int64)
    parts = [np.zeros((5, 0))]  # per column: node, column, type, value, text of its cells
    for i, t in enumerate(tables):
        if t.time is not None:
            node_time[offset[i] : offset[i + 1]] = t.time
        for col, values in t.columns.items():
            ty, present, value, text = _cells(np.asarray(values), vocab)
            rows = np.flatnonzero(present)
            text = np.full(t.num_rows, -1) if text is None else text
            column = column_of[t.task or t.name, col]
            parts.append(np.stack([offset[i] + rows, np.full(len(rows), column),
                                   np.full(len(rows), ty), value[rows], text[rows]]))  # fmt: skip
    node, col, ty, value, text = np.concatenate(parts, axis=1)
    dates = ty == DATETIME
    if dates.any():  # one global mean/std for every datetime column
        value[dates] = (value[dates] - value[dates].mean()) / max(value[dates].std(), 1.0)
    order = np.lexsort((col, node))
    return {
        "node_time": node_time,
        "node_cells": _csr(node[order].astype(np.int64), n),
        "cell_column": col[order],
        "cell_type": ty[order],
        "cell_value": value[order],
        "cell_text": text[order],
    }


def _edge_arrays(tables, offset, node_table, node_time, kind) -> dict[str, np.ndarray]:
    """f2p in foreign-key order; p2f by (time, child); task p2f by (table, time, child)."""
    n = int(offset[-1])
    index = {t.name: i for i, t in enumerate(tables)}
    edges = [np.zeros((3, 0), np.int64)]  # child, key position, parent
    for i, t in enumerate(tables):
        for k, (parent, rows) in enumerate(t.fkeys.values()):
            rows = np.asarray(rows)
            ok = np.flatnonzero(rows >= 0)
            edges.append(np.stack([offset[i] + ok, np.full(len(ok), k),
                                   offset[index[parent]] + rows[ok]]))  # fmt: skip
    child, key, parent = np.concatenate(edges, axis=1).astype(np.int64)
    order = np.lexsort((key, child))
    arrays = {"f2p_offsets": _csr(child[order], n), "f2p_nodes": parent[order]}
    child_table = node_table[child]
    for prefix, is_task in (("p2f", False), ("task_p2f", True)):
        sel = kind[child_table] == is_task
        p, c, tab, tm = parent[sel], child[sel], child_table[sel], node_time[child[sel]]
        order = np.lexsort((c, tm, tab, p) if is_task else (c, tm, p))
        arrays[f"{prefix}_offsets"] = _csr(p[order], n)
        arrays[f"{prefix}_nodes"] = c[order]
        arrays[f"{prefix}_time"] = tm[order]
        if is_task:
            arrays["task_p2f_table"] = tab[order]
    return arrays


def write_store(
    out_dir: str | Path,
    tables: Sequence[Table],
    tasks: Sequence[dict] = (),
    *,
    embedding_dim: int | None = None,
    name: str = "test-db",
    context_rules: str | None = None,
) -> Path:
    """Write `tables` (in node order) as the store `out_dir`; returns the directory.

    Args:
        out_dir: the store directory to create.
        tables: the tables; database tables first is customary but not required.
        tasks: meta.json "tasks" entries, written as given.
        embedding_dim: also write text_emb.bin with a pseudo-embedding per string.
        name: the source name in meta.json.
        context_rules: meta.json "context_rules" ("reference" or "strict"), the rules
            the sampler builds this store's contexts with; None leaves the field out,
            as stores written before it existed (read as "strict"). The values are
            written as this module's docstring says, whatever the rules.
    """
    out = Path(out_dir)
    out.mkdir(parents=True)
    vocab = _Vocab()
    table_names = [vocab(t.task or t.name) for t in tables]
    columns = _columns(tables, vocab)
    offset = np.cumsum([0] + [t.num_rows for t in tables])
    kind = np.array([t.task is not None for t in tables], np.uint8)
    node_table = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    arrays = {"node_table": node_table, **_cell_arrays(tables, offset, columns, vocab)}
    arrays.update(_edge_arrays(tables, offset, node_table, arrays["node_time"], kind))
    strings = [s.encode() for s in vocab.ids]
    arrays.update(
        table_nodes=offset,
        table_name=np.array(table_names),
        table_kind=kind,
        column_name=np.array([c["vocab_id"] for c in columns], np.int64),
        column_table=np.array([c["tab"] for c in columns], np.int64),
        vocab_offsets=np.cumsum([0] + [len(s) for s in strings]),
        vocab_bytes=np.frombuffer(b"".join(strings), np.uint8),
    )
    if embedding_dim is not None:
        rows = [pseudo_embedding(s, embedding_dim) for s in vocab.ids]
        arrays["text_emb"] = np.concatenate([np.zeros(0, np.float32), *rows])
    files = {}
    for key, data in arrays.items():
        tag, dtype = TAGS[key]
        array = np.asarray(data).astype(dtype)
        files[f"{key}.bin"] = write_array(out / f"{key}.bin", tag.decode(), array)
    meta = _meta(tables, offset, columns, arrays, tasks, name)
    meta["files"] = files
    if context_rules is not None:
        meta["context_rules"] = context_rules
    if embedding_dim is not None:
        meta["embedding"] = {"model": "tests/pseudo-embedding", "dim": embedding_dim}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return out


def _meta(tables, offset, columns, arrays, tasks, name) -> dict:
    counts = {
        "nodes": int(offset[-1]),
        "cells": len(arrays["cell_column"]),
        "f2p_edges": len(arrays["f2p_nodes"]),
        "p2f_edges": len(arrays["p2f_nodes"]),
        "task_p2f_edges": len(arrays["task_p2f_nodes"]),
        "tables": len(tables),
        "columns": len(columns),
        "vocab": len(arrays["vocab_offsets"]) - 1,
        "max_f2p": int(np.diff(arrays["f2p_offsets"].astype(np.int64)).max(initial=0)),
    }
    table_entries = [
        {"name": t.name, "kind": "task" if t.task else "db", "task": t.task, "split": t.split,
         "node_offset": int(offset[i]), "num_nodes": t.num_rows, "pkey": None, "time_col": None,
         "fkeys": [[k, p] for k, (p, _) in t.fkeys.items()], "dangling_fkeys": 0}
        for i, t in enumerate(tables)
    ]  # fmt: skip
    return {
        "format": "plurel-ray node store",
        "format_version": STORE_FORMAT_VERSION,
        "writer": {"plurel_ray": "tests/store_builder.py"},
        "source": {"path": "", "name": name, "manifest_sha256": ""},
        "counts": counts,
        "datetime": {"mean": 0.0, "std": 1.0},
        "tables": table_entries,
        "columns": [{k: c[k] for k in ("id", "table", "name", "vocab_id")} for c in columns],
        "skipped_columns": [],
        "tasks": list(tasks),
    }


def pseudo_embedding(s: str, dim: int) -> np.ndarray:
    """A deterministic float32 vector per string (a stand-in for a sentence encoder)."""
    return np.random.default_rng(zlib.crc32(s.encode())).standard_normal(dim).astype(np.float32)
