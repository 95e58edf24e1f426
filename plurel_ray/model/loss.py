"""The pretraining loss on masked cells (docs/model.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from plurel_ray.model.batch import SCALAR_TYPES, SEM_TYPES


def masked_loss(predictions: Mapping[str, Tensor], batch: Mapping[str, Any]) -> Tensor:
    """Huber loss for number and datetime cells, BCE-with-logits for boolean cells
    (target `value > 0`), over the masked cells: averaged per sequence over its masked
    cells, then over the sequences that have any.

    Masked text cells have no decoder and are not counted. Computed in float32; a batch
    without masked cells gives 0 (still differentiable) rather than NaN. There is no
    host-device synchronisation, so the step can stay queued on the GPU.

    Args:
        predictions: the model's output ("number", "datetime", "boolean" → [B, L]).
        batch: the batch the predictions are for.

    Returns:
        the scalar loss.
    """
    sequence_loss, has_cells = sequence_losses(predictions, batch)
    return (sequence_loss * has_cells).sum() / has_cells.sum().clamp(min=1)


def sequence_losses(
    predictions: Mapping[str, Tensor], batch: Mapping[str, Any]
) -> tuple[Tensor, Tensor]:
    """Each sequence's loss over its masked cells (as `masked_loss` averages them), and
    which sequences have any: the per-item losses of an evaluation batch.

    Args:
        predictions: the model's output ("number", "datetime", "boolean" → [B, L]).
        batch: the batch the predictions are for.

    Returns:
        (float32 [B] loss, 0 where a sequence has no masked cell; bool [B] has cells).
    """
    masked = batch["masks"]
    sem_types = batch["sem_types"]
    cell_loss = torch.zeros(masked.shape, dtype=torch.float32, device=masked.device)
    counted = torch.zeros_like(masked)
    for sem_type in SCALAR_TYPES:
        cells = masked & (sem_types == SEM_TYPES.index(sem_type))
        pred = predictions[sem_type].float()
        # Targets of other cells may be anything (NaN too); keep them out of the graph.
        target = torch.where(cells, batch[f"{sem_type}_values"].float(), 0.0)
        if sem_type == "boolean":
            loss = F.binary_cross_entropy_with_logits(pred, (target > 0).float(), reduction="none")
        else:
            loss = F.huber_loss(pred, target, reduction="none")
        cell_loss = torch.where(cells, loss, cell_loss)
        counted = counted | cells
    per_sequence = counted.sum(dim=1)
    return cell_loss.sum(dim=1) / per_sequence.clamp(min=1), per_sequence > 0
