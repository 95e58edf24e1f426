"""Evaluate a pretraining checkpoint on held-out tasks, one task at a time.

    rows = evaluate_run("runs/tiny-x/step_00000020", held_out_stores, "val", 8, 4, 64)
    # runs/tiny-x/eval_val.csv: store, task, task_type, split, items, loss, auroc, r2, mae, note

Each task gets its own sampler (one rank, a fixed seed), so its score is computed over
that task's items alone and every checkpoint of a run sees the very same batches.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from plurel_ray.errors import EmptySourceError
from plurel_ray.pipeline.pretrain_data import target_sem_type, task_sources
from plurel_ray.store.sampler import Sampler, read_meta

EVAL_SEED = 0
EVAL_COLUMNS = (
    "store", "task", "task_type", "split", "items", "loss", "auroc", "r2", "mae", "note"
)  # fmt: skip
# `evaluate` scores boolean target cells by AUROC and number target cells by R²; real
# datasets often store a binary label as a 0/1 number, which is then scored by R².
_EVAL_TASK = {"boolean": "classification", "number": "regression"}
_SHOWN_ROWS = 20


def evaluate_run(
    checkpoint_dir: str | os.PathLike,
    stores: Sequence[str | os.PathLike],
    split: str,
    num_batches: int,
    batch_size: int,
    ctx_len: int,
    *,
    max_tasks_per_store: int | None = None,
    out_dir: str | os.PathLike | None = None,
    allow_encoder_mismatch: bool = False,
) -> list[dict]:
    """Score a checkpoint on every cell-prediction task of `stores` in `split`.

    Args:
        checkpoint_dir: a checkpoint folder (or a reference `.pt` state dict).
        stores: the node stores whose tasks to evaluate.
        split: "val" or "test": autocomplete tasks take the split's rows, forecast tasks
            their split's task table.
        num_batches: batches per task at most (fewer when the task has fewer items).
        batch_size, ctx_len: the sampler's, usually those of training.
        max_tasks_per_store: as in `task_sources`; None evaluates every task.
        out_dir: where `eval_<split>.csv` goes; default the run folder (the checkpoint
            folder's parent).
        allow_encoder_mismatch: evaluate stores embedded by another text encoder than
            the checkpoint's (refused by default).

    Returns:
        one row per task: {store, task, task_type, split, items, loss, auroc or r2 and mae}; a
        task without items in `split` gets items 0 and a note instead of scores.
    """
    from tqdm import tqdm

    from plurel_ray.model.checkpoint import load_checkpoint
    from plurel_ray.train.evaluate import evaluate
    from plurel_ray.train.expectations import check_text_encoder, warn_context_rules
    from plurel_ray.train.precision import resolve_device, resolve_precision

    check_text_encoder(checkpoint_dir, stores, allow_mismatch=allow_encoder_mismatch)
    warn_context_rules(checkpoint_dir, stores)
    device = resolve_device("auto")
    model = load_checkpoint(checkpoint_dir).model.to(device).eval()
    precision = resolve_precision("auto", device)
    rows = []
    sources = task_sources(stores, split=split, max_tasks_per_store=max_tasks_per_store)
    # On a terminal only, like the generation and training bars.
    for source in tqdm(sources, desc="evaluate", unit="task", file=sys.stderr, disable=None):
        meta = read_meta(source.store)
        task = next(t for t in meta["tasks"] if t["name"] == source.task)
        row = {"store": Path(source.store).name, "task": task["name"],
               "task_type": task["task_type"], "split": split}  # fmt: skip
        try:
            sampler = Sampler([source], batch_size=batch_size, ctx_len=ctx_len,
                              seed=EVAL_SEED)  # fmt: skip
        except EmptySourceError:
            rows.append({**row, "items": 0, "note": f"no items in the {split} split"})
            continue
        batches = (sampler.batch(i) for i in range(min(num_batches, sampler.batches_per_epoch)))
        kind = _EVAL_TASK[target_sem_type(meta, task)]
        text_emb = sampler.embedding_matrix()
        result = evaluate(model, batches, text_emb, task=kind, precision=precision)
        # Binary tasks score AUROC; regression R² and MAE (RelBench's NMAE: targets are
        # standardised by the training rows' mean and std).
        metrics = ("auroc",) if "auroc" in result else ("r2", "mae")
        row.update(items=result["items"], loss=result["loss"], **{m: result[m] for m in metrics})
        metric = metrics[0]
        if task["task_type"] == "binary_classification" and metric == "r2":
            row["note"] = "0/1 target stored as numbers: R², not AUROC"
        rows.append(row)
    folder = Path(out_dir) if out_dir is not None else Path(checkpoint_dir).resolve().parent
    write_eval_csv(rows, folder / f"eval_{split}.csv")
    return rows


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
