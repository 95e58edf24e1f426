"""The sizes of a Relational Transformer (docs/model.md) and named presets of them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from plurel_ray.errors import ConfigError

# "auto" picks FlexAttention on CUDA (block-sparse, compiled) and dense masked
# scaled_dot_product_attention elsewhere (FlexAttention on CPU runs unfused).
ATTENTION_IMPLS = ("auto", "dense", "flex")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the model; the defaults are the reference defaults of docs/model.md.

    Args:
        num_blocks: relational blocks (col, feat, nbr attention + SwiGLU FFN each).
        d_model: width of the residual stream.
        num_heads: attention heads; must divide d_model.
        d_ff: hidden width of the SwiGLU feed-forward network.
        d_text: width of the text embeddings (column names and text values).
        attention: "auto", "dense" or "flex" — how masked attention is computed; all give
            the same function, so checkpoints do not depend on it.
    """

    num_blocks: int = 12
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    d_text: int = 384
    attention: str = "auto"

    def __post_init__(self) -> None:
        for name in ("num_blocks", "d_model", "num_heads", "d_ff", "d_text"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"ModelConfig.d_model ({self.d_model}) must be a multiple of num_heads "
                f"({self.num_heads}): each head gets d_model / num_heads channels"
            )
        if self.attention not in ATTENTION_IMPLS:
            raise ConfigError(
                f"ModelConfig.attention must be one of {ATTENTION_IMPLS}, got {self.attention!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from `to_dict()` output; an unknown key raises `ConfigError` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown ModelConfig field(s) {unknown}; known fields are {sorted(known)}"
            )
        return cls(**data)


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Trains on 2 CPU cores in minutes; d_text stays 384 so real MiniLM vocabularies fit.
    "tiny": ModelConfig(num_blocks=2, d_model=64, num_heads=4, d_ff=128),
    "plurel-paper": ModelConfig(),
}


def model_preset(name: str) -> ModelConfig:
    """Return the preset called `name` ("tiny" or "plurel-paper")."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}"
        ) from None
