"""Random but well-formed context batches (docs/contexts.md) for tests and benchmarks.

They have the sampler's field names, dtypes and shapes and a plausible structure: a few
tables with fixed columns, rows laid out cell by cell, foreign keys from child rows to
earlier parent rows, the first row of each sequence as the task node with one masked
target cell, a few more masked cells, and padding at the end. They stand in for the real
sampler where only the shapes and the mechanics matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SEM_NUMBER, SEM_TEXT, SEM_DATETIME, SEM_BOOLEAN = range(4)


@dataclass(frozen=True)
class SyntheticSchema:
    """Tables of a synthetic database: column count, parent table and column types.

    Vocabulary ids: table t's name is id t, its column c is id `column_ids[t][c]`; text
    values take the ids after those.
    """

    parents: tuple[int, ...]  # parent table of each table (−1 for a root)
    sem_types: tuple[tuple[int, ...], ...]  # per table, per column
    column_ids: tuple[tuple[int, ...], ...]
    vocab_size: int

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        num_tables: int = 4,
        vocab_size: int = 512,
        target_sem_type: int = SEM_NUMBER,
    ) -> SyntheticSchema:
        """A random schema; column 0 of table 0 (the task's target) has `target_sem_type`."""
        parents = tuple(-1 if t == 0 else int(rng.integers(0, t)) for t in range(num_tables))
        sem_types, column_ids, next_id = [], [], num_tables
        for _ in range(num_tables):
            n = int(rng.integers(2, 7))
            types = rng.choice(4, size=n, p=[0.45, 0.15, 0.15, 0.25])
            sem_types.append(tuple(int(t) for t in types))
            column_ids.append(tuple(range(next_id, next_id + n)))
            next_id += n
        sem_types[0] = (target_sem_type, *sem_types[0][1:])
        if vocab_size <= next_id:
            raise ValueError(f"vocab_size must exceed {next_id} (table and column names)")
        return cls(parents, tuple(sem_types), tuple(column_ids), vocab_size)


def random_batch(
    rng: np.random.Generator,
    schema: SyntheticSchema,
    batch_size: int,
    ctx_len: int,
    *,
    num_f2p: int = 2,
    mask_prob: float = 0.1,
    pad_frac: float = 0.1,
) -> dict[str, np.ndarray | int]:
    """A compact-form batch of `batch_size` sequences × `ctx_len` cells.

    Args:
        rng: the random source.
        schema: tables and vocabulary.
        batch_size, ctx_len: B and L.
        num_f2p: F, the foreign-key slots per cell (slots after the first stay −1).
        mask_prob: chance that a non-text cell besides the target is masked too.
        pad_frac: about this share of each sequence's tail is padding.
    """
    b, length = batch_size, ctx_len
    out = {
        "node_idxs": np.full((b, length), -1, np.int32),
        "f2p_nbr_idxs": np.full((b, length, num_f2p), -1, np.int32),
        "table_name_idxs": np.zeros((b, length), np.int32),
        "col_name_idxs": np.zeros((b, length), np.int32),
        "class_value_idxs": np.full((b, length), -1, np.int32),
        "sem_types": np.zeros((b, length), np.int32),
        "number_values": np.zeros((b, length), np.float32),
        "datetime_values": np.zeros((b, length), np.float32),
        "boolean_values": np.zeros((b, length), np.float32),
        "masks": np.zeros((b, length), bool),
        "is_targets": np.zeros((b, length), bool),
        "is_task_nodes": np.zeros((b, length), bool),
        "is_padding": np.ones((b, length), bool),
        "timestamps": np.zeros((b, length), np.int64),
    }
    first_text_id = max(max(ids) for ids in schema.column_ids) + 1
    for s in range(b):
        used = length - int(rng.integers(0, int(pad_frac * length) + 1))
        rows_of_table: dict[int, list[int]] = {}
        pos, node = 0, int(rng.integers(0, 1000))
        while pos < used:
            table = 0 if pos == 0 else int(rng.integers(0, len(schema.parents)))
            types = schema.sem_types[table]
            n = min(len(types), used - pos)
            cells = slice(pos, pos + n)
            out["node_idxs"][s, cells] = node
            parent = schema.parents[table]
            if parent >= 0 and num_f2p > 0:
                candidates = rows_of_table.get(parent)
                # A parent outside the context is an id no row here has.
                out["f2p_nbr_idxs"][s, cells, 0] = (
                    candidates[int(rng.integers(0, len(candidates)))]
                    if candidates
                    else node + 10**6
                )
            out["table_name_idxs"][s, cells] = table
            out["col_name_idxs"][s, cells] = schema.column_ids[table][:n]
            out["sem_types"][s, cells] = types[:n]
            out["timestamps"][s, cells] = int(rng.integers(0, 10**9))
            rows_of_table.setdefault(table, []).append(node)
            pos += n
            node += int(rng.integers(1, 4))
        _fill_values(rng, out, s, used, first_text_id, schema.vocab_size)
        out["is_padding"][s, :used] = False
        task = out["node_idxs"][s] == out["node_idxs"][s, 0]
        out["is_task_nodes"][s] = task & ~out["is_padding"][s]
        out["is_targets"][s, 0] = True  # the task row's column 0 is the target
        extra = (rng.random(used) < mask_prob) & (out["sem_types"][s, :used] != SEM_TEXT)
        out["masks"][s, :used] = extra
        out["masks"][s, 0] = True
    out["true_batch_size"] = b
    return out


def _fill_values(rng, out, s: int, used: int, first_text_id: int, vocab_size: int) -> None:
    types = out["sem_types"][s, :used]
    out["number_values"][s, :used] = np.where(types == SEM_NUMBER, rng.normal(size=used), 0)
    out["datetime_values"][s, :used] = np.where(types == SEM_DATETIME, rng.normal(size=used), 0)
    out["boolean_values"][s, :used] = np.where(types == SEM_BOOLEAN, rng.random(used) < 0.5, 0)
    text_ids = rng.integers(first_text_id, vocab_size, size=used)
    out["class_value_idxs"][s, :used] = np.where(types == SEM_TEXT, text_ids, -1)


def random_text_emb(rng: np.random.Generator, vocab_size: int, d_text: int) -> np.ndarray:
    """Unit-norm rows [V, d_text], float32, like sentence-encoder outputs."""
    emb = rng.normal(size=(vocab_size, d_text)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16), rounding to nearest even (as torch)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def with_full_form(batch: dict, text_emb: np.ndarray) -> dict:
    """The same batch in full form: `col_name_values` and `text_values` [B, L, d_text] as
    bfloat16 bits, gathered from `text_emb` (zeros where a cell has no text)."""
    col = text_emb[np.clip(batch["col_name_idxs"], 0, None)]
    text = np.where(
        (batch["class_value_idxs"] >= 0)[..., None],
        text_emb[np.clip(batch["class_value_idxs"], 0, None)],
        0.0,
    )
    return {**batch, "col_name_values": to_bf16_bits(col), "text_values": to_bf16_bits(text)}


def synthetic_batches(
    seed: int, batch_size: int, ctx_len: int, *, pool: int = 4, vocab_size: int = 512
) -> tuple[Iterator[dict], SyntheticSchema]:
    """An endless stream cycling over `pool` random batches (so generating them does not
    weigh on what a benchmark measures), and their schema."""
    rng = np.random.default_rng(seed)
    schema = SyntheticSchema.random(rng, vocab_size=vocab_size)
    batches = [random_batch(rng, schema, batch_size, ctx_len) for _ in range(pool)]

    def cycle() -> Iterator[dict]:
        while True:
            yield from batches

    return cycle(), schema
