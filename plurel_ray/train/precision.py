"""Device and numeric precision of a run."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def resolve_device(name: str) -> torch.device:
    """The device called `name`; "auto" is CUDA if there is a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision to use; "auto" is "bf16-autocast" on CUDA, else "fp32" (bfloat16
    is slower than float32 on most CPUs)."""
    if precision == "auto":
        return "bf16-autocast" if device.type == "cuda" else "fp32"
    return precision


def prepare_model(model: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """Move `model` to `device`, in bfloat16 for "bf16-pure", else float32."""
    dtype = torch.bfloat16 if precision == "bf16-pure" else torch.float32
    return model.to(device=device, dtype=dtype)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for "bf16-autocast"; a no-op otherwise."""
    if precision == "bf16-autocast":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
