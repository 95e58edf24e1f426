"""The tasks of a RelBench-3 dataset folder, as `preprocess` builds them into a store.

Two sources: task folders (`tasks/<name>/manifest.yaml`, RelBench's own layout, also what
`write_dataset(..., write_tasks=True)` and `plurel-ray tasks add` write), and for a
generated folder written without them the autocomplete tasks its plurel.json lists
(docs/store-format.md#tasks). Both give the same `TaskManifest`s, so a store does not
depend on which way its dataset was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plurel_ray.dataset.autocomplete import TASK_TYPES
from plurel_ray.dataset.manifests import KIND_AUTOCOMPLETE, TaskManifest, read_task_manifest
from plurel_ray.dataset.relbench_io import INFO_FILE, read_dataset_info
from plurel_ray.errors import DatasetError
from plurel_ray.names import check_name

_SHOWN_TASKS = 20


def derived_tasks(root: Path, tables: dict) -> dict[str, tuple[TaskManifest, None]]:
    """The autocomplete tasks plurel.json lists, as the manifests `write_tasks=True`
    would have written, by name in name order (that of task folders); {} when the folder
    has no plurel.json or it lists none (format version 1 always wrote task folders).

    Args:
        root: the dataset folder.
        tables: the tables of its manifest.yaml (each task's entity table must be one).
    """
    file = root / INFO_FILE
    listed = read_dataset_info(root).get("autocomplete_tasks") if file.is_file() else None
    if listed is None:
        return {}
    fix = "write the folder again"
    if not isinstance(listed, list):
        raise DatasetError(f"{file}: autocomplete_tasks is not a list; {fix}")
    tasks = {}
    for i, entry in enumerate(listed):
        where = f"{file}: autocomplete_tasks[{i}]"
        fields = ("name", "table", "column", "task_type")
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in fields):
            raise DatasetError(f"{where}: expected text fields {', '.join(fields)}; {fix}")
        name = check_name("task", entry["name"], DatasetError, f"{where}: ")
        if name in tasks:
            raise DatasetError(
                f"{file}: two tasks are named {name!r} (table-column); rename a table or "
                "column so that their names differ, then generate it again"
            )
        if entry["table"] not in tables or entry["task_type"] not in TASK_TYPES:
            raise DatasetError(f"{where}: table {entry['table']!r} is not in manifest.yaml "
                               f"or task_type {entry['task_type']!r} unknown; {fix}")  # fmt: skip
        task = TaskManifest(name=name, kind=KIND_AUTOCOMPLETE, task_type=entry["task_type"],
                            entity_table=entry["table"], target_col=entry["column"])  # fmt: skip
        tasks[name] = (task, None)
    return dict(sorted(tasks.items()))  # the order of task folders


def dataset_tasks(root: Path, tables: dict) -> dict[str, tuple[TaskManifest, Path | None]]:
    """Every task of the dataset by name: its task folders and, for names no folder
    defines, the tasks derived from plurel.json (folder None), in name order.

    Args:
        root: the dataset folder.
        tables: the tables of its manifest.yaml.
    """
    folders = task_manifests(root)
    derived = derived_tasks(root, tables)
    if not derived.keys() - folders.keys():
        return folders
    return dict(sorted({**derived, **folders}.items()))


def task_manifests(root: Path) -> dict[str, tuple[TaskManifest, Path]]:
    """Every task folder of the dataset by name, with its folder, in folder-name order.

    Args:
        root: the dataset folder.
    """
    tasks = {}
    for path in sorted((root / "tasks").glob("*/manifest.yaml")):
        task = read_task_manifest(path)
        tasks[check_name("task", task.name, DatasetError, f"{path}: ")] = (task, path.parent)
    return tasks


def select_tasks(available: dict[str, Any], wanted: list[str] | None) -> list[str]:
    """The names of `wanted` (all of `available` for None), without repeats.

    Args:
        available: the dataset's tasks by name.
        wanted: task names asked for (--task-names), or None.

    Raises:
        DatasetError: a wanted name is not available; the message lists some that are.
    """
    if wanted is None:
        return list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        names = list(available)
        shown = ", ".join(names[:_SHOWN_TASKS])
        more = f", … ({len(names)} in all)" if len(names) > _SHOWN_TASKS else ""
        raise DatasetError(
            f"unknown task(s) {', '.join(map(repr, unknown))}; available: {shown or 'none'}{more}"
        )
    return list(dict.fromkeys(wanted))
