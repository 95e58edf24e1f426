"""Foreign-key assignment by a bipartite hierarchical stochastic block model.

What it draws: docs/prior.md#foreign-keys.

Rows of each side are cut into contiguous base blocks; a block's cluster at each level
is a mixed-radix digit of its index. A child row `b` picks parent row `a` with
probability ∝ Π_l M_l[cluster_l(a), cluster_l(b)]. That weight depends only on the two
blocks, so we draw a parent *block* per child row (weight × block size) and then a row
uniformly inside it: the same distribution, in O(blocks² + rows) instead of O(rows²).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plurel_ray.config import SCMParams

STRONG = 0.9
WEAK_LOW, WEAK_HIGH = 0.001, 0.002


@dataclass(frozen=True)
class Hierarchy:
    """Cluster counts per level for the parent side and the child side."""

    parent_clusters: tuple[int, ...]
    child_clusters: tuple[int, ...]


def sample_hierarchy(params: SCMParams, rng: np.random.Generator) -> Hierarchy:
    """Levels and per-level cluster counts for one (parent, child) table pair."""
    levels = int(params.bi_hsbm_levels_choices.sample(rng))
    parent = tuple(
        int(params.bi_hsbm_clusters_per_level_choices.sample(rng)) for _ in range(levels)
    )
    child = tuple(int(params.bi_hsbm_clusters_per_level_choices.sample(rng)) for _ in range(levels))
    return Hierarchy(parent, child)


def block_bounds(n: int, num_blocks: int) -> np.ndarray:
    """Start offsets `(num_blocks + 1,)` of contiguous blocks of ceil(n / num_blocks) rows.

    The last block takes the rest; with more blocks than rows, trailing blocks are empty.
    """
    size = -(-n // num_blocks)
    return np.minimum(np.arange(num_blocks + 1) * size, n)


def block_clusters(clusters: tuple[int, ...]) -> np.ndarray:
    """`(num_blocks, levels)` cluster of every base block: mixed-radix digits of its index."""
    num_blocks = int(np.prod(clusters))
    digits = np.empty((num_blocks, len(clusters)), dtype=np.int64)
    rest = np.arange(num_blocks)
    for level in range(len(clusters) - 1, -1, -1):
        digits[:, level] = rest % clusters[level]
        rest //= clusters[level]
    return digits


def level_matrix(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """`(rows, cols)` affinities: U(0.001, 0.002), with 0.9 on the wrapped diagonal."""
    matrix = rng.uniform(WEAK_LOW, WEAK_HIGH, (rows, cols))
    i = np.arange(max(rows, cols))
    matrix[i % rows, i % cols] = STRONG
    return matrix


def assign_parents(
    num_parent_rows: int, num_child_rows: int, hierarchy: Hierarchy, rng: np.random.Generator
) -> np.ndarray:
    """The parent row (int64) of every child row.

    Args:
        num_parent_rows: rows of the referenced table (≥ 1).
        num_child_rows: rows of the referencing table.
        hierarchy: cluster counts per level.
        rng: generator for the affinities and the draws.
    """
    matrices = [
        level_matrix(p, c, rng)
        for p, c in zip(hierarchy.parent_clusters, hierarchy.child_clusters, strict=True)
    ]
    parent_digits = block_clusters(hierarchy.parent_clusters)
    child_digits = block_clusters(hierarchy.child_clusters)
    weight = np.ones((len(parent_digits), len(child_digits)))
    for level, matrix in enumerate(matrices):
        weight *= matrix[parent_digits[:, level][:, None], child_digits[:, level][None, :]]

    parent_bounds = block_bounds(num_parent_rows, len(parent_digits))
    parent_sizes = np.diff(parent_bounds)
    block_mass = weight * parent_sizes[:, None]
    cumulative = np.cumsum(block_mass, axis=0)

    child_bounds = block_bounds(num_child_rows, len(child_digits))
    child_block = np.repeat(np.arange(len(child_digits)), np.diff(child_bounds))
    u = rng.random(num_child_rows) * cumulative[-1, child_block]
    # Per child row, the first parent block whose cumulative mass exceeds u.
    cum_rows = cumulative[:, child_block]
    parent_block = np.minimum((u[None, :] >= cum_rows).sum(axis=0), len(parent_digits) - 1)
    offset = np.floor(rng.random(num_child_rows) * parent_sizes[parent_block]).astype(np.int64)
    return parent_bounds[parent_block] + offset
