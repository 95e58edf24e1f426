"""The relational block: three masked self-attentions and a SwiGLU FFN (docs/model.md).

Parameter names follow the reference checkpoint (`norms.{col,feat,nbr,ffn}`,
`attns.{kind}.{wq,wk,wv,wo,q_norm,k_norm}`, `ffn.{w1,w2,w3}`), and norms are
`nn.RMSNorm` with its default eps, as the reference, so its state dicts load strictly.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from plurel_ray.model.masks import ATTENTION_KINDS, AttentionMasks


@functools.cache
def _compiled_flex_attention():
    # Unfused FlexAttention materialises the scores; compiled it is one fused kernel.
    return torch.compile(flex_attention, dynamic=False)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | BlockMask) -> Tensor:
    """Masked softmax attention over [B, H, L, D]; a query with no allowed key gets 0.

    Args:
        q, k, v: queries, keys and values, [B, H, L, D].
        mask: a dense bool mask [B, L, L] or a FlexAttention BlockMask.
    """
    if isinstance(mask, BlockMask):
        if q.is_cuda:
            return _compiled_flex_attention()(q, k, v, block_mask=mask)
        with warnings.catch_warnings():
            # Off CUDA FlexAttention only serves to check the dense path; unfused is fine.
            warnings.filterwarnings("ignore", message="flex_attention called without")
            return flex_attention(q, k, v, block_mask=mask)
    # Rows with no allowed key (padding; rows nobody points to, for nbr) would softmax
    # over nothing, which is NaN on some backends: let them see every key, then zero them,
    # which is what FlexAttention returns for such rows.
    has_key = mask.any(dim=-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~has_key).unsqueeze(1))
    return out * has_key.unsqueeze(1).to(out.dtype)


class MaskedAttention(nn.Module):
    """Multi-head self-attention with per-head QK-RMSNorm and bias-free projections."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = d_model // num_heads
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.q_norm = nn.RMSNorm(head_dim)
        self.k_norm = nn.RMSNorm(head_dim)

    def forward(self, x: Tensor, mask: Tensor | BlockMask) -> Tensor:
        batch, length, width = x.shape

        def heads(t: Tensor) -> Tensor:  # [B, L, d] → [B, L, H, D]
            return t.view(batch, length, self.num_heads, -1)

        v = heads(self.wv(x))
        # Under autocast RMSNorm computes in float32; the attention kernels need one dtype.
        q = self.q_norm(heads(self.wq(x))).to(v.dtype)
        k = self.k_norm(heads(self.wk(x))).to(v.dtype)
        out = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask)
        return self.wo(out.transpose(1, 2).reshape(batch, length, width))


class FFN(nn.Module):
    """SwiGLU feed-forward network: w2(silu(w1 x) · w3 x), bias-free."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RelationalBlock(nn.Module):
    """Pre-norm residual block: col, feat and nbr attention in that order, then the FFN."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int) -> None:
        super().__init__()
        self.norms = nn.ModuleDict(
            {kind: nn.RMSNorm(d_model) for kind in (*ATTENTION_KINDS, "ffn")}
        )
        self.attns = nn.ModuleDict(
            {kind: MaskedAttention(d_model, num_heads) for kind in ATTENTION_KINDS}
        )
        self.ffn = FFN(d_model, d_ff)

    def forward(self, x: Tensor, masks: AttentionMasks) -> Tensor:
        for kind in ATTENTION_KINDS:
            x = x + self.attns[kind](self.norms[kind](x), masks[kind])
        return x + self.ffn(self.norms["ffn"](x))
