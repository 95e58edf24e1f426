"""Evaluation: masked-cell loss, and AUROC / R² / MAE on the target cells of item batches.

An item batch holds one item per sequence, its target cell marked by `is_targets` (and
masked). Classification targets are boolean cells scored by the boolean logit;
regression targets are number cells scored by the number prediction (docs/model.md: AUROC
for classification, R² for regression). The metrics are RelBench's (AUROC) and
scikit-learn's (R², MAE), the functions RelBench's own evaluator calls, so scores compare
with RelBench's; this module only decides what an undefined score is (NaN).

Held-out tasks are scored item by item: `capped_batches` gives a rank's batches of an
evaluation sampler (every item, or exactly the first N of its fixed order),
`predict_items` the prediction, label and loss of each item with its place in that order
(what trivial baselines are scored on too), `ItemPredictions.merged` joins the ranks'
shares in that order and `item_metrics` scores them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plurel_ray.model.batch import SEM_TYPES, batch_to_tensors, move_batch
from plurel_ray.model.checkpoint import unwrap_model
from plurel_ray.model.loss import masked_loss, sequence_losses
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
        task: None (loss only), "classification" (AUROC) or "regression" (R² and MAE).
        precision: "bf16-autocast" to evaluate as trained with autocast, else as the
            parameters are.

    Returns:
        {"loss", "sequences"} plus, for a task, "items" and "auroc" (classification)
        or "r2" and "mae" (regression).
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
            result["mae"] = mean_absolute_error(score, label)
    return result


@dataclass(frozen=True)
class ItemPredictions:
    """What a model said about each evaluated item, in the split's evaluation order.

    Attributes:
        positions: int64 [N], each item's place in the split's fixed evaluation shuffle
            (the global slot of the evaluation sampler), ascending once `merged`.
        predictions: float64 [N], the boolean logit or the standardised number predicted
            for the item's target cell.
        labels: float64 [N], the target cell's true value (a boolean is true when > 0).
        losses: float64 [N], the masked-cell loss of the item's sequence.
    """

    positions: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    losses: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)

    @staticmethod
    def merged(parts: Sequence[ItemPredictions]) -> ItemPredictions:
        """The items of `parts` (e.g. one per rank) together, ordered by position, so the
        metrics of any sharding are summed in one order."""
        fields = ("positions", "predictions", "labels", "losses")
        joined = {f: np.concatenate([getattr(p, f) for p in parts]) if parts else
                  np.zeros(0, dtype=np.int64 if f == "positions" else np.float64)
                  for f in fields}  # fmt: skip
        order = np.argsort(joined["positions"], kind="stable")
        return ItemPredictions(**{f: v[order] for f, v in joined.items()})


def capped_batches(
    sampler: Any, max_items: int | None, rank: int = 0, world_size: int = 1
) -> Iterator[tuple[int, dict]]:
    """This rank's batches of epoch 0 of an evaluation sampler, cut at `max_items`.

    The sampler's epoch-0 shuffle is the split's evaluation order: global batch k holds
    slots `[k·B·W, (k+1)·B·W)`, rank r the slots from `k·B·W + r·B`. With a cap, exactly
    the first `max_items` slots are scored, whatever the number of ranks: a batch
    reaching past the cap is cut, and batches wholly past it are not built.

    Args:
        sampler: a `store.sampler.Sampler` built with this `rank` and `world_size`.
        max_items: score the first this many items of the shuffle; None: every item.
        rank, world_size: as the sampler was built.

    Yields:
        (slot of the batch's first sequence, the batch cut to the items it keeps).
    """
    limit = sampler.num_items if max_items is None else min(max_items, sampler.num_items)
    size = sampler.batch_size
    for index in range(-(-limit // (size * world_size))):
        first = index * size * world_size + rank * size
        keep = min(limit - first, size)
        if keep <= 0:
            continue
        batch = sampler.batch(index)
        if keep < size:
            batch = {key: value if key == "true_batch_size" else value[:keep]
                     for key, value in batch.items()}  # fmt: skip
            batch["true_batch_size"] = min(int(batch["true_batch_size"]), keep)
        yield first, batch


@torch.inference_mode()
def predict_items(
    model: nn.Module,
    batches: Iterable[tuple[int, dict]],
    text_emb: np.ndarray | Tensor | None,
    sem_type: str,
    precision: str = "fp32",
) -> ItemPredictions:
    """The model's prediction, the label and the loss of every item of item batches
    (one item per sequence, its target cell marked by `is_targets`).

    Args:
        model: the model, on its device (put in eval mode by the caller).
        batches: (slot of the first sequence, numpy batch) pairs, as `capped_batches`.
        text_emb: [V, d_text] vocabulary embeddings for compact batches.
        sem_type: the target cells' semantic type, "boolean" or "number".
        precision: "bf16-autocast" to evaluate as trained with autocast, else as the
            parameters are.

    Returns:
        the items in the order of `batches`; sequences whose target cell is not of
        `sem_type` are left out.
    """
    if sem_type not in TASKS.values():
        raise ValueError(f"sem_type must be one of {sorted(TASKS.values())}, got {sem_type!r}")
    device = next(unwrap_model(model).parameters()).device
    text = None if text_emb is None else torch.as_tensor(text_emb).to(device)
    type_id = SEM_TYPES.index(sem_type)
    parts: dict[str, list[np.ndarray]] = {"positions": [], "predictions": [], "labels": [],
                                          "losses": []}  # fmt: skip
    for first, numpy_batch in batches:
        batch = move_batch(batch_to_tensors(numpy_batch), device)
        with autocast(device, precision):
            predictions = model(batch, text)
        losses, _ = sequence_losses(predictions, batch)
        targets = batch["is_targets"] & (batch["sem_types"] == type_id)
        has_target = targets.any(dim=1)
        column = targets.float().argmax(dim=1, keepdim=True)  # the one target cell
        pick = {
            "predictions": predictions[sem_type].float().gather(1, column).squeeze(1),
            "labels": batch[f"{sem_type}_values"].float().gather(1, column).squeeze(1),
            "losses": losses,
        }
        for key, values in pick.items():
            parts[key].append(values[has_target].double().cpu().numpy())
        rows = torch.arange(len(has_target), device=device)[has_target]
        parts["positions"].append(first + rows.cpu().numpy().astype(np.int64))
    if not parts["positions"]:
        return ItemPredictions.merged([])
    return ItemPredictions(**{key: np.concatenate(values) for key, values in parts.items()})


def item_metrics(items: ItemPredictions, sem_type: str) -> dict[str, Any]:
    """Items, mean loss and the task's metric over `items`: AUROC for a boolean target,
    R² and MAE for a number target (NaN where undefined).

    Args:
        items: `predict_items` output (of one rank or `merged` over all).
        sem_type: "boolean" or "number".
    """
    loss = float(items.losses.mean()) if len(items) else math.nan
    result: dict[str, Any] = {"items": len(items), "loss": loss}
    if sem_type == "boolean":
        result["auroc"] = auroc(items.predictions, items.labels > 0)
    else:
        result["r2"] = r2_score(items.predictions, items.labels)
        result["mae"] = mean_absolute_error(items.predictions, items.labels)
    return result


def _undefined(scores: np.ndarray, targets: np.ndarray) -> bool:
    """No score exists: no items, or a prediction that is not a number (a diverged model;
    scikit-learn would raise on it mid-evaluation)."""
    return len(targets) == 0 or not np.isfinite(scores).all()


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, RelBench's `roc_auc` (scikit-learn's `roc_auc_score`: tied
    scores count one half).

    Args:
        scores: one score per item, higher meaning more likely positive.
        labels: one boolean label per item.

    Returns:
        the AUROC; NaN when the labels hold only one class (AUROC is undefined; RelBench
        raises), when there are no items or when a score is not finite.
    """
    from relbench.metrics import roc_auc  # relbench and scikit-learn take ~1 s to import

    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if _undefined(scores, labels) or labels.all() or not labels.any():
        return math.nan
    return float(roc_auc(labels, scores))


def r2_score(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot, scikit-learn's `r2_score`.

    Args:
        predictions: one prediction per item.
        targets: one target per item.

    Returns:
        R²; NaN when the targets are all equal (SS_tot = 0, where scikit-learn would report
        0 or 1 instead), absent, or a prediction is not finite.
    """
    from sklearn.metrics import r2_score as sklearn_r2

    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    if _undefined(predictions, targets) or np.ptp(targets) == 0.0:
        return math.nan
    return float(sklearn_r2(targets, predictions))


def mean_absolute_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean absolute error, scikit-learn's `mean_absolute_error`.

    Number cells are standardised by the mean and sample standard deviation of the training
    rows (docs/contexts.md), so on them this is RelBench's regression metric, NMAE (MAE over
    the train split's standard deviation).

    Args:
        predictions: one prediction per item.
        targets: one target per item.

    Returns:
        the MAE; NaN when there are no items or a prediction is not finite.
    """
    from sklearn.metrics import mean_absolute_error as sklearn_mae

    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    if _undefined(predictions, targets):
        return math.nan
    return float(sklearn_mae(targets, predictions))
