"""Evaluate a checkpoint on held-out tasks, one task at a time, and what the evaluation
during training shares with it: the tasks, their samplers and their rows.

    rows = evaluate_run("runs/tiny-x/step_00000020", held_out_sources, "val", 4, 64)
    # runs/tiny-x/eval_val.csv: store, task, task_type, split, items, loss, auroc, r2, mae, note

Each task of a split gets its own sampler (a fixed seed), whose epoch-0 shuffle is the
split's evaluation order: every item is scored once, or with `max_items` exactly the
first N of that order, so every checkpoint of a run, and every number of ranks, sees the
very same items in the very same contexts.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plurel_ray.errors import EmptySourceError
from plurel_ray.pipeline.pretrain_data import source_target_sem_type
from plurel_ray.store.sampler import DEFAULT_MAX_BFS_WIDTH, Sampler, Source, read_meta
from plurel_ray.train.evaluate import ItemPredictions, item_metrics

EVAL_SEED = 0
EVAL_COLUMNS = (
    "store", "task", "task_type", "split", "items", "loss", "auroc", "r2", "mae", "note"
)  # fmt: skip
# Boolean target cells are scored by AUROC, number target cells by R² and MAE; real
# datasets often store a binary label as a 0/1 number, which is then scored by R².
SCORED_SEM_TYPES = {"boolean": "binary_classification", "number": "regression"}
_SHOWN_ROWS = 20


@dataclass(frozen=True)
class EvalTask:
    """One held-out task in one split, as its evaluation rows name it.

    Attributes:
        source: the sampler source, its split the evaluated one.
        store: the store's folder name.
        task: `Source.label`: the task, or "<table>-<target>" for a table source.
        task_type: the task's type in meta.json (a table source: by its target's type).
        sem_type: the target cell column's semantic type (None: not a cell column).
        note: why it cannot be scored (its target is not a number or boolean cell, or
            the task has no such split); None when it can.
    """

    source: Source
    store: str
    task: str
    task_type: str
    sem_type: str | None
    note: str | None = None

    @property
    def scored(self) -> bool:
        """Whether the model can be scored on it (`note` says why not)."""
        return self.note is None

    def row(self) -> dict:
        """The identifying part of its rows: store, task, task_type, split."""
        return {"store": self.store, "task": self.task, "task_type": self.task_type,
                "split": self.source.split}  # fmt: skip

    def sampler(self, batch_size: int, ctx_len: int, *, rank: int = 0, world_size: int = 1,
                max_bfs_width: int = DEFAULT_MAX_BFS_WIDTH) -> Sampler | None:  # fmt: skip
        """Its evaluation sampler (the fixed EVAL_SEED); None when the split has no items.

        Args:
            batch_size, ctx_len, max_bfs_width: as the model was trained.
            rank, world_size: this rank's share of the items.
        """
        try:
            return Sampler([self.source], batch_size=batch_size, ctx_len=ctx_len,
                           max_bfs_width=max_bfs_width, seed=EVAL_SEED, rank=rank,
                           world_size=world_size)  # fmt: skip
        except EmptySourceError:
            return None

    def score(self, items: ItemPredictions | None) -> dict:
        """Its row: items and loss, AUROC or R² and MAE, or a note saying why none.

        Args:
            items: the predictions for all its items (merged over ranks); None when the
                split has no items.
        """
        row = self.row()
        if self.note is not None:
            return {**row, "items": 0, "note": self.note}
        if items is None:
            return {**row, "items": 0, "note": f"no items in the {self.source.split} split"}
        row.update(item_metrics(items, self.sem_type))
        if self.task_type == "binary_classification" and self.sem_type == "number":
            row["note"] = "0/1 target stored as numbers: R², not AUROC"
        return row


def eval_tasks(sources: Sequence[Source], split: str) -> list[EvalTask]:
    """The held-out `sources` as tasks of `split` (each source's split replaced).

    Args:
        sources: task sources or table sources (derived autocomplete tasks).
        split: "val" or "test".
    """
    tasks = []
    for source in sources:
        source = dataclasses.replace(source, split=split)
        sem_type = source_target_sem_type(source)
        task_type = SCORED_SEM_TYPES.get(sem_type, "unknown")
        note = None
        if sem_type not in SCORED_SEM_TYPES:
            note = f"target is a {sem_type} column, not a number or boolean cell"
        if source.task is not None:
            listed = {t["name"]: t for t in read_meta(source.store).get("tasks", [])}
            task = listed.get(source.task, {})
            task_type = task.get("task_type", task_type)
            if split not in task.get("tables", {}):
                note = f"the task has no {split} split"
        tasks.append(EvalTask(source, Path(source.store).name, source.label, task_type,
                              sem_type, note))  # fmt: skip
    return tasks


def evaluate_run(
    checkpoint_dir: str | os.PathLike,
    sources: Sequence[Source],
    split: str,
    batch_size: int,
    ctx_len: int,
    *,
    max_items: int | None = None,
    out_dir: str | os.PathLike | None = None,
    allow_encoder_mismatch: bool = False,
) -> list[dict]:
    """Score a checkpoint on the held-out `sources` in `split`, writing `eval_<split>.csv`.

    Args:
        checkpoint_dir: a checkpoint folder (or a reference `.pt` state dict).
        sources: the held-out tasks (their split is replaced by `split`).
        split: "val" or "test": autocomplete tasks take the split's rows, forecast tasks
            their split's task table.
        batch_size, ctx_len: the sampler's, usually those of training.
        max_items: score the first this many items of each task's evaluation order;
            None scores every item of the split.
        out_dir: where `eval_<split>.csv` goes; default the run folder (the checkpoint
            folder's parent).
        allow_encoder_mismatch: evaluate stores embedded by another text encoder than
            the checkpoint's (refused by default).

    Returns:
        one row per task: {store, task, task_type, split, items, loss, auroc or r2 and mae};
        a task without items in `split` gets items 0 and a note instead of scores.
    """
    from tqdm import tqdm

    from plurel_ray.model.checkpoint import load_checkpoint
    from plurel_ray.train.evaluate import capped_batches, predict_items
    from plurel_ray.train.expectations import check_text_encoder, warn_context_rules
    from plurel_ray.train.precision import resolve_device, resolve_precision

    stores = list(dict.fromkeys(str(s.store) for s in sources))
    check_text_encoder(checkpoint_dir, stores, allow_mismatch=allow_encoder_mismatch)
    warn_context_rules(checkpoint_dir, stores)
    device = resolve_device("auto")
    model = load_checkpoint(checkpoint_dir).model.to(device).eval()
    precision = resolve_precision("auto", device)
    rows = []
    # On a terminal only, like the generation and training bars.
    for task in tqdm(eval_tasks(sources, split), desc="evaluate", unit="task", file=sys.stderr,
                     disable=None):  # fmt: skip
        sampler = task.sampler(batch_size, ctx_len) if task.scored else None
        items = None
        if sampler is not None:
            items = predict_items(model, capped_batches(sampler, max_items),
                                  sampler.embedding_matrix(), task.sem_type, precision)  # fmt: skip
        rows.append(task.score(items))
    folder = Path(out_dir) if out_dir is not None else Path(checkpoint_dir).resolve().parent
    write_eval_csv(rows, folder / f"eval_{split}.csv")
    return rows


def logged_rows(eval_rows: Sequence[dict], split: str) -> list[dict]:
    """The task rows of `split` at the last step of an `eval.jsonl` (`train.eval_log`),
    as `evaluate_run` returns them: the workers built them with the same `EvalTask.score`
    on the same items, and JSON wrote their undefined scores (NaN) as null.

    Args:
        eval_rows: the records of a run's eval.jsonl.
        split: "val" or "test".
    """
    last = max(row["step"] for row in eval_rows)
    return [
        {key: math.nan if value is None else value for key, value in row.items() if key != "step"}
        for row in eval_rows
        if row["step"] == last and row["split"] == split and row.get("task") is not None
    ]


def write_eval_csv(rows: Sequence[dict], path: Path) -> Path:
    """Write `rows` with the columns EVAL_COLUMNS (absent values left empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _summary(rows: Sequence[dict]) -> list[dict]:
    """One row per store: tasks, items, mean loss, AUROC, R² and MAE (NaN-free means)."""
    by_store: dict[str, list[dict]] = {}
    for row in rows:
        by_store.setdefault(row["store"], []).append(row)
    return [
        {
            "store": f"{store} ({len(group)} tasks)",
            "task": "(mean)",
            "items": sum(r["items"] for r in group),
            "loss": _mean([r["loss"] for r in group if "loss" in r]),
            "auroc": _mean([r["auroc"] for r in group if "auroc" in r]),
            "r2": _mean([r["r2"] for r in group if "r2" in r]),
            "mae": _mean([r["mae"] for r in group if "mae" in r]),
        }
        for store, group in by_store.items()
    ]


def format_table(rows: Sequence[dict]) -> list[str]:
    """A short console table: one line per task, or per store when there are many tasks."""
    shown = rows if len(rows) <= _SHOWN_ROWS else _summary(rows)

    def cell(row: dict, key: str) -> str:
        value = row.get(key, "")
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    table = [["store", "task", "items", "loss", "auroc", "r2", "mae", "note"]]
    table += [[cell(row, key) for key in table[0]] for row in shown]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            for line in table]  # fmt: skip
