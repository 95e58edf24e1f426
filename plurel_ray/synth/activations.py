"""The 29 activations of docs/prior.md#configuration, as float32 NumPy functions resolved by name.

Each entry maps a name to a factory `rng -> fn`; only `random_sine` uses the generator
(its parameters are drawn once, when the MLP layer that picks it is built, and frozen).
Functions may overwrite their argument: callers pass a scratch buffer they own.
Constants follow torch.nn.functional defaults (elu/celu alpha 1, leaky slope 0.01,
shrink lambda 0.5, rrelu in eval mode: slope (1/8 + 1/3) / 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]

_SELU_ALPHA = np.float32(1.6732632423543772)
_SELU_SCALE = np.float32(1.0507009873554805)
_RRELU_SLOPE = np.float32((1.0 / 8.0 + 1.0 / 3.0) / 2.0)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, _F0)))


def _log1p_exp_neg_abs(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(-|x|)); |x| is capped at 80 so exp stays out of float32 denormals
    (which are ~20x slower) while the result is unchanged to float32 precision."""
    return np.log1p(np.exp(-np.minimum(np.abs(x), np.float32(80))))


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): ~2 ns/element vs ~16 for logaddexp.
    return np.maximum(x, _F0) + _log1p_exp_neg_abs(x)


def _logsigmoid(x: np.ndarray) -> np.ndarray:
    return np.minimum(x, _F0) - _log1p_exp_neg_abs(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: SIMD tanh makes this ~5x faster than expit.
    y = np.multiply(x, np.float32(0.5))
    np.tanh(y, out=y)
    y *= np.float32(0.5)
    y += np.float32(0.5)
    return y


def _softshrink(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.maximum(np.abs(x) - np.float32(0.5), _F0)


# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, i.e. erf to float32 precision, at a
# fifth of the cost of scipy's float32 erf.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


def _erf(x: np.ndarray) -> np.ndarray:
    ax = np.minimum(np.abs(x), np.float32(6))  # erf(6) == 1 in float32; avoids denormals
    t = _F1 / (_F1 + _ERF_P * ax)
    y = _ERF_A[0] * t
    for a in _ERF_A[1:]:
        y += a
        y *= t
    y *= np.exp(-ax * ax)
    return np.copysign(_F1 - y, x)


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * x * (_F1 + _erf(x * np.float32(1 / math.sqrt(2))))


def _fixed(fn: Activation) -> Callable[[np.random.Generator], Activation]:
    return lambda rng: fn


def _random_sine(rng: np.random.Generator) -> Activation:
    """`f(x) = sum_i a_i sin(f_i x + p_i)` with n in [3, 7] frozen components."""
    n = int(rng.integers(3, 8))
    amplitudes = rng.standard_normal(n).astype(np.float32)
    freqs = np.exp(rng.uniform(math.log(0.1), math.log(10.0), n)).astype(np.float32)
    phases = rng.uniform(0.0, 2 * math.pi, n).astype(np.float32)

    def random_sine(x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        for a, f, p in zip(amplitudes, freqs, phases, strict=True):
            out += a * np.sin(f * x + p)
        return out

    random_sine.amplitudes, random_sine.freqs, random_sine.phases = amplitudes, freqs, phases
    return random_sine


ACTIVATIONS: dict[str, Callable[[np.random.Generator], Activation]] = {
    "relu": _fixed(lambda x: np.maximum(x, _F0, out=x)),
    "elu": _fixed(_elu),
    "selu": _fixed(
        lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, _F0)))
    ),
    "silu": _fixed(lambda x: x * _sigmoid(x)),
    "softsign": _fixed(lambda x: x / (_F1 + np.abs(x))),
    "tanh": _fixed(lambda x: np.tanh(x, out=x)),
    "sigmoid": _fixed(_sigmoid),
    "hardswish": _fixed(
        lambda x: x * np.clip(x + np.float32(3), _F0, np.float32(6)) / np.float32(6)
    ),
    "mish": _fixed(lambda x: x * np.tanh(_softplus(x))),
    "leaky_relu": _fixed(lambda x: np.where(x >= 0, x, np.float32(0.01) * x)),
    "gelu": _fixed(_gelu),
    "softplus": _fixed(_softplus),
    "hardsigmoid": _fixed(lambda x: np.clip(x / np.float32(6) + np.float32(0.5), _F0, _F1)),
    "hardtanh": _fixed(lambda x: np.clip(x, -_F1, _F1, out=x)),
    "celu": _fixed(_elu),  # celu with alpha 1 is elu
    "tanhshrink": _fixed(lambda x: x - np.tanh(x)),
    "rrelu": _fixed(lambda x: np.where(x >= 0, x, _RRELU_SLOPE * x)),
    "logsigmoid": _fixed(_logsigmoid),
    "softshrink": _fixed(_softshrink),
    "hardshrink": _fixed(lambda x: np.where(np.abs(x) > np.float32(0.5), x, _F0)),
    "identity": _fixed(lambda x: x),
    "abs": _fixed(lambda x: np.abs(x, out=x)),
    "sin": _fixed(lambda x: np.sin(x, out=x)),
    "cos": _fixed(lambda x: np.cos(x, out=x)),
    "sign": _fixed(lambda x: np.sign(x, out=x)),
    "clamp": _fixed(lambda x: np.clip(x, -_F1, _F1, out=x)),
    "signed_log1p": _fixed(lambda x: np.sign(x) * np.log1p(np.abs(x))),
    "smooth_identity": _fixed(lambda x: (np.sqrt(x * x + _F1) - _F1) / np.float32(2) + x),
    "random_sine": _random_sine,
}

# Every activation without random parameters, built once.
FIXED_ACTIVATIONS = {
    name: factory(None) for name, factory in ACTIVATIONS.items() if name != "random_sine"
}


def make_activation(name: str, rng: np.random.Generator) -> Activation:
    """The activation `name`, random parameters (random_sine's) drawn from `rng`.

    Args:
        name: a key of `ACTIVATIONS`.
        rng: generator for `random_sine`'s frozen parameters.
    """
    fixed = FIXED_ACTIVATIONS.get(name)
    return fixed if fixed is not None else ACTIVATIONS[name](rng)
