"""What a pretraining job trains and evaluates on: node stores and their tasks as sources.

    stores = synthetic_stores("data/run1")                    # data/run1/stores/plurel-*
    train, held_out = split_holdout(stores, holdout=1)
    sources = task_sources(train, split="train")              # [Source(store, task, split)]

Stores must be local (the sampler maps their files) and embedded (the model reads text
through the stores' embedding matrix); both are checked here, before Ray starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import yaml

from plurel_ray.errors import ConfigError, DatasetError, EmptySourceError, StoreError
from plurel_ray.store.sampler import Sampler, Source, read_meta

STORES_DIR = "stores"
# Task types the model predicts from one cell: a number (R²) or a boolean (AUROC).
CELL_TASK_TYPES = ("regression", "binary_classification")
CELL_SEM_TYPES = ("number", "boolean")
T = TypeVar("T")


def target_sem_type(meta: dict, task: dict) -> str | None:
    """The semantic type of `task`'s target column in the store, None if the store has
    no such cell column (skipped, e.g. a list or binary column, or missing)."""
    # meta.json lists a task's columns under its first split table (as preprocess writes).
    first = next(iter(task.get("tables", {}).values()), None)
    for column in meta.get("columns", []):
        if column["table"] == first and column["name"] == task.get("target_col"):
            return column["sem_type"]
    return None


def source_target_sem_type(source: Source) -> str | None:
    """The semantic type ("number", "boolean", …) of `source`'s target cell column in
    its store, for task and table sources alike; None if the store has no such cell
    column (or no such task or table).

    Args:
        source: a task source (`task=`) or a table source (`table=`, `target=`).
    """
    meta = read_meta(source.store)
    if source.task is not None:
        task = next((t for t in meta.get("tasks", []) if t["name"] == source.task), None)
        return None if task is None else target_sem_type(meta, task)
    listed_under = source.table  # meta.json lists a task table's columns under its first split
    for table in meta.get("tables", []):
        if table["name"] == source.table and table.get("kind") == "task":
            task = next((t for t in meta.get("tasks", []) if t["name"] == table.get("task")), {})
            listed_under = next(iter(task.get("tables", {}).values()), source.table)
    for column in meta.get("columns", []):
        if column["table"] == listed_under and column["name"] == source.target:
            return column.get("sem_type")
    return None


def task_sources(
    stores: Iterable[str | os.PathLike],
    split: str = "train",
    kinds: Sequence[str] | None = None,
    max_tasks_per_store: int | None = None,
) -> list[Source]:
    """Sampler sources for every cell-prediction task of `stores` that has `split`.

    A task qualifies when its task_type is regression or binary_classification and its
    target is a number or boolean cell column of the store. The order is the stores'
    order, then meta.json's task order, so the same stores always give the same list.

    Args:
        stores: node store directories.
        split: "train", "val" or "test"; tasks without that split are left out.
        kinds: task kinds to keep ("autocomplete", "forecast", …); None keeps all.
        max_tasks_per_store: keep this many of a store's qualifying tasks, evenly spaced
            over its list (meta.json lists tasks by table, so the first N would all
            come from the first table); None keeps all.

    Returns:
        one `Source(store, task, split)` per qualifying task (the store as a string).
    """
    if max_tasks_per_store is not None and max_tasks_per_store < 1:
        raise ConfigError(f"max_tasks_per_store must be ≥ 1, got {max_tasks_per_store}")
    sources = []
    for store in map(Path, stores):
        meta = read_meta(store)
        names = [
            task["name"]
            for task in meta.get("tasks", [])
            if task.get("task_type") in CELL_TASK_TYPES
            and (kinds is None or task.get("kind") in kinds)
            and split in task.get("tables", {})
            and target_sem_type(meta, task) in CELL_SEM_TYPES
        ]
        if max_tasks_per_store is not None and len(names) > max_tasks_per_store:
            names = [names[i * len(names) // max_tasks_per_store]
                     for i in range(max_tasks_per_store)]  # fmt: skip
        sources.extend(Source(str(store), task=name, split=split) for name in names)
    return sources


def drop_empty_sources(
    sources: Sequence[Source], batch_size: int, ctx_len: int
) -> tuple[list[Source], list[Source]]:
    """(sources with items, sources without any) — checked with the native sampler
    before Ray starts, so a bad store or an empty task fails here in one line.

    One sampler over all sources is the common case (milliseconds even for hundreds of
    stores); only when it finds an empty source is each source tried alone.

    Raises:
        StoreError, SamplerError: a store or source is unusable for another reason.
    """

    def sampler(group: Sequence[Source]) -> Sampler:
        return Sampler(list(group), batch_size=batch_size, ctx_len=ctx_len)

    try:
        sampler(sources).embedding_matrix()  # also checks every store has embeddings
        return list(sources), []
    except EmptySourceError:
        pass
    kept, empty = [], []
    for source in sources:
        try:
            sampler([source])
            kept.append(source)
        except EmptySourceError:
            empty.append(source)
    return kept, empty


def _natural_key(path: Path) -> list:
    """plurel-2 before plurel-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def local_folder(text: str, flag: str) -> Path:
    """`text` as a local path; the sampler maps store files, so URIs cannot be read."""
    if "://" in text:
        raise ConfigError(f"{flag} {text}: must be a local or shared-filesystem folder, not a URI")
    return Path(text).expanduser().resolve()


def data_root(text: str) -> Path | str:
    """`--data` as a local folder (resolved), or a URI as given: a packed run is read
    from object storage too, its stores unpacked to local disk (`prepare_synthetic`
    refuses a URI of any other run)."""
    return text if "://" in text else Path(text).expanduser().resolve()


def synthetic_stores(data: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The embedded node stores under `data/stores/`, in natural name order.

    Args:
        data: an output folder of `jobs/generate.py --preprocess --embed`.
        names: the store names to take (default: every store there).

    Raises:
        DatasetError: no stores, or a named one is missing.
        StoreError: a store is unreadable or has no text embeddings.
    """
    root = data / STORES_DIR
    fix = f"run `python jobs/generate.py --out {data} --preprocess --embed` (it skips what exists)"
    if names is None:
        found = root.glob("*/meta.json") if root.is_dir() else []
        stores = sorted((meta.parent for meta in found), key=_natural_key)
    else:
        stores = [root / name for name in names]
    if not stores:
        raise DatasetError(f"{root}: no node stores; {fix}")
    for store in stores:
        if not (store / "meta.json").is_file():
            raise DatasetError(f"{store}: no node store; {fix}")
        if not read_meta(store).get("embedding"):
            raise StoreError(f"{store}: has no text embeddings; {fix}")
    return stores


def split_holdout(stores: Sequence[T], holdout: int | None) -> tuple[list[T], list[T]]:
    """(training stores, held-out stores): the last `holdout` stores are held out;
    None holds out 1 when there are at least 2 stores, else none."""
    if holdout is None:
        holdout = 1 if len(stores) >= 2 else 0
    if not 0 <= holdout < len(stores):
        raise ConfigError(
            f"--holdout {holdout} must be in [0, {len(stores) - 1}]: {len(stores)} store(s), "
            "and at least one must stay for training"
        )
    cut = len(stores) - holdout
    return list(stores[:cut]), list(stores[cut:])


def dataset_name(folder: Path) -> str:
    """The "name" of a RelBench-3 folder's manifest.yaml."""
    path = folder / "manifest.yaml"
    try:
        manifest = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: not a RelBench-3 folder (no manifest.yaml)") from None
    except (OSError, yaml.YAMLError) as err:
        raise DatasetError(f"{path}: unreadable ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str):
        raise DatasetError(f"{path}: has no 'name' string")
    return manifest["name"]


def dataset_names(folders: Sequence[Path]) -> dict[str, Path]:
    """Dataset name → folder, refusing two folders of one name (their stores would clash)."""
    named: dict[str, Path] = {}
    for folder in folders:
        name = dataset_name(folder)
        if name in named:
            raise DatasetError(
                f"datasets {named[name]} and {folder} are both named {name!r}; change the "
                "'name' in one manifest.yaml"
            )
        named[name] = folder
    return named


def leave_one_out(names: Sequence[str], leave_out: str | None) -> tuple[list[str], str]:
    """(datasets to train on, the dataset to evaluate on). With a single dataset and no
    `leave_out`, it is both (its train split trains, its test split evaluates).

    Raises:
        ConfigError: `leave_out` missing with several datasets, unknown, or the only one.
    """
    if leave_out is None:
        if len(names) > 1:
            raise ConfigError(f"--leave-out NAME is required with several datasets; choose "
                              f"one of {', '.join(names)}")  # fmt: skip
        return list(names), names[0]
    if leave_out not in names:
        raise ConfigError(f"--leave-out {leave_out}: no such dataset; choose one of "
                          f"{', '.join(names)} (the names in their manifest.yaml)")  # fmt: skip
    if len(names) == 1:
        raise ConfigError(f"--leave-out {leave_out} leaves no dataset to train on; give "
                          "another folder to --datasets, or drop --leave-out")  # fmt: skip
    return [name for name in names if name != leave_out], leave_out
