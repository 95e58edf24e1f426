"""Source-node values (docs/prior.md#sources), vectorised over rows.

Each generator is built (its parameters drawn) and evaluated in one call; numerical
sources return float64 `(n,)`, categorical ones int64 category indices `(n,)`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from plurel_ray.config import SCMParams

_MIXED_PARTS = ("uniform", "gaussian", "beta")


def _low_high(params: SCMParams, rng: np.random.Generator) -> tuple[float, float]:
    scale = float(params.ts_value_scale_choices.sample(rng))
    low, high = sorted(rng.uniform(0.0, 1.0, 2) * scale)
    return float(low), float(high)


def _ts(params: SCMParams, n: int, is_activity: bool, rng: np.random.Generator) -> np.ndarray:
    low, high = _low_high(params, rng)
    alpha = float(params.ts_trend_alpha_choices.sample(rng))
    freq = float(params.ts_cycle_freq_perc_choices.sample(rng))
    rho = float(params.ts_ar_rho_choices.sample(rng))
    if is_activity:
        trend_scale = float(params.activity_table_ts_trend_scale_choices.sample(rng))
        cycle_scale = float(params.activity_table_ts_cycle_scale_choices.sample(rng))
        sigma = params.activity_table_ts_noise_scale
    else:
        trend_scale = params.entity_table_ts_trend_scale
        cycle_scale = params.entity_table_ts_cycle_scale
        sigma = params.entity_table_ts_noise_scale
    i = np.arange(n, dtype=np.float64)
    trend = np.minimum(trend_scale * (i / n) ** alpha + low, high)
    period = math.ceil(n * freq)
    cycle = np.clip(cycle_scale * np.sin(np.pi * i / period), low, high)
    state = _ar1(sigma * rng.standard_normal(n), rho)
    noise = np.clip(state, low, high)
    return (trend + cycle + noise) / 3.0


def _ar1(shocks: np.ndarray, rho: float) -> np.ndarray:
    """The AR(1) state e_i = rho · e_{i-1} + shocks_i with e_{-1} = 0, unclipped.

    Computed as the convolution e_i = Σ_k rho^k shocks_{i-k}, truncated where
    rho^k < 1e-17 (k ≤ 372 for rho ≤ 0.9): below float64 resolution, so equal to the
    recursion to rounding. (scipy.signal.lfilter would do it too, but importing
    scipy.signal costs 50 MB of resident memory per generator process.)
    """
    if rho <= 0.0:
        return shocks
    length = min(len(shocks), math.ceil(math.log(1e-17) / math.log(rho)))
    return np.convolve(shocks, rho ** np.arange(length))[: len(shocks)]


def _uniform(params: SCMParams, n: int, rng: np.random.Generator) -> np.ndarray:
    low, high = _low_high(params, rng)
    return rng.uniform(low, high, n)


def _gaussian(params: SCMParams, n: int, rng: np.random.Generator) -> np.ndarray:
    low, high = _low_high(params, rng)
    std = max((high - low) / 4.0, 1e-6)
    return np.clip(rng.normal((low + high) / 2.0, std, n), low, high)


def _beta(params: SCMParams, n: int, rng: np.random.Generator) -> np.ndarray:
    low, high = _low_high(params, rng)
    a = float(params.source_beta_alpha_choices.sample(rng))
    b = float(params.source_beta_beta_choices.sample(rng))
    return low + (high - low) * rng.beta(a, b, n)


def _mixed(params: SCMParams, n: int, rng: np.random.Generator) -> np.ndarray:
    count = int(rng.integers(2, 4))
    parts = [_MIXED_PARTS[j] for j in rng.integers(0, len(_MIXED_PARTS), count)]
    values = np.stack([_SIMPLE[p](params, n, rng) for p in parts])
    pick = rng.integers(0, count, n)
    return values[pick, np.arange(n)]


_SIMPLE = {"uniform": _uniform, "gaussian": _gaussian, "beta": _beta}


def numerical_source(
    kind: str, params: SCMParams, n: int, is_activity: bool, rng: np.random.Generator
) -> np.ndarray:
    """Values of a numerical source of generator type `kind` over `n` rows.

    Args:
        kind: one of ts, uniform, gaussian, beta, mixed.
        params: SCM parameters the generator's settings are drawn from.
        n: number of rows.
        is_activity: activity tables get trend and cycle; entity tables do not.
        rng: generator for the settings and the values.
    """
    if kind == "ts":
        return _ts(params, n, is_activity, rng)
    if kind == "mixed":
        return _mixed(params, n, rng)
    return _SIMPLE[kind](params, n, rng)


def categorical_source(
    kind: str, k: int, params: SCMParams, n: int, is_activity: bool, rng: np.random.Generator
) -> np.ndarray:
    """Category indices in [0, k) of a categorical source over `n` rows.

    A ts source runs `k` ts generators and samples each row's category from the
    softmax of their values; every other kind draws i.i.d. categories with
    probabilities from Dirichlet(1, …, 1).

    Args:
        kind: the source generator type.
        k: number of categories.
        params: SCM parameters.
        n: number of rows.
        is_activity: passed to the ts generators.
        rng: generator to draw from.
    """
    if kind == "ts":
        logits = np.stack([_ts(params, n, is_activity, rng) for _ in range(k)], axis=1)
        probs = special.softmax(logits, axis=1)
    else:
        probs = np.broadcast_to(rng.dirichlet(np.ones(k)), (n, k))
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(n)[:, None] * cumulative[:, -1:]
    return np.minimum((draws >= cumulative).sum(axis=1), k - 1).astype(np.int64)
