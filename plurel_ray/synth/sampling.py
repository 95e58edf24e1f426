"""Vectorised draws from a `Choices`: one generator call for many decisions.

`Choices.sample` draws one value; building thousands of MLPs or node settings one
value at a time is what made the original generator slow, so hot paths draw arrays.
"""

from __future__ import annotations

import numpy as np

from plurel_ray.config import Choices


def sample_many(choices: Choices, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` independent uniform draws from `choices` (docs/prior.md#configuration uniform mode).

    Args:
        choices: a range (int: inclusive, float: [lo, hi)) or a set.
        rng: the generator to draw from.
        size: number of draws.
    """
    if choices.kind == "set":
        values = np.asarray(choices.value, dtype=object)
        picked = values[rng.integers(0, len(values), size=size)]
        return np.asarray(picked.tolist()) if size else picked
    lo, hi = choices.value
    if isinstance(lo, int) and isinstance(hi, int):
        return rng.integers(lo, hi + 1, size=size)
    return rng.uniform(lo, hi, size=size)


def sample_set_indices(choices: Choices, rng: np.random.Generator, size: int) -> np.ndarray:
    """The same draws as `sample_many` on a set, as int64 positions in `choices.value`:
    callers that map picks to ids index a lookup array instead of comparing strings.

    Args:
        choices: a set.
        rng: the generator to draw from (one call, as `sample_many`).
        size: number of draws.
    """
    if choices.kind != "set":
        raise ValueError(f"expected a set of choices, got a {choices.kind}")
    return rng.integers(0, len(choices.value), size=size)
