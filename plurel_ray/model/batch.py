"""The context batch (docs/contexts.md) as the model consumes it: names, checks, tensors, device.

A batch is B sequences × L cells. The sampler sends numpy arrays; `batch_to_tensors` turns
them into torch tensors without copying. Text enters in one of two forms:
- compact (default): vocabulary ids only (`col_name_idxs`, `class_value_idxs`); the model
  gathers rows of one embedding matrix `text_emb` [V, d_text] on the device;
- full: `col_name_values` and `text_values` [B, L, d_text] as bfloat16 bit patterns in
  uint16 arrays (numpy has no bfloat16), viewed back as bfloat16 here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from plurel_ray.errors import BatchError

# Codes of `sem_types`; the index of a name is its code.
SEM_TYPES = ("number", "text", "datetime", "boolean")
# Semantic types with a scalar value array `<type>_values` and a decoder.
SCALAR_TYPES = ("number", "datetime", "boolean")

# Per-cell fields [B, L] the model, the loss and the metrics read.
CELL_FIELDS = (
    "node_idxs",
    "table_name_idxs",
    "col_name_idxs",
    "class_value_idxs",
    "sem_types",
    "number_values",
    "datetime_values",
    "boolean_values",
    "masks",
    "is_targets",
    "is_padding",
)
FULL_FORM_FIELDS = ("col_name_values", "text_values")


def batch_to_tensors(batch: Mapping[str, Any], vocab_size: int | None = None) -> dict[str, Any]:
    """Wrap the sampler's numpy arrays as CPU tensors (no copy) and check their shapes.

    bfloat16 bit patterns (uint16) become bfloat16 tensors. Rows at or past
    `true_batch_size` are fillers of a short last batch: their `masks` and `is_targets`
    are cleared (on a copy) so they count in neither the loss nor the metrics.

    Args:
        batch: field name → numpy array or tensor, plus the int `true_batch_size`.
        vocab_size: rows of text_emb, to check the text ids of a compact batch (see
            `check_batch`).

    Returns:
        field name → tensor, `true_batch_size` kept as an int.
    """
    out: dict[str, Any] = {}
    for name, value in batch.items():
        if name == "true_batch_size":
            out[name] = int(value)
            continue
        tensor = value if isinstance(value, torch.Tensor) else _wrap(value)
        if name in FULL_FORM_FIELDS and tensor.dtype in (torch.uint16, torch.int16):
            tensor = tensor.view(torch.bfloat16)
        out[name] = tensor
    check_batch(out, vocab_size)
    true_size = out.get("true_batch_size")
    if true_size is not None and true_size < out["masks"].shape[0]:
        for name in ("masks", "is_targets"):
            out[name] = out[name].clone()
            out[name][true_size:] = False
    return out


def _wrap(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing `array`'s memory. Batches that crossed Ray's object store are
    read-only; torch warns about every such array, but nothing here writes to them (the
    only in-place edit, of `masks`/`is_targets`, works on a clone), so the warning is noise."""
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def check_batch(batch: Mapping[str, Any], vocab_size: int | None = None) -> None:
    """Raise `BatchError` if a field is missing or misshaped, or an id is out of range.

    Args:
        batch: field name → tensor.
        vocab_size: rows of `text_emb`; when given (compact form), the text ids of
            non-padding cells must lie in [0, vocab_size).
    """
    missing = [name for name in (*CELL_FIELDS, "f2p_nbr_idxs") if name not in batch]
    if missing:
        raise BatchError(
            f"batch lacks field(s) {missing}; the sampler must send every field of docs/contexts.md"
        )
    shape = tuple(batch["node_idxs"].shape)
    if len(shape) != 2:
        raise BatchError(f"node_idxs must be [B, L], got shape {list(shape)}")
    for name in CELL_FIELDS:
        if tuple(batch[name].shape) != shape:
            raise BatchError(
                f"{name} has shape {list(batch[name].shape)}, expected [B, L] = {list(shape)}"
            )
    f2p = batch["f2p_nbr_idxs"]
    if f2p.dim() != 3 or tuple(f2p.shape[:2]) != shape:
        raise BatchError(f"f2p_nbr_idxs has shape {list(f2p.shape)}, expected [B, L, F]")
    present = [name for name in FULL_FORM_FIELDS if name in batch]
    if present and len(present) != len(FULL_FORM_FIELDS):
        raise BatchError(f"full-form batch has {present} but needs both {list(FULL_FORM_FIELDS)}")
    if vocab_size is not None and not present:
        real = ~batch["is_padding"]
        text = real & (batch["sem_types"] == SEM_TYPES.index("text"))
        for name, cells in (("col_name_idxs", real), ("class_value_idxs", text)):
            ids = batch[name][cells]
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
                raise BatchError(
                    f"{name} holds ids in [{int(ids.min())}, {int(ids.max())}] but text_emb "
                    f"has {vocab_size} rows; pass the vocabulary embeddings of this store"
                )


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Copy every tensor of `batch` to `device` (asynchronously from pinned memory)."""
    return {
        name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for name, value in batch.items()
    }
