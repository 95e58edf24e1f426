"""A task suite's entries as sampler sources of given datasets' stores (docs/tasks.md).

    suite = load_suite("relbench-paper")
    by_dataset = resolve_suite(suite, {"rel-f1": Path("runs/rel-f1/stores/rel-f1")})
    by_dataset["rel-f1"]                    # [Source(store, task="driver-dnf", …), …]

Every entry is checked against the store's meta.json — its tables with their keys and
time column, cell and skipped columns, and tasks — so a wrong name fails in one line
before any Ray work, without sampling.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plurel_ray.dataset.suite import Suite, SuiteEntry
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.pretrain_data import CELL_SEM_TYPES, source_target_sem_type
from plurel_ray.store.meta import read_meta
from plurel_ray.store.sampler import Source


def resolve_suite(
    suite: Suite, stores: Mapping[str, str | os.PathLike], split: str | None = "train"
) -> dict[str, list[Source]]:
    """The sampler sources of `suite`'s entries for the given datasets' stores.

    Args:
        suite: the suite (`load_suite`).
        stores: dataset (manifest) name → its node store.
        split: the split every source takes ("train", "val", "test").

    Returns:
        dataset name → its sources, in suite order (every dataset of `stores` present).

    Raises:
        ConfigError: an entry names a dataset that is not given (match: all).
        DatasetError: a task, table or leakage column not in the dataset, a target that
            is not a number or boolean cell column; the message names the entry.
    """
    by_dataset: dict[str, list[Source]] = {name: [] for name in stores}
    for entry in suite.entries:
        if entry.dataset not in stores:
            if suite.match == "given":
                continue
            raise ConfigError(
                f"{suite.path}: entry {entry.label} is for dataset {entry.dataset!r}, which "
                f"is not given (given: {', '.join(stores) or 'none'}); add it to --datasets "
                "or set `match: given` in the suite"
            )
        store = Path(stores[entry.dataset])
        source = _StoreColumns(store).source(entry, split, f"{suite.path}: {entry.label}")
        by_dataset[entry.dataset].append(source)
    return by_dataset


class _StoreColumns:
    """The tables, columns and tasks of one store, from its meta.json."""

    def __init__(self, store: Path):
        self.store = store
        self.meta = read_meta(store)
        self.tables = {t["name"]: t for t in self.meta.get("tables", [])}
        self.tasks = {t["name"]: t for t in self.meta.get("tasks", [])}

    def columns(self, table: str) -> tuple[set[str], set[str]]:
        """(every column of `table`, its cell columns); `table` may be a task's name, for
        the columns of its task tables (meta.json lists them under its first split)."""
        if table in self.tables or table not in self.tasks:
            listed = {table}
        else:
            listed = set(self.tasks[table].get("tables", {}).values())
        cells = {c["name"] for c in self.meta.get("columns", []) if c["table"] in listed}
        skipped = self.meta.get("skipped_columns", [])
        every = cells | {c["name"] for c in skipped if c["table"] in listed}
        for name in listed:
            spec = self.tables.get(name, {})
            every |= {spec.get("pkey"), spec.get("time_col")} - {None}
            every |= {fk[0] for fk in spec.get("fkeys", [])}
        return every, cells

    def source(self, entry: SuiteEntry, split: str | None, where: str) -> Source:
        if entry.task is not None:
            task = self.tasks.get(entry.task)
            if task is None:
                raise DatasetError(f"{where}: no task {entry.task!r} in {self.store}"
                                   f"{_close(entry.task, self.tasks)}")  # fmt: skip
            if entry.target is not None and entry.target != task["target_col"]:
                raise DatasetError(f"{where}: target {entry.target!r}, but the task's target "
                                   f"is {task['target_col']!r}; fix or drop target:")  # fmt: skip
            # A forecast task's own columns (its task tables) belong to the task's name;
            # an autocomplete task has no table of its own.
            own = task.get("kind") != "autocomplete"
            entity, owner = task.get("entity_table"), entry.task if own else None
            extra = [tuple(p) for p in task.get("remove_columns", [])]
            source = Source(self.store, task=entry.task, split=split)
        else:
            if entry.table not in self.tables or self.tables[entry.table].get("kind") == "task":
                db = [n for n, t in self.tables.items() if t.get("kind") != "task"]
                raise DatasetError(f"{where}: no table {entry.table!r} in {self.store}"
                                   f"{_close(entry.table, db)}")  # fmt: skip
            entity, owner, extra = entry.table, None, []
            same = (
                t["name"]
                for t in self.tasks.values()
                if t.get("kind") == "autocomplete"
                and (t.get("entity_table"), t.get("target_col")) == (entry.table, entry.target)
            )
            named = next(same, None)
            if named is not None:
                extra = [tuple(p) for p in self.tasks[named].get("remove_columns", [])]
                source = Source(self.store, task=named, split=split)
            else:
                source = Source(self.store, table=entry.table, target=entry.target, split=split)
        self._check_target(source, where)
        pairs = [self._leakage_pair(name, entity, owner, where) for name in entry.leakage]
        cells = [p for p in dict.fromkeys(pairs + extra) if p[1] in self.columns(p[0])[1]]
        return _with_leakage(source, cells)

    def _check_target(self, source: Source, where: str) -> None:
        sem_type = source_target_sem_type(source)
        if sem_type not in CELL_SEM_TYPES:
            target = source.target or self.tasks[source.task]["target_col"]
            found = "not a cell column of the store" if sem_type is None else f"a {sem_type} column"
            raise DatasetError(f"{where}: target {target!r} is {found}; a target must be a "
                               "number or boolean column")  # fmt: skip

    def _leakage_pair(
        self, name: str, entity: str | None, owner: str | None, where: str
    ) -> tuple[str, str]:
        """(table, column) of a leakage name: `table.column`, or a column of the entity
        table (for a forecast task also of its own task table)."""
        prefix, dot, column = name.partition(".")
        if dot and (prefix in self.tables or prefix == owner):
            table = prefix
        elif owner is not None and name in self.columns(owner)[0]:
            table, column = owner, name
        else:
            table, column = entity, name
        if table is None or (table not in self.tables and table != owner):
            raise DatasetError(f"{where}: leakage column {name!r}: the task has no entity "
                               "table; write it as table.column")  # fmt: skip
        every, _ = self.columns(table)
        if column not in every:
            raise DatasetError(f"{where}: leakage column {column!r} is not a column of table "
                               f"{table!r} in {self.store}{_close(column, every)}")  # fmt: skip
        return table, column


def _with_leakage(source: Source, leakage: list[tuple[str, str]]) -> Source:
    return dataclasses.replace(source, leakage=[list(pair) for pair in leakage])


def _close(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    if close:
        return f"; close matches: {', '.join(close)}"
    return f"; known: {', '.join(sorted(known)[:10])}" if known else ""
