"""Who may attend to whom: the three relational attention masks of docs/model.md.

- col: cells of the same column of the same table;
- feat: cells of the same row, and cells of the rows this row's foreign keys point to;
- nbr: cells of the rows whose foreign keys point to this row;
padding never attends and is never attended.

The predicates are written once (`allowed`) over a query cell and a key cell and used two
ways: broadcast over [B, L, L] for dense attention, and per (b, q, kv) index as a
FlexAttention `mask_mod`, so the two attention paths cannot disagree on the masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.attention.flex_attention import BlockMask, create_block_mask

ATTENTION_KINDS = ("col", "feat", "nbr")

# An attention mask per kind: a dense bool tensor [B, L, L] (True = query may attend key)
# or a FlexAttention BlockMask.
AttentionMasks = dict[str, Tensor | BlockMask]


class Cell(NamedTuple):
    """The fields of one cell (or of a broadcastable grid of cells) that masks compare
    (a NamedTuple: traced by torch.compile inside FlexAttention mask_mods)."""

    node: Tensor
    refs: tuple[Tensor, ...]  # the f2p neighbour ids of the cell's row, one per slot
    column: Tensor
    table: Tensor
    real: Tensor  # not padding


def allowed(kind: str, query: Cell, key: Cell) -> Tensor:
    """Whether `query` may attend to `key` in attention `kind` ("col", "feat", "nbr")."""
    both_real = query.real & key.real
    if kind == "col":
        return both_real & (query.column == key.column) & (query.table == key.table)
    if kind == "feat":
        return both_real & ((query.node == key.node) | _points_to(query, key))
    if kind == "nbr":
        return both_real & _points_to(key, query)
    raise ValueError(f"unknown attention kind {kind!r}; expected one of {ATTENTION_KINDS}")


def _points_to(child: Cell, parent: Cell) -> Tensor:
    """Whether a foreign key of `child`'s row points to `parent`'s row (−1 slots never
    match: padding, the only cells with node −1, is excluded by `allowed`)."""
    hit = child.refs[0] == parent.node
    for ref in child.refs[1:]:
        hit = hit | (ref == parent.node)
    return hit


def _fields(batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    node = batch["node_idxs"].contiguous()
    refs = batch["f2p_nbr_idxs"].contiguous()
    if refs.shape[-1] == 0:
        # Databases without foreign keys send F = 0; one −1 slot keeps the predicates
        # uniform and matches nothing.
        refs = torch.full((*node.shape, 1), -1, dtype=node.dtype, device=node.device)
    column = batch["col_name_idxs"].contiguous()
    table = batch["table_name_idxs"].contiguous()
    real = (~batch["is_padding"]).contiguous()
    return node, refs, column, table, real


def dense_masks(batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The three masks as bool tensors [B, L, L] (O(B·L²) memory: tests and CPU)."""
    node, refs, column, table, real = _fields(batch)

    def grid(axis: int) -> Cell:
        def put(t: Tensor) -> Tensor:
            return t.unsqueeze(axis)

        slots = tuple(put(refs[..., i]) for i in range(refs.shape[-1]))
        return Cell(put(node), slots, put(column), put(table), put(real))

    query, key = grid(2), grid(1)  # query varies along dim 1, key along dim 2
    return {kind: allowed(kind, query, key) for kind in ATTENTION_KINDS}


def flex_masks(batch: Mapping[str, Tensor], compile_masks: bool) -> dict[str, BlockMask]:
    """The three masks as FlexAttention block masks, built without an [B, L, L] tensor.

    Args:
        batch: the batch on its device.
        compile_masks: compile the mask construction (CUDA; eager is fine on CPU).
    """
    node, refs, column, table, real = _fields(batch)
    batch_size, length = node.shape
    width = refs.shape[-1]

    def cell(b: Tensor, i: Tensor) -> Cell:
        slots = tuple(refs[b, i, s] for s in range(width))
        return Cell(node[b, i], slots, column[b, i], table[b, i], real[b, i])

    def mask_mod_for(kind: str):
        def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return allowed(kind, cell(b, q_idx), cell(b, kv_idx))

        return mask_mod

    return {
        kind: create_block_mask(
            mask_mod_for(kind),
            B=batch_size,
            H=None,
            Q_LEN=length,
            KV_LEN=length,
            device=node.device,
            _compile=compile_masks,
        )
        for kind in ATTENTION_KINDS
    }
