"""Streaming elementwise aggregation of a node's incoming terms (docs/prior.md#table-scm).

A node combines `w_e · enc_e(parent)` over its in-edges and the foreign terms `F` with
sum, max, product or logsumexp. Terms are folded in one at a time by the native
kernels, so only the accumulator is alive, never a stack of `d` terms; logsumexp keeps
a running maximum and a rescaled running sum. All four are associative, so a partial
aggregate (such as the table-wide foreign aggregate) enters as one more term.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from plurel_ray import _native

# The aggregation ids of the native kernels (`plurel_ray._native`).
AGG_CODES = {"sum": 0, "max": 1, "product": 2, "logexp": 3}


class Accumulator:
    """Aggregate of float32 `(n, width)` terms under one mode.

    Args:
        mode: "sum", "max", "product" or "logexp".
        shape: (n, width) of every term.
    """

    def __init__(self, mode: str, shape: tuple[int, int]):
        self.mode = mode
        self.count = 0
        if mode == "sum":
            self.value = np.zeros(shape, np.float32)
        elif mode == "max":
            self.value = np.full(shape, -np.inf, np.float32)
        elif mode == "product":
            self.value = np.ones(shape, np.float32)
        elif mode == "logexp":
            self.value = np.full(shape, -np.inf, np.float32)  # running maximum
            self.total = np.zeros(shape, np.float32)  # Σ exp(term - running maximum)
        else:
            raise ValueError(f"unknown aggregation {mode!r}")

    def add(self, term: np.ndarray) -> None:
        """Fold in one `(n, width)` float32 C-contiguous term (not modified)."""
        self.add_native(lambda agg, value, total: _native.dense_accumulate(term, agg, value, total))

    def add_native(self, encode: Callable[[int, np.ndarray, np.ndarray | None], None]) -> None:
        """Fold in one term computed by a native kernel straight into the buffers.

        Args:
            encode: called as `encode(agg_code, value, total)`; it must aggregate its
                term into `value` (and `total` under logexp) the way `add` would.
        """
        self.count += 1
        encode(AGG_CODES[self.mode], self.value, getattr(self, "total", None))

    def result(self) -> np.ndarray:
        """The aggregate of every term added so far (at least one)."""
        if self.count == 0:
            raise ValueError("aggregate of no terms")
        if self.mode == "logexp":
            return self.value + np.log(self.total)
        if self.mode == "product":
            # Products of up to ~100 terms of ±1e4 overflow float32 to ±inf (the node's
            # input is then clamped to ±1e6), and inf · 0 is NaN: read it as 0, so a
            # product never leaks NaN into the database.
            np.copyto(self.value, 0.0, where=np.isnan(self.value))
        return self.value
