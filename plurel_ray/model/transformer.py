"""The Relational Transformer (docs/model.md): cell embeddings, relational blocks, decoders.

Per cell the input is RMSNorm(Linear(column-name embedding)) plus, for the cell's semantic
type, RMSNorm(Linear_type(value)) when the value is visible or the type's learned mask
vector when the cell is masked; padding cells get nothing. The output is RMSNorm then a
Linear(d, 1) decoder per scalar type (number, datetime, boolean).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from plurel_ray.errors import BatchError
from plurel_ray.model.batch import SCALAR_TYPES, SEM_TYPES
from plurel_ray.model.config import ModelConfig
from plurel_ray.model.layers import RelationalBlock
from plurel_ray.model.masks import AttentionMasks, dense_masks, flex_masks


class RelationalTransformer(nn.Module):
    """Relational Transformer with the reference's parameter names and shapes.

    Modules that the function never reads exist so that reference state dicts load
    strictly: `dec_dict.text` (text cells are never masked — autocomplete tasks are boolean and
    numeric columns — so nothing is decoded to text) is frozen, so it takes no optimizer
    state and distributed training does not wait for its gradient.

    Args:
        config: the sizes (and the attention implementation).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, d_text = config.d_model, config.d_text
        in_widths = {"number": 1, "text": d_text, "datetime": 1, "col_name": d_text, "boolean": 1}
        self.enc_dict = nn.ModuleDict({name: nn.Linear(w, d) for name, w in in_widths.items()})
        out_widths = {"number": 1, "text": d_text, "datetime": 1, "boolean": 1}
        self.dec_dict = nn.ModuleDict({name: nn.Linear(d, w) for name, w in out_widths.items()})
        self.dec_dict["text"].requires_grad_(False)
        self.norm_dict = nn.ModuleDict({name: nn.RMSNorm(d) for name in in_widths})
        self.mask_embs = nn.ParameterDict({t: nn.Parameter(torch.randn(d)) for t in SEM_TYPES})
        self.blocks = nn.ModuleList(
            RelationalBlock(d, config.num_heads, config.d_ff) for _ in range(config.num_blocks)
        )
        self.norm_out = nn.RMSNorm(d)

    def attention_masks(self, batch: Mapping[str, Tensor]) -> AttentionMasks:
        """The col/feat/nbr masks of `batch` in the form the configured attention needs.

        Build them outside a compiled forward and pass them in: FlexAttention block masks
        are made by their own compiled kernel.
        """
        impl = self.config.attention
        device = batch["node_idxs"].device
        if impl == "flex" or (impl == "auto" and device.type == "cuda"):
            return flex_masks(batch, compile_masks=device.type == "cuda")
        return dense_masks(batch)

    def forward(
        self,
        batch: Mapping[str, Any],
        text_emb: Tensor | None = None,
        masks: AttentionMasks | None = None,
    ) -> dict[str, Tensor]:
        """Predict every cell's value as each scalar type.

        Args:
            batch: context tensors (see `plurel_ray.model.batch`), on the model's device.
            text_emb: [V, d_text] vocabulary embeddings for a compact batch (ignored for a
                full-form batch, which carries `col_name_values` and `text_values`).
            masks: from `attention_masks(batch)`; built here when omitted.

        Returns:
            "number", "datetime", "boolean" → [B, L] predictions (boolean as a logit).
        """
        if masks is None:
            masks = self.attention_masks(batch)
        x = self.embed_cells(batch, text_emb)
        for block in self.blocks:
            x = block(x, masks)
        x = self.norm_out(x)
        return {t: self.dec_dict[t](x).squeeze(-1) for t in SCALAR_TYPES}

    def embed_cells(self, batch: Mapping[str, Any], text_emb: Tensor | None) -> Tensor:
        """The input embedding [B, L, d_model] of every cell (zero for padding)."""
        real = ~batch["is_padding"]
        masked = batch["masks"]
        sem_types = batch["sem_types"]
        col_names, text_values = self._text_inputs(batch, text_emb)

        x = self._encode("col_name", col_names) * real.unsqueeze(-1)
        for code, sem_type in enumerate(SEM_TYPES):
            of_type = real & (sem_types == code)
            visible = of_type & ~masked
            if sem_type == "text":
                value = text_values
            else:
                # A hidden value never enters the network, not even multiplied by zero.
                value = torch.where(visible, batch[f"{sem_type}_values"], 0.0).unsqueeze(-1)
            encoded = torch.where(visible.unsqueeze(-1), self._encode(sem_type, value), 0.0)
            hidden = (of_type & masked).unsqueeze(-1)
            x = x + encoded + hidden * self.mask_embs[sem_type]
        return x

    def _encode(self, name: str, value: Tensor) -> Tensor:
        linear = self.enc_dict[name]
        return self.norm_dict[name](linear(value.to(linear.weight.dtype)))

    def _text_inputs(
        self, batch: Mapping[str, Any], text_emb: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if "col_name_values" in batch:
            return batch["col_name_values"], batch["text_values"]
        if text_emb is None:
            raise BatchError(
                "compact batch (vocabulary ids only) needs text_emb: pass the store's "
                "[V, d_text] vocabulary embeddings, or send col_name_values/text_values"
            )
        # Only the ids of real cells (column names) and of text cells (values) are read,
        # and checked by `check_batch`; others (−1, or anything) look up row 0, discarded.
        real = ~batch["is_padding"]
        text = real & (batch["sem_types"] == SEM_TYPES.index("text"))
        col_names = text_emb[torch.where(real, batch["col_name_idxs"], 0)]
        text_values = text_emb[torch.where(text, batch["class_value_idxs"], 0)]
        return col_names, text_values


def init_model(config: ModelConfig, seed: int) -> RelationalTransformer:
    """Build a model whose initial weights depend on `seed` only (the global torch RNG
    is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RelationalTransformer(config)
