"""What a training job trains and evaluates on, from its data flags: the one code path of
`jobs/pretrain.py`, `continue_pretrain.py`, `baseline_pretrain.py`, the demo and the
scaling sweep (`flags.add_data_arguments` adds the flags).

    selection = select_data(args)         # after check_training_arguments(args)
    selection.train, selection.eval       # sampler Sources: training and held-out tasks

Synthetic data (`--data`, `--num-dbs`, `--holdout`) and real RelBench-3 datasets
(`--datasets DIR_OR_HUB_ID…`, `--leave-out NAME`, `--tasks SUITE`) may be mixed. The
evaluation tasks are the left-out real dataset's when there is one, else the synthetic
held-out stores', else the training stores' (their evaluation split is still unseen).
Without `--tasks` every number or boolean task of a real dataset is used with its
manifest's leakage columns; with it, the suite's tasks (docs/tasks.md): the training
datasets' train split for training, the left-out dataset's for evaluation.

Everything a user can name wrongly — a folder, a Hub id, a suite, a task, a leakage
column — fails here in one line, before any Ray or training work.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.pretrain_data import (
    dataset_names,
    leave_one_out,
    local_folder,
    task_sources,
)
from plurel_ray.store.sampler import Source

if TYPE_CHECKING:
    from plurel_ray.dataset.suite import Suite
    from plurel_ray.pipeline.prepare import PreparedData

# A RelBench-3 dataset on the Hugging Face Hub: ORG/REPO/SUBFOLDER (a dataset repo).
HUB_DATASET = re.compile(r"\w[\w.-]*/[\w.-]+(/[\w.-]+)+")


@dataclass(frozen=True)
class DataSelection:
    """The sources of a run and where they came from.

    Attributes:
        train: the training tasks (train split).
        eval: the held-out tasks (`eval_split`; evaluation replaces the split).
        synthetic: the synthetic stores, when --data was given.
        real_stores: real dataset name → its embedded node store.
        left_out: the real dataset held out for evaluation, if any.
        identity: what defines the run's data, for its name (`run_name_from_args`):
            "train" (store and dataset names), "eval" (the evaluated real dataset),
            "tasks" (the suite).
    """

    train: list[Source]
    eval: list[Source]
    synthetic: PreparedData | None = None
    real_stores: dict[str, Path] = field(default_factory=dict)
    left_out: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)


def dataset_folder(text: str) -> Path:
    """The local folder of a `--datasets` value: a folder as it is, or a Hub dataset id
    `ORG/REPO/SUBFOLDER` resolved by `relbench.load_dataset` (downloaded once into the
    Hugging Face cache, from HF_ENDPOINT with HF_TOKEN).

    Raises:
        DatasetError: neither an existing folder nor a Hub id that resolves.
    """
    path = Path(text).expanduser()
    if path.exists() or not HUB_DATASET.fullmatch(text):
        if not path.exists():
            raise DatasetError(f"--datasets {text}: no such folder, and not a Hub dataset id "
                               "ORG/REPO/SUBFOLDER")  # fmt: skip
        return local_folder(text, "--datasets")
    import relbench
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(relbench.load_dataset(text).dataset_dir)
    except (OSError, ValueError, HfHubHTTPError) as err:
        reason = " ".join(str(err).split())[:300]
        raise DatasetError(f"--datasets {text}: the Hub dataset cannot be resolved ({reason}); "
                           "check the id, HF_ENDPOINT and HF_TOKEN") from None  # fmt: skip


def real_datasets(texts: Sequence[str]) -> dict[str, Path]:
    """Dataset (manifest) name → local folder of every `--datasets` value.

    Raises:
        DatasetError: a value cannot be resolved, or two datasets share a name.
    """
    return dataset_names([dataset_folder(text) for text in texts])


def load_tasks_suite(name_or_path: str | None) -> Suite | None:
    """The suite of `--tasks` (None without it)."""
    if name_or_path is None:
        return None
    from plurel_ray.dataset.suite import load_suite

    return load_suite(name_or_path)


def cell_task_sources(
    stores: Mapping[str, Path],
    names: Sequence[str],
    split: str,
    suite: Suite | None,
    max_tasks: int | None,
) -> list[Source]:
    """The tasks of some of the real datasets: the suite's, or every cell task of each.

    Args:
        stores: every given dataset's name → its node store (a suite entry for a
            dataset not among them is an error unless the suite says `match: given`).
        names: the datasets whose tasks to take.
        split: the split the sources take.
        suite: the `--tasks` suite, or None for every number/boolean task.
        max_tasks: at most this many tasks per dataset without a suite (None: all).
    """
    if suite is None:
        picked = [stores[name] for name in names]
        return task_sources(picked, split=split, max_tasks_per_store=max_tasks)
    from plurel_ray.pipeline.suite_sources import resolve_suite

    by_dataset = resolve_suite(suite, stores, split)
    return [source for name in names for source in by_dataset[name]]


def synthetic_sources(
    data: PreparedData, eval_split: str, max_tasks: int | None = None, num_train: int | None = None
) -> tuple[list[Source], list[Source]]:
    """(training, evaluation) sources of synthetic stores: the training stores' tasks, and
    the held-out stores' tasks in `eval_split` (the training stores' when none is held
    out: their evaluation split is still unseen data).

    Args:
        data: the synthetic stores (`prepare.prepare_synthetic`).
        eval_split: the split the evaluation sources take.
        max_tasks: at most this many tasks per store (None: all).
        num_train: train on the first this many training stores only (None: all).
    """
    train = task_sources(data.train[:num_train], max_tasks_per_store=max_tasks)
    evaluated = task_sources(data.held_out or data.train[:num_train], split=eval_split,
                             max_tasks_per_store=max_tasks)  # fmt: skip
    return train, evaluated


def select_data(
    args: argparse.Namespace,
    synthetic_data: Callable[[argparse.Namespace], PreparedData] | None = None,
) -> DataSelection:
    """The training and evaluation sources of a job's data flags, preparing what is
    missing: real datasets are downloaded (Hub ids), preprocessed and embedded, synthetic
    databases generated (`--num-dbs`) — the latter last, after every name was checked.

    Args:
        args: the parsed flags (`flags.add_data_arguments`; --storage, --max-tasks,
            --eval-split, --progress from `flags.add_training_arguments`).
        synthetic_data: prepares the synthetic stores of the flags (default:
            `pretrain_args.synthetic_data`).

    Raises:
        ConfigError: no data flag, a bad --leave-out or --tasks, --tasks without
            --datasets, a suite entry for a dataset that is not given.
        DatasetError, StoreError, HubError: a dataset, store or suite entry unusable.
    """
    data, texts = getattr(args, "data", None), getattr(args, "datasets", None) or []
    if data is None and not texts:
        raise ConfigError("no data: give --data (synthetic) and/or --datasets (real)")
    suite = load_tasks_suite(getattr(args, "tasks", None))
    if suite is not None and not texts:
        raise ConfigError("--tasks selects tasks of --datasets; give --datasets, or drop --tasks")
    leave_out, max_tasks = getattr(args, "leave_out", None), args.max_tasks
    real_stores, left_out, train, identity = {}, None, [], {}
    train_names: list[str] = []
    if texts:
        folders = real_datasets(texts)
        if leave_out is not None or data is None:
            train_names, left_out = leave_one_out(list(folders), leave_out)
            left_out = left_out if leave_out is not None or len(folders) > 1 else None
        else:
            train_names = list(folders)
        from plurel_ray.pipeline.prepare import prepare_datasets

        kwargs = {"text_model": args.text_model} if getattr(args, "text_model", None) else {}
        storage = local_folder(args.storage, "--storage")
        real_stores = prepare_datasets(folders, storage, progress=args.progress, **kwargs)
        train = cell_task_sources(real_stores, train_names, "train", suite, max_tasks)
        # As the baseline job named its runs before, so that started runs resume.
        identity |= {"train": train_names, "eval": left_out or train_names[0]}
        identity |= {"tasks": args.tasks} if suite is not None else {}
    synthetic = None
    if data is not None:
        if synthetic_data is None:
            from plurel_ray.pipeline.pretrain_args import synthetic_data
        synthetic = synthetic_data(args)
        synthetic_train, synthetic_eval = synthetic_sources(synthetic, args.eval_split, max_tasks)
        train = synthetic_train + train
        identity["train"] = [s.name for s in synthetic.train] + identity.get("train", [])
    if left_out is not None:
        evaluated = cell_task_sources(real_stores, [left_out], args.eval_split, suite, max_tasks)
    elif synthetic is not None and synthetic.held_out:
        evaluated = synthetic_eval
    else:  # the training stores' evaluation split is still unseen data
        evaluated = synthetic_eval if synthetic is not None else []
        evaluated += cell_task_sources(real_stores, train_names, args.eval_split, suite,
                                       max_tasks)  # fmt: skip
    return DataSelection(train, evaluated, synthetic, real_stores, left_out, identity)
