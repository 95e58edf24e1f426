"""Error bounds of float32 arithmetic, for comparing the native kernels with NumPy.

Both sides compute the same real function in float32, each with its own SIMD code (the
native kernels at `_native.simd_level()`, NumPy by its CPU dispatch and BLAS by its
core type), so neither is "the truth": two results may differ by the sum of their
distances to the exact value. The bounds below are that sum, derived from the
arithmetic (docs/native.md), so they hold on every CPU and SIMD level instead of being
tuned on one machine.

A random MLP is `h ← clip(act(h @ W), ±c)` layer after layer. To first order, with `Δ`
an elementwise bound on the difference of the two evaluations:

- a matmul `z = h @ W` over n terms adds the rounding of both sides, each at most
  γ_n · (|h| @ |W|) with γ_n = n·u / (1 - n·u) and u = EPS/2 the unit roundoff (any
  summation order, with or without FMA), and carries the input's difference as
  `Δh @ |W|`;
- an activation carries `L · Δz` (L its Lipschitz constant) and adds both sides'
  accuracy (`ACTIVATION_EPS`); at a jump (sign, hardshrink) a difference that straddles
  it may take the whole jump;
- the clip is 1-Lipschitz and bounds the difference by twice the clamp.

Magnitudes are taken from the NumPy evaluation; second-order terms are far below EPS.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float32).eps)  # 2^-23: the spacing of float32 in [1, 2)
UNIT = EPS / 2  # unit roundoff: one correctly rounded operation errs by ≤ UNIT·|result|

# Each float32 activation, native or NumPy, is within ACTIVATION_EPS·EPS·(1 + |f(x)|) of
# f(x). Native: the fastmath functions are ≤ 3 ulp (exp, ln, tanh, sigmoid) or ≤ 2e-7
# absolute (sin, cos for |x| ≤ 1e4; erf's A&S 1.5e-7) per native/src/fastmath.rs, and
# a composite activation (gelu, mish, silu, softplus, …) adds at most ~5 roundings of
# UNIT each. NumPy: its float32 SIMD exp/log/tanh/sin/cos are within 4 ulp, plus the
# same composite roundings. Measured worst cases on a dense grid over [-1e4, 1e4], at
# every SIMD level of both sides: 4.7 EPS (NumPy's silu), 2.2 EPS (native gelu).
ACTIVATION_EPS = 8.0
# fastmath's documented absolute error of sin and cos for |x| ≤ TRIG_ACCURATE_TO; beyond,
# the native result is only bounded (|sin| ≤ 1), so a difference may reach 2.
TRIG_ABS_ERR = 2e-7
TRIG_ACCURATE_TO = 1e4

# max |f'| of each activation over the reals, rounded up (random_sine: Σ|a_k f_k|).
LIPSCHITZ = {
    "relu": 1.0, "elu": 1.0, "selu": 1.7581, "silu": 1.1, "softsign": 1.0, "tanh": 1.0,
    "sigmoid": 0.25, "hardswish": 1.5, "mish": 1.1, "leaky_relu": 1.0, "gelu": 1.13,
    "softplus": 1.0, "hardsigmoid": 1 / 6, "hardtanh": 1.0, "celu": 1.0, "tanhshrink": 1.0,
    "rrelu": 1.0, "logsigmoid": 1.0, "softshrink": 1.0, "hardshrink": 1.0, "identity": 1.0,
    "abs": 1.0, "sin": 1.0, "cos": 1.0, "sign": 0.0, "clamp": 1.0, "signed_log1p": 1.0,
    "smooth_identity": 1.5,
}  # fmt: skip


def gamma(n: int) -> float:
    """Higham's γ_n: the relative error bound of an n-term float32 dot product."""
    return n * UNIT / (1 - n * UNIT)


def activation_error(name: str, fn, z: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Bound on |native act(z + δ) - NumPy act(z)| for |δ| ≤ dz, elementwise.

    Args:
        name: the activation's name.
        fn: its NumPy function (random_sine's carries its frozen parameters).
        z: the NumPy side's float32 input.
        dz: the bound on the difference of the two sides' inputs.
    """
    a = np.abs(fn(z.copy()).astype(np.float64))
    z = z.astype(np.float64)
    both_sides = 2 * ACTIVATION_EPS * EPS
    if name == "random_sine":
        amp, freq, phase = (
            np.abs(p).astype(np.float64) for p in (fn.amplitudes, fn.freqs, fn.phases)
        )
        arg = np.abs(z)[..., None] * freq + phase  # |f_k z + p_k| per component
        # Per component: the input difference through f_k, the two roundings of the
        # argument f_k z + p_k on each side, and sin's own accuracy (bounded beyond 1e4).
        sin_err = np.where(arg <= TRIG_ACCURATE_TO, both_sides, 2.0)
        per_term = amp * (freq * dz[..., None] + 2 * 2 * UNIT * arg + sin_err)
        return per_term.sum(-1) + 2 * gamma(len(amp)) * amp.sum()
    err = LIPSCHITZ[name] * dz + both_sides * (1 + a)
    if name in ("sin", "cos"):
        err = np.where(np.abs(z) + dz <= TRIG_ACCURATE_TO, err, 2.0)
    # A jump is crossed only where the inputs may differ (dz > 0): the same input,
    # exactly 0 say, gives the same output on both sides.
    elif name == "sign":  # jumps by 1 at 0 on each side
        err = np.where((np.abs(z) <= dz) & (dz > 0), 2.0, err)
    elif name == "hardshrink":  # jumps by 0.5 at ±0.5
        err = np.where((np.abs(np.abs(z) - 0.5) <= dz) & (dz > 0), np.abs(z) + dz, err)
    return err


def mlp_error(mlp, name: str, x: np.ndarray) -> np.ndarray:
    """Bound on |native mlp(x) - NumPy mlp(x)|, elementwise, for an MLP whose hidden
    layers all use activation `name` (RandomMLP.__call__'s arithmetic).

    Args:
        mlp: a RandomMLP.
        name: its activation.
        x: float32 input, (n,) for a 1-input MLP or (n, in).
    """
    if x.ndim == 1:  # one product per element, rounded once on each side
        h = x[:, None] * mlp.weights[0][0]
        dz = 2 * UNIT * np.abs(h.astype(np.float64))
    else:
        h = x @ mlp.weights[0]
        w0 = np.abs(mlp.weights[0].astype(np.float64))
        dz = 2 * gamma(x.shape[1]) * (np.abs(x.astype(np.float64)) @ w0)
    for act, clamp, w in zip(mlp.activations, mlp.clamps, mlp.weights[1:], strict=True):
        w_abs = np.abs(w.astype(np.float64))
        da = np.minimum(activation_error(name, act, h, dz), 2 * clamp)
        h = np.clip(act(h.copy()), -clamp, clamp)
        dz = da @ w_abs + 2 * gamma(w.shape[0]) * (np.abs(h.astype(np.float64)) @ w_abs)
        h = h @ w
    return dz


def assert_within(
    got: np.ndarray, want: np.ndarray, bound: np.ndarray | float, what: str = ""
) -> None:
    """|got - want| ≤ bound elementwise (NaN matching NaN); the message shows the worst."""
    got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = np.broadcast_to(np.asarray(bound, np.float64), want64.shape)
    both_nan = np.isnan(got64) & np.isnan(want64)
    excess = np.where(both_nan, -np.inf, np.abs(got64 - want64) - bound)
    excess = np.where(np.isnan(excess), np.inf, excess)
    if excess.size and excess.max() > 0:
        i = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            f"{what}: |{got64[i]!r} - {want64[i]!r}| = {abs(got64[i] - want64[i]):.3e} exceeds "
            f"the bound {bound[i]:.3e} at {i} ({int((excess > 0).sum())} of {excess.size})"
        )
