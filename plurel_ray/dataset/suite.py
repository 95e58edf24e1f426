"""Task suites: which tasks of which datasets a run trains and evaluates on (docs/tasks.md).

    suite = load_suite("relbench-paper")            # built in, or a path to a YAML file
    suite.entries[0]                                # SuiteEntry(dataset="rel-amazon", …)

A suite is one YAML file:

    name: my-suite
    description: what the tasks are for
    match: all            # or `given`: entries of datasets that are not given are skipped
    tasks:
      - dataset: rel-f1                 # the dataset's manifest name
        task: driver-dnf                # a task folder of the dataset (forecast or
        target: did_not_finish          #   autocomplete); target, if given, is checked
      - dataset: rel-trial
        table: eligibilities            # or a database table and a target column: the
        target: adult                   #   autocomplete task with that entity table and
        leakage: [child, minimum_age]   #   target, else one derived from the table
      - dataset: rel-f1
        table: results
        target: position
        leakage: [points, races.year]   # entity-table columns, or `table.column`

An entry can also *define* a task that `plurel-ray tasks add DIR FILE` writes into a
dataset folder (`dataset.task_writer`): a table and target (an autocomplete task, folder
`<table>-<target>`), or a forecast task by a DuckDB query over the tables — RelBench's own
label SQL, seeing `timestamps(timestamp)` and `{timedelta}` — returning the entity key
(named as the entity table's primary key), `timestamp` and the label column `target`:

      - dataset: shop
        task: customer-churn            # the task folder's name
        table: customers                # the entity table
        target: churn                   # the label column the query returns
        timedelta: 30 days
        query: |
          SELECT t.timestamp, c.id, COUNT(o.id) = 0 AS churn FROM timestamps t, customers c
          LEFT JOIN orders o ON o.customer_id = c.id AND o.ordered_at > t.timestamp
            AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}'
          GROUP BY t.timestamp, c.id
        task_type: binary_classification   # optional: default from the labels' type
        val_timestamp: 2021-01-01          # optional: checked against the dataset's

`leakage` names columns that would give the answer away: their cells are dropped from
the item's row and from rows sharing its timestamp. A named task also keeps the leakage
columns of its manifest (`remove_columns`). A column that exists in the table but is no
cell of the store (a key, the time column, a skipped list column) cannot leak as a cell
and is checked but not passed on. `pipeline.suite_sources.resolve_suite` checks every entry
against the stores' meta.json (tables, columns, skipped columns, tasks) — never by
sampling — and turns it into a sampler `Source`, before any Ray work.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plurel_ray.errors import ConfigError
from plurel_ray.limits import load_yaml_file

BUILT_IN_DIR = Path(__file__).parent / "suites"
MATCH_MODES = ("all", "given")
_SUITE_KEYS = {"name", "description", "match", "tasks"}
_ENTRY_KEYS = {"dataset", "task", "table", "target", "leakage"}
# The keys of an entry that defines a task (`tasks add`), over `_ENTRY_KEYS`.
_DEFINITION_KEYS = {"query", "timedelta", "task_type", "val_timestamp", "test_timestamp"}
TASK_TYPES = ("binary_classification", "regression")


@dataclass(frozen=True)
class SuiteEntry:
    """One task of a suite: a named task of a dataset, or a table and target column."""

    dataset: str
    task: str | None
    table: str | None
    target: str | None
    leakage: tuple[str, ...]
    query: str | None = None
    timedelta: str | None = None
    task_type: str | None = None
    val_timestamp: str | None = None
    test_timestamp: str | None = None

    @property
    def label(self) -> str:
        """The entry as a reader names it: dataset/task or dataset/table.target."""
        return f"{self.dataset}/{self.task or f'{self.table}.{self.target}'}"


@dataclass(frozen=True)
class Suite:
    """A task suite (module docstring), as read from `path`."""

    name: str
    description: str
    match: str
    entries: tuple[SuiteEntry, ...]
    path: Path


def built_in_suites() -> list[str]:
    """The names of the suites shipped with the package."""
    return sorted(p.stem for p in BUILT_IN_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """The suite of a YAML file, or of a built-in suite by name (`relbench-paper`).

    Args:
        name_or_path: a path to a suite file, or a built-in suite's name.

    Raises:
        ConfigError: neither a file nor a built-in name, invalid YAML, or a field
            missing, unknown or of the wrong type (naming the entry and the field).
    """
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        if str(name_or_path) not in built_in_suites():
            raise ConfigError(
                f"--tasks {name_or_path}: no such suite file, and not a built-in suite "
                f"({', '.join(built_in_suites())})"
            )
        path = BUILT_IN_DIR / f"{name_or_path}.yaml"
    content = load_yaml_file(path, str(path), ConfigError, "a suite")
    return _parse(content, path.resolve())


def _parse(content: Any, path: Path) -> Suite:
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a suite is a mapping with name, tasks (docs/tasks.md)")
    _known_keys(content, _SUITE_KEYS, f"{path}")
    name = _text(content, "name", f"{path}")
    match = content.get("match", "all")
    if match not in MATCH_MODES:
        raise ConfigError(f"{path}: match is {match!r}, expected 'all' or 'given'")
    tasks = content.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"{path}: tasks must be a non-empty list of entries")
    entries = tuple(_entry(raw, f"{path}: tasks[{i}]") for i, raw in enumerate(tasks))
    description = content.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description must be a string")
    return Suite(name, description, match, entries, path)


def _entry(raw: Any, where: str) -> SuiteEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an entry is a mapping (dataset, task or table, …)")
    _known_keys(raw, _ENTRY_KEYS | _DEFINITION_KEYS, where)
    dataset = _text(raw, "dataset", where)
    task, table = (_text(raw, key, where, required=False) for key in ("task", "table"))
    target = _text(raw, "target", where, required=False)
    definition = {key: _definition_text(raw, key, where) for key in sorted(_DEFINITION_KEYS)}
    if definition["query"] is not None:
        missing = [k for k, v in [("task", task), ("table", table), ("target", target),
                                  ("timedelta", definition["timedelta"])] if v is None]  # fmt: skip
        if missing:
            raise ConfigError(f"{where}: a task defined by query: also needs "
                              f"{', '.join(k + ':' for k in missing)} (docs/tasks.md)")  # fmt: skip
    elif (task is None) == (table is None):
        raise ConfigError(f"{where}: give either task: or table: (with target:), not both")
    elif task is not None and any(definition.values()):
        given = ", ".join(k for k, v in definition.items() if v is not None)
        raise ConfigError(f"{where}: {given} define a task: give table: and target: (or "
                          "query:) instead of task:")  # fmt: skip
    elif definition["timedelta"] is not None:
        raise ConfigError(f"{where}: timedelta: belongs to a task defined by query:")
    if definition["task_type"] not in (None, *TASK_TYPES):
        raise ConfigError(f"{where}: task_type is {definition['task_type']!r}, expected one "
                          f"of {', '.join(TASK_TYPES)}")  # fmt: skip
    if table is not None and target is None:
        raise ConfigError(f"{where}: table: {table} needs a target: column")
    leakage = raw.get("leakage", [])
    if not isinstance(leakage, list) or not all(isinstance(c, str) and c for c in leakage):
        raise ConfigError(f"{where}: leakage must be a list of column names")
    return SuiteEntry(dataset, task, table, target, tuple(leakage), **definition)


def _definition_text(mapping: dict, key: str, where: str) -> str | None:
    value = mapping.get(key)
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2021-01-01 as a date
        return value.isoformat()
    return _text(mapping, key, where, required=False)


def _known_keys(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} "
                          f"(fields: {', '.join(sorted(known))})")  # fmt: skip


def _text(mapping: dict, key: str, where: str, required: bool = True) -> str | None:
    value = mapping.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value
