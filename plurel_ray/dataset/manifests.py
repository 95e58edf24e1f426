"""RelBench-3 `manifest.yaml` files (dataset and task), read without importing relbench.

    manifest, data = read_dataset_manifest(folder / "manifest.yaml")
    task = read_task_manifest(folder / "tasks" / "users-age" / "manifest.yaml")

`relbench.manifest` parses these files too, but importing any relbench submodule runs
`relbench/__init__`, which imports scikit-learn (~0.7 s), and every generator actor that
preprocesses its databases would pay that once. The classes here have the fields of
relbench's `DatasetManifest`, `TableSpec` and `TaskManifest`, filled with its parsing and
defaults (tests/unit/test_manifests.py compares them on every manifest the tests write);
each file is read bounded (`DOCUMENT_BYTES`), and what relbench's loader would raise on is
a one-line `DatasetError` naming the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plurel_ray.errors import DatasetError
from plurel_ray.limits import DOCUMENT_BYTES, check_document

# relbench.manifest's values, spelled out (importing it imports scikit-learn).
MANIFEST_VERSION = 1
KIND_AUTOCOMPLETE = "autocomplete"

# libyaml's loader reads the ~100 task manifests of a synthetic database ~10x faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class TableSpec:
    """One table's keys and time column, as relbench's `TableSpec`.

    Args:
        pkey: its primary key column, or None.
        time_col: its time column, or None.
        fkeys: foreign key column -> the table whose primary key it references.
    """

    pkey: str | None = None
    time_col: str | None = None
    fkeys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetManifest:
    """A dataset folder's manifest.yaml, as relbench's `DatasetManifest`.

    Args:
        name: the dataset's name.
        val_timestamp: the validation split's start, as the YAML holds it (text or date).
        test_timestamp: the test split's start, likewise.
        description: free text, or None.
        tables: table name -> its `TableSpec`, in manifest order.
        manifest_version: the manifest format version.
    """

    name: str
    val_timestamp: Any
    test_timestamp: Any
    description: str | None = None
    tables: dict[str, TableSpec] = field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION


@dataclass(frozen=True)
class TaskManifest:
    """A task folder's manifest.yaml, as relbench's `TaskManifest` (the same fields and
    defaults; its docstring says what each means).

    Args:
        name: the task's name.
        kind: "forecast", "autocomplete" or "external".
        task_type: "regression", "binary_classification", … (RelBench's TaskType values).
    """

    name: str
    kind: str
    task_type: str
    description: str | None = None
    entity_table: str | None = None
    entity_col: str | None = None
    target_col: str | None = None
    time_col: str | None = None
    src_entity_table: str | None = None
    src_entity_col: str | None = None
    dst_entity_table: str | None = None
    dst_entity_col: str | None = None
    eval_k: int | None = None
    timedelta: str | None = None
    num_eval_timestamps: int = 1
    remove_columns: list = field(default_factory=list)  # [table, column] pairs
    sql: str | None = None
    evaluator: str | None = None
    extra_files: list = field(default_factory=list)
    manifest_version: int = MANIFEST_VERSION


# relbench's TaskManifest.from_dict ignores keys that are not fields (legacy "metrics").
_TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskManifest))


def read_yaml_mapping(path: Path) -> tuple[dict, bytes]:
    """A manifest file's mapping and its bytes, read bounded (`DOCUMENT_BYTES`).

    Args:
        path: the manifest.yaml to read.

    Raises:
        DatasetError: the file is missing, unreadable, too large, not YAML or not a mapping.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(DOCUMENT_BYTES.value + 1)
    except FileNotFoundError:
        raise DatasetError(f"{path.parent}: not a RelBench-3 folder (no {path.name})") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read: {err}") from err
    if len(data) > DOCUMENT_BYTES.value:
        raise DatasetError(f"{path}: more than {DOCUMENT_BYTES.value:,} bytes, not a manifest")
    try:
        content = yaml.load(data, Loader=_YAML_LOADER)
    # ValueError: an integer of more than 4300 digits; RecursionError: deep nesting.
    except (yaml.YAMLError, ValueError, RecursionError) as err:
        raise DatasetError(f"{path}: invalid YAML: {' '.join(str(err).split())}") from None
    check_document(content, str(path), DatasetError)
    if not isinstance(content, dict):
        raise DatasetError(f"{path}: expected a mapping, got {type(content).__name__}")
    return content, data


def _require(content: dict, keys: tuple[str, ...], path: Path, what: str) -> None:
    missing = [key for key in keys if key not in content]
    if missing:
        raise DatasetError(f"{path}: not a {what} manifest: no {', '.join(missing)}; "
                           f"a RelBench-3 {what} manifest names {', '.join(keys)}")  # fmt: skip


def _table_spec(name: Any, spec: Any, path: Path) -> TableSpec:
    """relbench's `TableSpec.from_dict`: fkeys is whatever `dict()` makes a mapping of."""
    if not isinstance(spec, dict):
        raise DatasetError(f"{path}: table {name!r} is not a mapping of pkey, time_col, fkeys")
    try:
        fkeys = dict(spec.get("fkeys", {}))
    except (TypeError, ValueError):
        raise DatasetError(
            f"{path}: table {name!r}: fkeys is not a mapping of column to referenced table"
        ) from None
    return TableSpec(pkey=spec.get("pkey"), time_col=spec.get("time_col"), fkeys=fkeys)


def read_dataset_manifest(path: Path) -> tuple[DatasetManifest, bytes]:
    """A dataset's manifest.yaml as relbench's `DatasetManifest.load` reads it, with the
    file's bytes (a store records their hash).

    Args:
        path: the dataset folder's manifest.yaml.

    Raises:
        DatasetError: the file is unreadable or lacks a field relbench requires, or its
            tables are not mappings; the message names the file.
    """
    content, data = read_yaml_mapping(path)
    _require(content, ("name", "val_timestamp", "test_timestamp"), path, "dataset")
    tables = content.get("tables", {})
    if not isinstance(tables, dict):
        raise DatasetError(f"{path}: tables is not a mapping of table name to its keys")
    manifest = DatasetManifest(
        name=content["name"],
        val_timestamp=content["val_timestamp"],
        test_timestamp=content["test_timestamp"],
        description=content.get("description"),
        tables={name: _table_spec(name, spec, path) for name, spec in tables.items()},
        manifest_version=content.get("manifest_version", MANIFEST_VERSION),
    )
    return manifest, data


def read_task_manifest(path: Path) -> TaskManifest:
    """A task folder's manifest.yaml as relbench's `TaskManifest.load` reads it (unknown
    keys ignored, absent fields at their defaults).

    Args:
        path: the task folder's manifest.yaml.

    Raises:
        DatasetError: the file is unreadable, lacks name, kind or task_type, or its
            remove_columns is not a list of [table, column] pairs (relbench's task API
            would fail on it later); the message names the file.
    """
    content, _ = read_yaml_mapping(path)
    _require(content, ("name", "kind", "task_type"), path, "task")
    task = TaskManifest(**{key: value for key, value in content.items() if key in _TASK_FIELDS})
    pairs = task.remove_columns
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, str) for n in pair)
        for pair in pairs
    ):
        raise DatasetError(
            f"{path}: remove_columns is not a list of [table, column] pairs: {pairs!r:.80}"
        )
    return task
