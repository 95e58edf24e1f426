"""AdamW and the one-cycle learning-rate schedule of docs/model.md."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from plurel_ray.train.config import TrainConfig

# torch.optim.lr_scheduler.OneCycleLR's defaults: start at lr/25, end at lr/25/1e4.
START_DIV = 25.0
FINAL_DIV = 1e4


def one_cycle(steps: int, warmup_frac: float) -> Callable[[int], float]:
    """The factor on the peak lr at each step: linear warm-up from 1/25 to 1 over the
    first `warmup_frac` of the steps, then linear anneal to 1/25e4 at the last step.

    The learning-rate curve of OneCycleLR(anneal_strategy="linear", pct_start=warmup_frac);
    unlike it, the momentum (Adam's beta1) is not cycled: the reference keeps fixed betas.
    """
    start = 1.0 / START_DIV
    final = start / FINAL_DIV
    peak_step = warmup_frac * steps - 1
    last_step = steps - 1

    def factor(step: int) -> float:
        if peak_step > 0 and step <= peak_step:
            return start + (1.0 - start) * step / peak_step
        done = min(1.0, (step - peak_step) / (last_step - peak_step))
        return 1.0 + (final - 1.0) * done

    return factor


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (fused kernel on CUDA)."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay,
        fused=device.type == "cuda",
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(cfg.steps, cfg.warmup_frac))
