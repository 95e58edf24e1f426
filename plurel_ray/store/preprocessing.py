"""Preprocess a RelBench-3 dataset folder into a node store (docs/store-format.md).

    store = preprocess("data/plurel-0", "stores/")           # stores/plurel-0/

The dataset's manifests become a plan — database tables in manifest order, then one task
table per split of every selected task that has its own labels — which the native
`preprocess` turns into the store's array files (GIL released). This module adds
`meta.json` and makes the directory appear atomically: it is built beside the target
and renamed into place, so the target is absent, the previous store, or complete.

Autocomplete tasks get no task table: their items are rows of the database table itself.
A generated folder written without task folders lists its autocomplete tasks in
plurel.json, and they are derived from there: the store is the one its task folders
would give (task folders, where present, win for the names they define).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pandas as pd

from plurel_ray import __version__, _native
from plurel_ray.dataset.manifests import (
    KIND_AUTOCOMPLETE,
    DatasetManifest,
    TaskManifest,
    read_dataset_manifest,
)
from plurel_ray.dataset.relbench_io import INFO_FILE, read_dataset_info, verify_content_hash
from plurel_ray.errors import ConfigError, DatasetError, StoreError, is_native_panic
from plurel_ray.names import check_name, path_inside
from plurel_ray.store.dataset_tasks import dataset_tasks, select_tasks
from plurel_ray.store.meta import (
    CONTEXT_RULES,
    DEFAULT_CONTEXT_RULES,
    META_FILE,
    STORE_FORMAT,
    context_rules_of,
    read_meta,
)
from plurel_ray.util.atomic_dir import move_into_place, remove, temporary_sibling

SPLITS = ("train", "val", "test")
# The plurel.json fields a store records as its provenance, when the dataset has them.
_PROVENANCE = ("content_hash", "seed", "config_hash")


def _seconds(timestamp: str, source: Path) -> int:
    """An ISO date or datetime as whole seconds since the epoch (naive = UTC)."""
    try:
        ts = pd.Timestamp(timestamp)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{source}: val_timestamp {timestamp!r} is not a date: {err}") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return ts.value // 10**9


def _entity_keys(task: TaskManifest) -> list[tuple[str, str]]:
    """The task table's foreign keys: (column, entity table) of its entity columns."""
    if task.entity_table and task.entity_col:
        return [(task.entity_col, task.entity_table)]
    pairs = [
        (task.src_entity_col, task.src_entity_table),
        (task.dst_entity_col, task.dst_entity_table),
    ]
    return [(col, table) for col, table in pairs if col and table]


def _plan(
    root: Path, manifest: DatasetManifest, tasks: list[tuple[TaskManifest, Path]]
) -> tuple[dict, list[dict], list[dict], list[str]]:
    """The native plan, the meta.json table and task entries, and warnings."""
    tables, meta_tables, meta_tasks, warnings = [], [], [], []

    def add(name, vocab_name, kind, path, pkey, time_col, fkeys, stats_from, task, split):
        tables.append({
            "name": name, "vocab_name": vocab_name, "kind": kind, "path": str(path),
            "pkey": pkey, "time_col": time_col, "fkeys": fkeys, "stats_from": stats_from,
        })  # fmt: skip
        # Node ranges and dangling counts are filled in from the native report.
        meta_tables.append({
            "name": name, "kind": kind, "task": task, "split": split, "node_offset": None,
            "num_nodes": None, "pkey": pkey, "time_col": time_col,
            "fkeys": [list(fk) for fk in fkeys], "dangling_fkeys": None,
        })  # fmt: skip

    for table, spec in manifest.tables.items():
        path = root / "db" / f"{table}.parquet"
        add(table, table, "db", path, spec.pkey, spec.time_col, list(spec.fkeys.items()),
            None, None, None)  # fmt: skip
    for task, folder in tasks:
        source = root / INFO_FILE if folder is None else folder / "manifest.yaml"
        entry = {
            "name": task.name, "kind": task.kind, "task_type": task.task_type,
            "entity_table": task.entity_table, "target_col": task.target_col,
            "time_col": task.time_col, "tables": {},
            "remove_columns": [list(pair) for pair in task.remove_columns],
        }  # fmt: skip
        fkeys = _entity_keys(task)
        if task.kind == KIND_AUTOCOMPLETE:
            if task.entity_table not in manifest.tables:  # e.g. a truncated manifest
                raise DatasetError(
                    f"{source}: autocomplete task {task.name!r} has "
                    f"entity_table {task.entity_table!r}, not a table of the dataset; "
                    "name one of its tables"
                )
            entry["tables"] = dict.fromkeys(SPLITS, task.entity_table)
        elif not fkeys:
            warnings.append(f"task {task.name!r}: no entity table and column; left out")
            continue
        else:
            splits = [s for s in SPLITS if (folder / f"{s}.parquet").is_file()]
            if not splits:
                warnings.append(f"task {task.name!r}: no {{train,val,test}}.parquet; left out")
                continue
            # The val and test splits are standardised with the train split's statistics.
            train = f"{task.name}/train" if "train" in splits else None
            for split in splits:
                name = f"{task.name}/{split}"
                stats_from = None if split == "train" else train
                add(name, task.name, "task", folder / f"{split}.parquet", None, task.time_col,
                    fkeys, stats_from, task.name, split)  # fmt: skip
                entry["tables"][split] = name
        meta_tasks.append(entry)
    plan = {
        "name": manifest.name,
        "val_timestamp": _seconds(manifest.val_timestamp, root / "manifest.yaml"),
        "tables": tables,
    }
    return plan, meta_tables, meta_tasks, warnings


def _target_warnings(tasks: list[dict], columns: list[dict]) -> list[str]:
    """Warn of tasks whose target is no cell column of their tables (skipped, missing)."""
    present = {(c["table"], c["name"]) for c in columns}
    warnings = []
    for task in tasks:
        # A column is reported under the first table that has it: the task's first split.
        first = next(iter(task["tables"].values()))
        if task["target_col"] and (first, task["target_col"]) not in present:
            warnings.append(
                f"task {task['name']!r}: target column {task['target_col']!r} is not a "
                f"cell column of {first!r} (missing or skipped)"
            )
    return warnings


def _input_sha256(root: Path, manifest_bytes: bytes, plan: dict, tasks: list) -> str:
    """SHA-256 over every file the store is built from, in plan order: the dataset and
    task manifests, plurel.json (its split fractions cut autocomplete tasks, and it lists
    the derived ones) and each table's Parquet file, each fed as
    '<path>\\n<byte length>\\n' and its bytes; then the names of the selected derived
    tasks, which no file of their own identifies."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\n{len(data)}\n".encode())
        h.update(data)

    feed("manifest.yaml", manifest_bytes)
    files = [folder / "manifest.yaml" for _, folder in tasks if folder is not None]
    files += [root / INFO_FILE] if (root / INFO_FILE).is_file() else []
    files += [Path(table["path"]) for table in plan["tables"]]
    for file in files:
        try:
            feed(str(file.relative_to(root)), file.read_bytes())
        except OSError as err:
            raise DatasetError(f"{root}: incomplete dataset folder: {err}") from None
    derived = [task.name for task, folder in tasks if folder is None]
    if derived:
        feed(f"{INFO_FILE}#autocomplete_tasks", "\n".join(derived).encode())
    return h.hexdigest()


def _existing_store(out: Path, input_sha256: str, context_rules: str) -> Path:
    """`out` when it is a store built from the same input files under the same context
    rules, else a StoreError."""
    replace = "pass overwrite=True (--overwrite) to replace it"
    try:
        source = read_meta(out).get("source", {})
    except StoreError as err:
        raise StoreError(
            f"{out} already exists and is not a usable store ({err}); {replace}"
        ) from None
    if source.get("input_sha256") != input_sha256:
        raise StoreError(
            f"{out} already exists, built from other input (dataset {source.get('path')!r} "
            f"or its task selection differs, or its files changed since); {replace}"
        )
    built = context_rules_of(read_meta(out))
    if built != context_rules:
        raise StoreError(
            f"{out} already exists, built under the {built!r} context rules, not "
            f"{context_rules!r}; {replace}, or write it under another name"
        )
    return out


def _source(root: Path, name: str, manifest_bytes: bytes, input_sha256: str) -> dict:
    source = {
        "path": str(root),
        "name": name,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "input_sha256": input_sha256,
    }
    if (root / INFO_FILE).is_file():
        info = read_dataset_info(root)
        source.update({key: info[key] for key in _PROVENANCE if key in info})
    return source


def _item_splits(
    root: Path, manifest: DatasetManifest, tasks: list[dict], tables: list[dict]
) -> list[str]:
    """Give every database table, and every autocomplete task after its entity table,
    the rule that splits its rows, as `item_splits` {split: {"time": [after, up_to]} |
    {"rows": [start, end]}}; returns warnings for autocomplete tasks no rule applies to
    (their splits all sample every row). A table no rule applies to has no `item_splits`.

    A table with a time column splits at the dataset's val/test timestamps (seconds;
    train ≤ val < val split ≤ test < test split); one without splits by row position at
    the fractions of the config in plurel.json, as our generator wrote the labels.
    """
    fractions = None
    if (root / INFO_FILE).is_file():
        config = read_dataset_info(root).get("config", {})
        if "val_split" in config and "test_split" in config:
            fractions = (float(config["val_split"]), float(config["test_split"]))
    val = _seconds(manifest.val_timestamp, root / "manifest.yaml")
    test = _seconds(manifest.test_timestamp, root / "manifest.yaml")
    for table in tables:
        if table["kind"] != "db":
            continue
        if table["time_col"] is not None:
            bounds = {"train": [None, val], "val": [val, test], "test": [test, None]}
            table["item_splits"] = {split: {"time": b} for split, b in bounds.items()}
        elif fractions is not None:
            n = table["num_nodes"]
            val_row, test_row = math.floor(n * fractions[0]), math.floor(n * fractions[1])
            bounds = {"train": [0, val_row], "val": [val_row, test_row], "test": [test_row, n]}
            table["item_splits"] = {split: {"rows": b} for split, b in bounds.items()}
    by_name = {t["name"]: t for t in tables}
    warnings = []
    for task in tasks:
        if task["kind"] != KIND_AUTOCOMPLETE:
            continue
        table = by_name[task["entity_table"]]
        if "item_splits" in table:
            task["item_splits"] = table["item_splits"]
        else:
            warnings.append(
                f"task {task['name']!r}: {table['name']!r} has no time column and the "
                f"dataset no {INFO_FILE} split fractions; every split samples all its rows"
            )
    return warnings


def _write_meta(store: Path, meta: dict) -> None:
    """Write meta.json last and flush it and the directory entry to disk."""
    path = store / META_FILE
    with open(path, "w") as f:
        json.dump(meta, f, indent=2, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(store)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def preprocess(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    tasks: list[str] | None = None,
    *,
    overwrite: bool = False,
    name: str | None = None,
    context_rules: str = DEFAULT_CONTEXT_RULES,
) -> Path:
    """Preprocess a RelBench-3 dataset folder into a node store, atomically.

    Running it again is a no-op: a store already at the target that was built from the
    same input files (same manifests, tables, labels and task selection, by the SHA-256
    recorded as `source.input_sha256` in its meta.json) is returned as it is.

    Args:
        dataset_dir: the folder holding `manifest.yaml`, `db/` and `tasks/` (or, for a
            generated folder, plurel.json listing its autocomplete tasks).
        out_dir: the store goes to `<out_dir>/<name>`; created if needed.
        tasks: names of the tasks to include; None for all of them.
        overwrite: rebuild the store even when it exists (the old one is removed once the
            new one is in place).
        name: the store's directory name; default the dataset's manifest name.
        context_rules: "reference" (statistics over all rows, booleans standardised
            per column, as the published checkpoint was trained) or "strict" (statistics
            over training rows, booleans 0/1); recorded in meta.json, and the sampler
            builds this store's contexts under the same rules (docs/contexts.md).

    Returns:
        The path of the store.

    Raises:
        DatasetError: the folder, a manifest or a table is missing or unusable, a
            generated folder's tables differ from its plurel.json content_hash, or a task
            name is unknown; the message names the file, table or column.
        StoreError: something other than a store of the same input and context rules
            exists at the target and `overwrite` is False.
        ConfigError: `context_rules` is neither "reference" nor "strict".
    """
    if context_rules not in CONTEXT_RULES:
        raise ConfigError(
            f"context_rules must be 'reference' or 'strict', got {context_rules!r} "
            "(docs/contexts.md)"
        )
    root = Path(dataset_dir).expanduser().resolve()
    manifest, manifest_bytes = read_dataset_manifest(root / "manifest.yaml")
    for table in manifest.tables:  # read from db/<table>.parquet
        check_name("table", table, DatasetError, f"{root / 'manifest.yaml'}: ")
    # A generated folder's tables must be the bytes it was written with: one flipped byte
    # can decode as other values and would reach the store unnoticed.
    verify_content_hash(root, manifest.tables)
    available = dataset_tasks(root, manifest.tables)
    selected = [available[t] for t in select_tasks(available, tasks)]
    plan, meta_tables, meta_tasks, warnings = _plan(root, manifest, selected)

    store_name = check_name("store name", name or manifest.name, DatasetError, f"{root}: ")
    out = path_inside(Path(out_dir).expanduser(), store_name, error=StoreError)
    input_sha256 = _input_sha256(root, manifest_bytes, plan, selected)
    if os.path.lexists(out) and not overwrite:
        return _existing_store(out, input_sha256, context_rules)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    try:
        try:
            report = _native.preprocess({**plan, "rules": context_rules}, str(tmp))
        except _native.PreprocessError as err:
            raise DatasetError(f"{root}: {err}") from None
        except _native.StoreError as err:  # the store could not be written
            raise StoreError(str(err)) from None
        except BaseException as err:
            if not is_native_panic(err):
                raise
            # A damaged file the native reader did not turn into an error of its own.
            raise DatasetError(
                f"{root}: the native reader failed ({' '.join(str(err).split())}); a file of "
                "the folder is damaged — write the folder again"
            ) from None
        for entry, native in zip(meta_tables, report["tables"], strict=True):
            entry.update(node_offset=native["node_offset"], num_nodes=native["num_nodes"],
                         dangling_fkeys=native["dangling_fkeys"])  # fmt: skip
        targets = _target_warnings(meta_tasks, report["columns"])
        targets += _item_splits(root, manifest, meta_tasks, meta_tables)
        meta = {
            "format": STORE_FORMAT,
            "format_version": _native.STORE_FORMAT_VERSION,
            "writer": {"plurel_ray": __version__},
            "context_rules": context_rules,
            "source": _source(root, manifest.name, manifest_bytes, input_sha256),
            "counts": report["counts"],
            "datetime": report["datetime"],
            "tables": meta_tables,
            "columns": report["columns"],
            "skipped_columns": report["skipped_columns"],
            "tasks": meta_tasks,
            "files": report["files"],
            "warnings": warnings + report["warnings"] + targets,
        }
        _write_meta(tmp, meta)
        move_into_place(tmp, out, overwrite, StoreError)
        _fsync_dir(out.parent)
    except BaseException:
        remove(tmp)
        raise
    return out
