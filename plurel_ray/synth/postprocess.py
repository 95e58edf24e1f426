"""Post-processing of generated columns (docs/prior.md#the-database): transforms, NaNs, categories.

Numerical columns get one transform each, then exactly floor(p · n) NaNs at random rows
(one rate p per table). Integer categories become booleans (`value > 0`) and a boolean
column holding a single value is dropped; string categories (SQL enums, text) are
emitted as their labels.

rank_uniform and ties. The reference ranks with NumPy's default (unstable) sort, whose
order among equal values depends on the CPU's SIMD level: under AVX-512 a column of one
repeated value keeps row order, under AVX2 it comes out as two row-ordered runs; a value
that fills most rows keeps long runs of row order. Ranks of tied values thus carry the
row position, and in few-valued columns that is most of the trend and lag-1
autocorrelation along rows. Ties by row order overstate it (trend 0.057 against the
reference's 0.044 over seeds 7000–7039, `benchmarks/population_stats.py`); ties in random
order erase it. We rank each group of equal values in row order starting from a random
member and wrapping around: one cut per group, like a partitioning sort, the same on
every machine (trend 0.040, lag-1 autocorrelation 0.026 against 0.029).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from plurel_ray.config import DatabaseParams
from plurel_ray.synth.schema import ColumnSpec


def _rank_uniform(x: np.ndarray, ties: np.random.Generator) -> np.ndarray:
    """(rank + 1) / (n + 1), each group of equal values ranked in row order from a
    random member on (module doc); `ties` draws one start per group, only if any tie."""
    n = len(x)
    order = np.argsort(x, kind="stable")  # equal values in row order
    ordered = x[order]
    starts_group = np.empty(n, dtype=bool)
    starts_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    if not starts_group.all():
        starts = np.flatnonzero(starts_group)
        sizes = np.diff(starts, append=n)
        group = np.cumsum(starts_group) - 1
        shift = (ties.random(len(starts)) * sizes).astype(np.int64)
        offset = np.arange(n) - starts[group] + shift[group]
        order = order[starts[group] + offset % sizes[group]]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n)
    return (ranks + 1.0) / (n + 1.0)


# Every transform takes the column and the table's tie-breaking generator.
TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "identity": lambda x, ties: x,
    "rank_uniform": _rank_uniform,
    "log": lambda x, ties: np.sign(x) * np.log1p(np.abs(x)),
    "sqrt": lambda x, ties: np.sign(x) * np.sqrt(np.abs(x)),
    "standardize": lambda x, ties: (x - x.mean()) / max(float(x.std()), 1e-8),
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
    ties: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Final feature columns of one table, by name, in column order.

    Args:
        columns: the table's feature columns.
        values: their generated values (float for numerical, int categories otherwise).
        num_categories: category count per column, 0 for numerical.
        params: transform and NaN-rate choices.
        rng: the table's post-processing generator (transforms, NaN rate and rows).
        ties: the table's generator for rank_uniform's tie order, a stream of its own
            so that ties do not shift the transform and NaN draws.
    """
    nan_rate = float(params.column_nan_perc_choices.sample(rng))
    out: dict[str, np.ndarray] = {}
    for column, value, k in zip(columns, values, num_categories, strict=True):
        if k == 0:
            transform = TRANSFORMS[str(params.col_transform_choices.sample(rng))]
            x = transform(value.astype(np.float64), ties)
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
