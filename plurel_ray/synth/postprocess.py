"""Post-processing of generated columns (SPEC §3.7): transforms, NaNs, categories.

Numerical columns get one transform each, then exactly floor(p · n) NaNs at random rows
(one rate p per table). Integer categories become booleans (`value > 0`) and a boolean
column holding a single value is dropped; string categories (SQL enums, text) are
emitted as their labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from plurel_ray.config import DatabaseParams
from plurel_ray.synth.schema import ColumnSpec


def _rank_uniform(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return (ranks + 1.0) / (len(x) + 1.0)


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "rank_uniform": _rank_uniform,
    "log": lambda x: np.sign(x) * np.log1p(np.abs(x)),
    "sqrt": lambda x: np.sign(x) * np.sqrt(np.abs(x)),
    "standardize": lambda x: (x - x.mean()) / max(float(x.std()), 1e-8),
}


def category_labels(column: ColumnSpec, k: int) -> tuple[str, ...] | None:
    """String labels of a categorical column, or None for integer categories."""
    if column.labels is not None:
        return column.labels
    if column.text:
        return tuple(f"{column.name}_{j}" for j in range(k))
    return None


def postprocess_columns(
    columns: list[ColumnSpec],
    values: list[np.ndarray],
    num_categories: list[int],
    params: DatabaseParams,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Final feature columns of one table, by name, in column order.

    Args:
        columns: the table's feature columns.
        values: their generated values (float for numerical, int categories otherwise).
        num_categories: category count per column, 0 for numerical.
        params: transform and NaN-rate choices.
        rng: the table's post-processing generator.
    """
    nan_rate = float(params.column_nan_perc_choices.sample(rng))
    out: dict[str, np.ndarray] = {}
    for column, value, k in zip(columns, values, num_categories, strict=True):
        if k == 0:
            x = TRANSFORMS[str(params.col_transform_choices.sample(rng))](value.astype(np.float64))
            x = np.array(x, dtype=np.float64)
            num_nan = int(np.floor(nan_rate * len(x)))
            x[rng.choice(len(x), size=num_nan, replace=False)] = np.nan
            out[column.name] = x
            continue
        labels = category_labels(column, k)
        if labels is not None:
            out[column.name] = np.asarray(labels, dtype=object)[value]
            continue
        flags = value > 0
        if flags.size and (flags.all() or not flags.any()):
            continue  # a constant boolean column carries no signal
        out[column.name] = flags
    return out
