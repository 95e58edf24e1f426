"""Evaluation: masked-cell loss, and AUROC / R² on the target cells of item batches.

An item batch holds one item per sequence, its target cell marked by `is_targets` (and
masked). Classification targets are boolean cells scored by the boolean logit;
regression targets are number cells scored by the number prediction (SPEC §8: AUROC for
classification, R² for regression).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plurel_ray.model.batch import SEM_TYPES, batch_to_tensors, move_batch
from plurel_ray.model.checkpoint import unwrap_model
from plurel_ray.model.loss import masked_loss
from plurel_ray.train.precision import autocast

TASKS = {"classification": "boolean", "regression": "number"}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict],
    text_emb: np.ndarray | Tensor | None,
    task: str | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Masked-cell loss over `batches` and, for a task, its metric over the target cells.

    Args:
        model: the model, on its device.
        batches: numpy batches (compact or full form).
        text_emb: [V, d_text] vocabulary embeddings for compact batches.
        task: None (loss only), "classification" (AUROC) or "regression" (R²).
        precision: "bf16-autocast" to evaluate as trained with autocast, else as the
            parameters are.

    Returns:
        {"loss", "sequences"} plus, for a task, {"auroc" or "r2", "items"}.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)} or None, got {task!r}")
    raw = unwrap_model(model)
    device = next(raw.parameters()).device
    text = None if text_emb is None else torch.as_tensor(text_emb).to(device)
    loss_sum, sequences = 0.0, 0
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for numpy_batch in batches:
        batch = move_batch(batch_to_tensors(numpy_batch), device)
        with autocast(device, precision):
            predictions = model(batch, text)
        # The batch loss averages over sequences with masked cells; weight it by them.
        with_masks = int(batch["masks"].any(dim=1).sum())
        loss_sum += float(masked_loss(predictions, batch)) * with_masks
        sequences += with_masks
        if task is not None:
            sem_type = TASKS[task]
            targets = batch["is_targets"] & (batch["sem_types"] == SEM_TYPES.index(sem_type))
            scores.append(predictions[sem_type][targets].float().cpu().numpy())
            labels.append(batch[f"{sem_type}_values"][targets].float().cpu().numpy())
    result: dict[str, Any] = {
        "loss": loss_sum / sequences if sequences else math.nan,
        "sequences": sequences,
    }
    if task is not None:
        score = np.concatenate(scores) if scores else np.zeros(0)
        label = np.concatenate(labels) if labels else np.zeros(0)
        result["items"] = len(score)
        if task == "classification":
            result["auroc"] = auroc(score, label > 0)
        else:
            result["r2"] = r2_score(score, label)
    return result


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    mean_rank = last - (counts - 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[inverse]
    return ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) statistic; tied scores
    count one half. NaN when the labels hold only one class (AUROC is undefined)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    rank_sum = average_ranks(scores)[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def r2_score(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot; NaN when the targets are all
    equal (SS_tot = 0) or absent."""
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    total = float(((targets - targets.mean()) ** 2).sum()) if len(targets) else 0.0
    if total == 0.0:
        return math.nan
    return 1.0 - float(((targets - predictions) ** 2).sum()) / total
