"""Context batches from node stores (docs/contexts.md), over many stores and tasks at once.

The native sampler (native/src/sampler/) maps and cross-validates every store, lists
the items of every source, shuffles them per epoch from (seed, epoch), gives rank `r`
slots `[r·B, (r+1)·B)` of every global batch of `B·world_size`, and builds each
sequence's context in parallel with the GIL released. This module resolves names
through each store's meta.json and maps native errors to `StoreError`/`SamplerError`.

A batch is a dict of C-contiguous arrays, `B` sequences × `L = ctx_len` positions:

| key               | dtype / shape   | meaning                                                  |
|-------------------|-----------------|----------------------------------------------------------|
| node_idxs         | int32 [B, L]    | store node id of the cell's row                          |
| f2p_nbr_idxs      | int32 [B, L, F] | the row's parents (`F = max_f2p`), -1 padded             |
| table_name_idxs   | int32 [B, L]    | global vocabulary id of the table name                   |
| col_name_idxs     | int32 [B, L]    | global vocabulary id of "<column> of <table>"            |
| class_value_idxs  | int32 [B, L]    | text cells: global vocabulary id of the value, else -1   |
| sem_types         | int32 [B, L]    | 0 number, 1 text, 2 datetime, 3 boolean                  |
| number_values     | float32 [B, L]  | standardised number (0 for other types)                  |
| datetime_values   | float32 [B, L]  | standardised timestamp (0 for other types)               |
| boolean_values    | float32 [B, L]  | standardised (reference) or 0/1 (strict); `> 0` is true  |
| masks             | bool [B, L]     | the model must hide this value (the target)              |
| is_targets        | bool [B, L]     | the item's target cell; its true value stays in place    |
| is_task_nodes     | bool [B, L]     | row in a task table; reference: also target-column cells |
| is_padding        | bool [B, L]     | unused position (always a tail of the sequence)          |
| timestamps        | int64 [B, L]    | the row's timestamp, seconds; INT64_MIN for none         |
| true_batch_size   | int             | sequences that are real items; the rest are all padding  |

Padding positions hold -1 in every id and in sem_types, 0 in the values, INT64_MIN in
timestamps; gather with `ids.clamp(min=0)` and mask with `is_padding`.

Contexts are built under the context rules the stores were written with
(`Sampler.context_rules`, "reference" or "strict", docs/contexts.md); stores written
under different rules cannot share a sampler.

The compact form (default) sends ids only: the model gathers from
`embedding_matrix()` (float32 [V, D], merged once over all stores) on the device. The
full form (`compact=False`) adds `col_name_values` and `text_values`, uint16
[B, L, D] holding bfloat16 bits — use `torch.from_numpy(a).view(torch.bfloat16)` —
and needs embeddings (`plurel_ray.store.embed`) of one model in every store.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plurel_ray import _native
from plurel_ray.errors import EmptySourceError, SamplerError, StoreError

# Re-exported: callers read meta.json through the sampler module.
from plurel_ray.store.meta import STORE_FORMAT as STORE_FORMAT
from plurel_ray.store.meta import context_rules_of
from plurel_ray.store.meta import read_meta as read_meta

DEFAULT_CTX_LEN = 1024
DEFAULT_MAX_BFS_WIDTH = 128


@dataclass(frozen=True)
class Source:
    """Where items come from: the rows of one table holding a target column.

    Name either a task of the store's meta.json or a `table` and a `target` column
    directly; a database table with a target and a split is a *derived* autocomplete
    task (no task folder needed).

    Args:
        store: the store directory.
        task: a task name from meta.json "tasks"; its `split` table holds the items and
            its "target_col" is the target.
        split: "train", "val" or "test". For a task, None means "train"; an autocomplete
            task, whose items are rows of a database table, takes only the split's rows
            (the task's "item_splits" rule: time window or row positions, as its labels
            were cut). For a `table`, None means every row of the table; a split takes
            the rows of that split by the table's own rule (meta.json
            `tables[i]["item_splits"]`, recorded by preprocess for database tables).
        table: a table by its store name ("users", "<task>/train"), instead of `task`.
        target: the target column name, with `table`.
        leakage: (table, column) pairs whose cells are dropped from the item row and from
            rows with the item's timestamp; for a task table's columns the table is the
            task name. Default: the task's "remove_columns" (none with `table`).
    """

    store: str | os.PathLike
    task: str | None = None
    split: str | None = None
    table: str | None = None
    target: str | None = None
    leakage: Sequence[Sequence[str]] | None = None

    @property
    def label(self) -> str:
        """The task name shown in evaluation rows, plots and files: the task, or
        "<table>-<target>" for a table source."""
        return self.task if self.task is not None else f"{self.table}-{self.target}"


class _Names:
    """Table and column ids of one store, by name."""

    def __init__(self, store: Path, meta: dict):
        self.store = store
        self.meta = meta
        tables = meta.get("tables", [])
        self.tables = {t["name"]: i for i, t in enumerate(tables)}
        # Columns belong to the table's name, or for a task table to the task name.
        self.column_owner = [t["task"] if t.get("kind") == "task" else t["name"] for t in tables]
        # meta.json reports a task column under its first split table ("<task>/train").
        owner = dict(zip((t["name"] for t in tables), self.column_owner, strict=True))
        self.columns = {
            (owner.get(c["table"], c["table"]), c["name"]): c["id"] for c in meta.get("columns", [])
        }
        self.tasks = {t["name"]: t for t in meta.get("tasks", [])}

    def table(self, name: str) -> int:
        if name not in self.tables:
            known = ", ".join(sorted(self.tables)[:10])
            raise SamplerError(f"{self.store}: no table {name!r} (tables: {known}, …)")
        return self.tables[name]

    def column(self, owner: str, name: str) -> int:
        if (owner, name) not in self.columns:
            raise SamplerError(
                f"{self.store}: no column {name!r} in table {owner!r} (columns of a task "
                "table belong to the task name)"
            )
        return self.columns[(owner, name)]

    def table_split(self, name: str, split: str) -> dict:
        """The rule taking `split`'s rows of table `name` (meta.json item_splits)."""
        rules = self.meta["tables"][self.tables[name]].get("item_splits")
        if not rules:
            raise SamplerError(
                f"{self.store}: table {name!r} has no split rule (no time column, no "
                "plurel.json split fractions, or a store written before split rules); "
                "use split=None for all its rows, or rebuild the store with plurel-ray "
                "preprocess --overwrite"
            )
        if split not in rules:
            raise SamplerError(
                f"{self.store}: table {name!r} has no split {split!r} (splits: {', '.join(rules)})"
            )
        return rules[split]

    def resolve(self, src: Source) -> tuple[int, int, list[int], tuple | None]:
        """(table id, target column id, leakage column ids, row split) of `src`."""
        if (src.task is None) == (src.table is None):
            raise SamplerError("a Source names exactly one of task= or table= (with target=)")
        if src.task is not None:
            task = self.tasks.get(src.task)
            if task is None:
                known = ", ".join(sorted(self.tasks)[:10])
                raise SamplerError(f"{self.store}: no task {src.task!r} (tasks: {known}, …)")
            split_tables, split = task.get("tables", {}), src.split or "train"
            if split not in split_tables:
                raise SamplerError(
                    f"{self.store}: task {src.task!r} has no split {split!r} "
                    f"(splits: {', '.join(split_tables)})"
                )
            table, target = self.table(split_tables[split]), task["target_col"]
            rule = task.get("item_splits", {}).get(split)
            leakage = src.leakage if src.leakage is not None else task.get("remove_columns", [])
            # Columns a task names but the store dropped (skipped_columns) cannot leak.
            explicit = src.leakage is not None
        else:
            if src.target is None:
                raise SamplerError(f"{self.store}: Source(table={src.table!r}) needs target=")
            table, target = self.table(src.table), src.target
            leakage, explicit = src.leakage or [], True
            rule = None if src.split is None else self.table_split(src.table, src.split)
        ids = []
        for pair in leakage:
            owner, name = _pair(pair)
            if explicit or (owner, name) in self.columns:
                ids.append(self.column(owner, name))
        split = None if rule is None else (next(iter(rule)), *next(iter(rule.values())))
        return table, self.column(self.column_owner[table], target), ids, split


def _pair(pair: Sequence[str]) -> tuple[str, str]:
    if isinstance(pair, str) or len(pair) != 2:
        raise SamplerError(f"leakage entries are (table, column) pairs, got {pair!r}")
    return str(pair[0]), str(pair[1])


def _embedding_dims(metas: list[dict]) -> tuple[list[int | None], str | None]:
    """Per store, the embedding width to map, and why the full form is impossible."""
    embs = [m.get("embedding") for m in metas]
    if all(embs):
        kinds = {(e["model"], int(e["dim"])) for e in embs}
        if len(kinds) == 1:
            return [int(e["dim"]) for e in embs], None
        return [None] * len(metas), f"the stores mix embeddings {sorted(kinds)}"
    missing = next(i for i, e in enumerate(embs) if not e)
    return [None] * len(metas), f"store {missing} has no text embeddings"


def _resolve(sources: Sequence[Source]) -> tuple[tuple[Path, ...], list[dict], list[tuple]]:
    """Distinct store directories, their meta.json, and the id tuple of every source."""
    names: dict[Path, _Names] = {}
    specs = []
    for src in sources:
        store = Path(src.store).expanduser().resolve()
        if store not in names:
            names[store] = _Names(store, read_meta(store))
        table, target, leakage, split = names[store].resolve(src)
        specs.append((list(names).index(store), table, target, leakage, split))
    return tuple(names), [n.meta for n in names.values()], specs


def _context_rules(stores: Sequence[Path], metas: list[dict]) -> str:
    """The one set of context rules every store was written under."""
    rules = [context_rules_of(meta) for meta in metas]
    if len(set(rules)) > 1:
        mixed = ", ".join(f"{store} ({r})" for store, r in zip(stores, rules, strict=True))
        raise SamplerError(
            f"the stores were written under different context rules: {mixed}; rebuild "
            "them under one setting (plurel-ray preprocess --context-rules, docs/contexts.md)"
        )
    return rules[0]


def _check_counts(stores: Sequence[Path], metas: list[dict], counts: list[dict]) -> None:
    """meta.json and the arrays must describe the same store (written by one run)."""
    for store, meta, found in zip(stores, metas, counts, strict=True):
        stated = meta.get("counts", {})
        wrong = {k: (stated[k], v) for k, v in found.items() if k in stated and stated[k] != v}
        if wrong:
            raise StoreError(
                f"{store / 'meta.json'}: counts disagree with the array files "
                f"(meta.json, arrays): {wrong}; rebuild the store"
            )


def _batch_index(index: object) -> int:
    index = _check_int("batch index", index, 0)
    if index >= 2**63:
        raise SamplerError(f"batch index {index} out of range (must be below 2**63)")
    return index


def _optional_int(name: str, value: object, low: int) -> int | None:
    return None if value is None else _check_int(name, value, low)


def _check_int(name: str, value: object, low: int) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise SamplerError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < low:
        raise SamplerError(f"{name} must be >= {low}, got {value}")
    return value


class Sampler:
    """Context batches over several stores and tasks at once (docs/contexts.md), under
    the context rules the stores were written with.

    Args:
        sources: where items come from (several may share a store; each store is
            mapped once).
        batch_size: sequences per batch and rank.
        ctx_len: cells per sequence.
        max_bfs_width: database children followed per node at most.
        seed: seeds every epoch's shuffle and every context; a batch is a pure function
            of (seed, epoch, batch index, rank, world_size) and the stores.
        rank, world_size: this rank's disjoint share of every global batch.
        max_f2p: parents per position in `f2p_nbr_idxs`; default the most any node of
            the stores has. A smaller value raises instead of dropping edges.
        num_threads: threads building sequences (a dedicated pool); None = rayon's
            global pool (RAYON_NUM_THREADS or all cores).

    Raises:
        StoreError: a store is missing, truncated, corrupted or of another version.
        SamplerError: unknown task, table or column, an empty source, a bad argument,
            stores written under different context rules.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        batch_size: int,
        ctx_len: int = DEFAULT_CTX_LEN,
        max_bfs_width: int = DEFAULT_MAX_BFS_WIDTH,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_f2p: int | None = None,
        num_threads: int | None = None,
    ):
        if not sources:
            raise SamplerError("no sources: pass at least one Source")
        world_size = _check_int("world_size", world_size, 1)
        if not 0 <= _check_int("rank", rank, 0) < world_size:
            raise SamplerError(f"rank must be in [0, {world_size}), got {rank}")
        if not 0 <= _check_int("seed", seed, 0) < 2**64:
            raise SamplerError(f"seed must be below 2**64, got {seed}")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.ctx_len = _check_int("ctx_len", ctx_len, 1)
        self.stores, metas, specs = _resolve(sources)
        context_rules = _context_rules(self.stores, metas)
        emb_dims, self._no_embeddings = _embedding_dims(metas)
        with _native_errors():
            self._native = _native.Sampler(
                [str(d) for d in self.stores],
                emb_dims,
                specs,
                batch_size=self.batch_size,
                ctx_len=self.ctx_len,
                max_bfs_width=_check_int("max_bfs_width", max_bfs_width, 1),
                seed=seed,
                rank=rank,
                world_size=world_size,
                max_f2p=_optional_int("max_f2p", max_f2p, 0),
                num_threads=_optional_int("num_threads", num_threads, 1),
                context_rules=context_rules,
            )
        _check_counts(self.stores, metas, self._native.store_counts())

    @property
    def num_items(self) -> int:
        """Items of all sources together (rows holding their target)."""
        return self._native.num_items

    @property
    def batches_per_epoch(self) -> int:
        """Batches per rank and epoch; the last one may be short (see true_batch_size)."""
        return self._native.batches_per_epoch

    @property
    def max_f2p(self) -> int:
        """Width of `f2p_nbr_idxs`."""
        return self._native.max_f2p

    @property
    def context_rules(self) -> str:
        """The context rules, "reference" or "strict": those the stores were written
        under and the contexts are built with (docs/contexts.md); a checkpoint records
        them."""
        return self._native.context_rules

    def epoch_of(self, index: int) -> int:
        """The epoch batch `index` belongs to."""
        return _batch_index(index) // self.batches_per_epoch

    def batch(self, index: int, compact: bool = True) -> dict[str, np.ndarray | int]:
        """Batch `index` of this rank, counting across epochs (epoch = index //
        batches_per_epoch). Fields: module docstring.

        Raises:
            SamplerError: a negative index; compact=False without embeddings in every store.
        """
        index = _batch_index(index)
        if not compact and self._no_embeddings:
            raise SamplerError(self._embedding_hint())
        with _native_errors():
            return self._native.batch(index, compact)

    def embedding_matrix(self) -> np.ndarray:
        """The float32 [vocab, dim] embeddings of the merged vocabulary, for the model to
        gather `col_name_idxs` and `class_value_idxs` from on the device."""
        if self._no_embeddings:
            raise SamplerError(self._embedding_hint())
        with _native_errors():
            return self._native.embedding_matrix()

    def vocabulary(self) -> list[str]:
        """The merged vocabulary (strings deduplicated over all stores), by global id."""
        return self._native.vocabulary()

    def _embedding_hint(self) -> str:
        return (
            f"text embeddings of one model are needed in every store, but "
            f"{self._no_embeddings}; run plurel_ray.store.embed on the stores, or use "
            "the compact form"
        )


@contextmanager
def _native_errors() -> Iterator[None]:
    """Re-raise the native sampler's exceptions, by type, as plurel_ray.errors types."""
    try:
        yield
    except _native.StoreError as e:
        raise StoreError(str(e)) from None
    except _native.EmptySourceError as e:
        raise EmptySourceError(str(e)) from None
    except _native.SamplerError as e:
        raise SamplerError(str(e)) from None
