"""The record of the evaluations during training: `eval.jsonl` and `best/`.

Rank 0 appends, at every evaluated step, one JSON object per (split, task) and one mean
object per split to `eval.jsonl` in the run folder. Its fields:

| field     | rows  | meaning                                                              |
|-----------|-------|----------------------------------------------------------------------|
| step      | all   | optimizer steps taken before the evaluation (0: before any update)   |
| split     | all   | "val" or "test"                                                      |
| task      | all   | the task (`Source.label`); null on the mean row                      |
| store     | task  | the store's folder name                                              |
| task_type | task  | meta.json's task type (a table source: by its target's type)         |
| items     | all   | items scored (the mean row: summed over tasks)                       |
| loss      | all   | mean masked-cell loss of the items (the mean row: mean over tasks)   |
| auroc     | all   | boolean targets (the mean row: mean over binary tasks)               |
| r2, mae   | all   | number targets (the mean row: means over regression tasks)           |
| note      | task  | why a task has no score (no items in the split, not a cell target)   |
| tasks     | mean  | tasks with a score                                                   |
| score     | mean  | mean of the mean AUROC and the mean R² (those that exist)            |
| seconds   | mean  | wall time of the step's evaluation (all splits)                      |

Undefined values (one class only, constant targets, no items) are null. `best/` holds
the weights of the best mean val `score` so far (`model.safetensors`, `config.json`) and
`best.json` ({"step", "score", "split": "val"}); a tie keeps the earlier step. Both travel
inside every checkpoint, so a resumed run continues them: rows after the checkpoint's
step are dropped and the best is read back from `best.json`.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from plurel_ray.model.checkpoint import write_model_files
from plurel_ray.train.metrics_log import keep_through
from plurel_ray.util.atomic_dir import atomic_directory
from plurel_ray.util.run_files import BEST_DIR, BEST_FILE, EVAL_FILE

BEST_SPLIT = "val"
_METRICS = ("auroc", "r2", "mae")


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean(values: list[Any]) -> float | None:
    kept = _finite(values)
    return sum(kept) / len(kept) if kept else None


def mean_row(step: int, split: str, rows: Sequence[Mapping[str, Any]], seconds: float) -> dict:
    """The (step, split) mean row over the task rows of one split (fields: module docstring).

    Args:
        step, split: what the rows evaluated.
        rows: the split's task rows.
        seconds: the evaluation's wall time.
    """
    scored = [r for r in rows if r.get("items")]
    mean = {key: _mean([r.get(key) for r in scored]) for key in ("loss", *_METRICS)}
    parts = [mean[key] for key in ("auroc", "r2") if mean[key] is not None]
    return {"step": step, "split": split, "task": None, "tasks": len(scored),
            "items": sum(r.get("items", 0) for r in rows), **mean,
            "score": sum(parts) / len(parts) if parts else None,
            "seconds": round(seconds, 3)}  # fmt: skip


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class EvalLog:
    """Rank 0's `eval.jsonl` and `best/` in a run folder.

    Args:
        run_dir: the run folder (a resumed run has copied the checkpoint's files there).
        start_step: the step training starts after: later rows are dropped.
    """

    def __init__(self, run_dir: Path, start_step: int = 0) -> None:
        self.path = Path(run_dir) / EVAL_FILE
        self.best_dir = Path(run_dir) / BEST_DIR
        keep_through(self.path, start_step)
        best = self.best_dir / BEST_FILE
        self.best: dict | None = json.loads(best.read_text()) if best.is_file() else None

    def record(
        self,
        step: int,
        rows: Sequence[Mapping[str, Any]],
        seconds: float,
        model: nn.Module,
        extra_config: Mapping[str, Any],
    ) -> list[dict]:
        """Append the task rows of `step` and each split's mean row; keep `model` as
        best/ when the mean val score beats the best so far.

        Args:
            step: the evaluated step.
            rows: task rows (`EvalTask.score`), each with its "split".
            seconds: the evaluation's wall time.
            model: the model evaluated (unwrapped).
            extra_config: what config.json records beside the model (as checkpoints do).

        Returns:
            the rows written, the mean rows after each split's task rows.
        """
        written: list[dict] = []
        for split in dict.fromkeys(r["split"] for r in rows):
            task_rows = [{"step": step, **r} for r in rows if r["split"] == split]
            written += [*task_rows, mean_row(step, split, task_rows, seconds)]
        with self.path.open("a") as f:
            for row in written:
                f.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")
        val = next((r for r in written if r["task"] is None and r["split"] == BEST_SPLIT), None)
        score = None if val is None else val["score"]
        if score is not None and (self.best is None or score > self.best["score"]):
            self.best = {"step": step, "score": score, "split": BEST_SPLIT}
            with atomic_directory(self.best_dir) as tmp:
                write_model_files(tmp, model, model.config, {**extra_config, "step": step})
                (tmp / BEST_FILE).write_text(json.dumps(self.best) + "\n")
        return written

    def copy_into(self, folder: Path) -> None:
        """Put eval.jsonl and best/ into a checkpoint folder, so they travel with it."""
        if self.path.is_file():
            shutil.copy(self.path, folder / EVAL_FILE)
        if self.best_dir.is_dir():
            shutil.copytree(self.best_dir, folder / BEST_DIR, dirs_exist_ok=True)


def restore(checkpoint: Path, run_dir: Path) -> None:
    """Copy a checkpoint's eval.jsonl and best/ into a fresh run folder to resume from.

    Args:
        checkpoint: the checkpoint folder resumed from.
        run_dir: the resumed run's folder (`EvalLog` then drops rows after its step).
    """
    if (checkpoint / EVAL_FILE).is_file():
        shutil.copy(checkpoint / EVAL_FILE, run_dir / EVAL_FILE)
    if (checkpoint / BEST_DIR).is_dir():
        shutil.copytree(checkpoint / BEST_DIR, run_dir / BEST_DIR, dirs_exist_ok=True)
