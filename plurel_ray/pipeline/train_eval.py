"""Evaluation during training on Ray: samplers in the rank's actor, scoring in the workers.

Every training rank's `SamplerActor` (`pretrain.py`) also holds one evaluation sampler per
held-out task and split (`EvalTask.sampler`: a fixed seed, the rank's share of the
items), on the stores it localised. At a due step (`train.eval_schedule`) each worker
scores its share of every task (`capped_batches`, `predict_items`) with the unwrapped
model, the per-item predictions are gathered to rank 0 (torch.distributed when there
are several workers), and rank 0 computes each task's row from all of them in the
split's evaluation order — so 1 or N workers give the same rows. `train_loop` writes the
rows to eval.jsonl and keeps best/ (`train.eval_log`); at the end the driver puts both
into the run folder (`publish_eval_files`).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import ray
from torch import nn

from plurel_ray.pipeline.pretrain_eval import EvalTask
from plurel_ray.train.evaluate import ItemPredictions, capped_batches, predict_items
from plurel_ray.util.atomic_dir import atomic_directory
from plurel_ray.util.run_files import BEST_DIR, BEST_FILE, CONFIG_FILE, EVAL_FILE, WEIGHTS_FILE

# Evaluation batch requests a worker keeps in flight to its actor.
EVAL_PREFETCH = 4


class _ActorSampler:
    """One evaluation sampler of a rank's actor, as `capped_batches` reads a sampler,
    with the next batches requested ahead."""

    def __init__(self, actor, task: int, num_items: int, batch_size: int, batches: int) -> None:
        self.actor, self.task, self.num_items, self.batch_size = actor, task, num_items, batch_size
        self._batches = batches
        self._pending: dict[int, ray.ObjectRef] = {}

    def batch(self, index: int) -> dict:
        for ahead in range(index, min(index + EVAL_PREFETCH, self._batches)):
            if ahead not in self._pending:
                self._pending[ahead] = self.actor.eval_batch.remote(self.task, ahead)
        return ray.get(self._pending.pop(index))


def _gather(parts: list, rank: int, world_size: int) -> list[list] | None:
    """Every rank's `parts` on rank 0 (None on the others)."""
    if world_size == 1:
        return [parts]
    import torch.distributed as dist

    gathered: list | None = [None] * world_size if rank == 0 else None
    dist.gather_object(parts, gathered, dst=0)
    return gathered


def make_evaluator(
    actor,
    tasks: Sequence[EvalTask],
    *,
    batch_size: int,
    max_items: int | None,
    precision: str,
    rank: int,
    world_size: int,
) -> Callable[[int, nn.Module], list[dict] | None]:
    """The `on_evaluate` hook of `train_loop` for one worker.

    Args:
        actor: the rank's `SamplerActor`, built with `tasks`.
        tasks: the held-out tasks, one per (task, split), as the actor holds them.
        batch_size: sequences per evaluation batch and rank (the training batch size).
        max_items: score the first N items of each task's evaluation order (None: all).
        precision: the training precision (`resolve_precision`), evaluated under.
        rank, world_size: this worker's place.

    Returns:
        (step, model) → rank 0: one row per task and split; other ranks: None.
    """
    num_items = ray.get(actor.eval_num_items.remote())
    # An evaluation store's vocabulary is not the training stores': one matrix per store,
    # fetched once and kept.
    embeddings: dict[str, np.ndarray] = {}
    for index, task in enumerate(tasks):
        store = str(task.source.store)
        if num_items[index] and store not in embeddings:
            embeddings[store] = np.array(ray.get(actor.eval_embedding_matrix.remote(index)))

    def evaluate(step: int, model: nn.Module) -> list[dict] | None:
        parts: list[ItemPredictions | None] = []
        for index, task in enumerate(tasks):
            if not num_items[index]:
                parts.append(None)
                continue
            limit = num_items[index] if max_items is None else min(max_items, num_items[index])
            sampler = _ActorSampler(actor, index, num_items[index], batch_size,
                                    -(-limit // (batch_size * world_size)))  # fmt: skip
            batches = capped_batches(sampler, max_items, rank, world_size)
            parts.append(predict_items(model, batches, embeddings[str(task.source.store)],
                                       task.sem_type, precision))  # fmt: skip
        gathered = _gather(parts, rank, world_size)
        if gathered is None:
            return None
        return [task.score(ItemPredictions.merged([p[i] for p in gathered])
                           if num_items[i] else None)
                for i, task in enumerate(tasks)]  # fmt: skip

    return evaluate


def publish_eval_files(checkpoint: ray.train.Checkpoint) -> None:
    """Put the final checkpoint's eval.jsonl and best/ into the run folder (its parent).

    Local storage: eval.jsonl is replaced atomically and best/ is built beside and renamed
    into place. Object storage, where nothing renames: each object's upload is atomic,
    and best.json goes last, so a best.json always names the weights beside it.

    Args:
        checkpoint: Ray Train's last checkpoint of the run.
    """
    fs, source = checkpoint.filesystem, checkpoint.path
    run = posixpath.dirname(source.rstrip("/"))
    if fs.type_name == "local":
        src, dst = Path(source), Path(run)
        if (src / EVAL_FILE).is_file():
            tmp = dst / f".{EVAL_FILE}.tmp"
            shutil.copy(src / EVAL_FILE, tmp)
            os.replace(tmp, dst / EVAL_FILE)
        if (src / BEST_DIR).is_dir():
            with atomic_directory(dst / BEST_DIR) as tmp:
                shutil.copytree(src / BEST_DIR, tmp, dirs_exist_ok=True)
        return
    from pyarrow.fs import FileType

    for name in (f"{BEST_DIR}/{WEIGHTS_FILE}", f"{BEST_DIR}/{CONFIG_FILE}",
                 f"{BEST_DIR}/{BEST_FILE}", EVAL_FILE):  # fmt: skip
        path = f"{source}/{name}"
        if fs.get_file_info(path).type == FileType.File:
            fs.create_dir(posixpath.dirname(f"{run}/{name}"), recursive=True)
            fs.copy_file(path, f"{run}/{name}")
