"""Training configuration and recipes: complete, named (model + training) configs."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from plurel_ray.errors import ConfigError
from plurel_ray.model.config import ModelConfig, model_preset

# "auto": bf16-autocast on CUDA (float32 master weights), fp32 elsewhere.
# "bf16-pure": parameters and optimizer state in bfloat16, as the reference trains.
PRECISIONS = ("auto", "bf16-autocast", "bf16-pure", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the optimiser defaults are the reference defaults (docs/model.md).

    Args:
        steps: optimizer steps; the one-cycle schedule spans them.
        batch_size: sequences per step and rank.
        ctx_len: cells per sequence.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (on every trainable parameter, as the reference).
        betas: AdamW betas.
        warmup_frac: share of `steps` spent warming the learning rate up linearly from
            lr/25; the rest anneals it linearly to lr/25e4 (torch's OneCycleLR shape).
        grad_clip: clip the global gradient norm to this (0 disables clipping).
        precision: one of PRECISIONS.
        compile: torch.compile the forward and loss.
        checkpoint_every: save a checkpoint every this many steps and at the end (0: never).
        seed: seed of the model's initial weights.
        device: "auto" (CUDA if available), "cpu", "cuda", "cuda:1", …
    """

    steps: int = 30_000
    batch_size: int = 128
    ctx_len: int = 1024
    lr: float = 5e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_frac: float = 0.2
    grad_clip: float = 1.0
    precision: str = "auto"
    compile: bool = False
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "ctx_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.checkpoint_every < 0:
            raise ConfigError("TrainConfig.checkpoint_every must be ≥ 0 (0 disables checkpoints)")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("TrainConfig.lr must be > 0, weight_decay and grad_clip ≥ 0")
        if not 0 <= self.warmup_frac < 1:
            raise ConfigError(f"TrainConfig.warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Recipe:
    """A complete run configuration: the model and how to train it."""

    name: str
    model: ModelConfig
    train: TrainConfig


# 4B tokens at 128 × 1024 cells per step (the published checkpoint) is ~30.5k steps.
RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(
        "tiny",
        model_preset("tiny"),
        TrainConfig(steps=2000, batch_size=8, ctx_len=256, checkpoint_every=500),
    ),
    "plurel-paper": Recipe(
        "plurel-paper",
        model_preset("plurel-paper"),
        TrainConfig(steps=30_000, batch_size=128, ctx_len=1024, compile=True),
    ),
}


def recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe `name` with fields of its model or training config replaced.

    Example: `recipe("tiny", steps=100, d_model=32)`.

    Raises:
        ConfigError: unknown recipe or field (with the closest field names).
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    base = RECIPES[name]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - model_fields - train_fields)
    if unknown:
        close = {k: difflib.get_close_matches(k, model_fields | train_fields) for k in unknown}
        raise ConfigError(f"unknown recipe field(s) {unknown}; did you mean {close}?")
    model = {k: v for k, v in overrides.items() if k in model_fields}
    train = {k: v for k, v in overrides.items() if k in train_fields}
    return Recipe(
        name,
        dataclasses.replace(base.model, **model),
        dataclasses.replace(base.train, **train),
    )
