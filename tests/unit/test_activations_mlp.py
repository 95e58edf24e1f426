"""docs/prior.md: the 29 activations match their definitions; random MLPs and embeddings
are initialised, masked, shaped and clamped as specified."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from float_bounds import ACTIVATION_EPS, EPS
from scipy import special, stats

from plurel_ray.config import ACTIVATIONS as CONFIG_ACTIVATIONS
from plurel_ray.config import INITIALIZATIONS, Choices, SCMParams
from plurel_ray.synth.activations import ACTIVATIONS
from plurel_ray.synth.mlp import HIDDEN_CLAMP, build_embeddings, build_mlps

# torch.nn.functional constants, written out independently of the module under test.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
RRELU_EVAL_SLOPE = (1.0 / 8.0 + 1.0 / 3.0) / 2.0


def _softplus64(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# Float64 definitions of every deterministic activation (torch semantics).
REFERENCE = {
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x * _sigmoid64(x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "tanh": np.tanh,
    "sigmoid": _sigmoid64,
    "hardswish": lambda x: np.where(x <= -3, 0.0, np.where(x >= 3, x, x * (x + 3.0) / 6.0)),
    "mish": lambda x: x * np.tanh(_softplus64(x)),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "gelu": lambda x: 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0))),
    "softplus": _softplus64,
    "hardsigmoid": lambda x: np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, x / 6.0 + 0.5)),
    "hardtanh": lambda x: np.minimum(np.maximum(x, -1.0), 1.0),
    # celu(x) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), alpha = 1
    "celu": lambda x: np.maximum(x, 0.0) + np.minimum(0.0, np.expm1(np.minimum(x, 0.0))),
    "tanhshrink": lambda x: x - np.tanh(x),
    "rrelu": lambda x: np.where(x >= 0, x, RRELU_EVAL_SLOPE * x),
    "logsigmoid": lambda x: -_softplus64(-x),
    "softshrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "hardshrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "identity": lambda x: x,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "sign": np.sign,
    "clamp": lambda x: np.minimum(np.maximum(x, -1.0), 1.0),
    "signed_log1p": lambda x: np.sign(x) * np.log1p(np.abs(x)),
    "smooth_identity": lambda x: (np.sqrt(x * x + 1.0) - 1.0) / 2.0 + x,
}
DETERMINISTIC = sorted(REFERENCE)

# Dense grid on [-50, 50] plus the points where piecewise definitions switch.
KINKS = [-3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 20.0, -20.0]
NEAR = [k + d for k in KINKS for d in (-1e-4, 1e-4)]
GRID = np.concatenate([np.linspace(-50.0, 50.0, 4001), KINKS, NEAR, [-50.0, 50.0]]).astype(
    np.float32
)
HUGE = np.array([-1e9, -1e6, -1234.5, 1234.5, 1e6, 1e9], dtype=np.float32)


def within_activation_accuracy(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """A float32 activation is within ACTIVATION_EPS·EPS·(1 + |f(x)|) of its exact value
    at every NumPy SIMD level (the derivation: tests/float_bounds.py)."""
    bound = ACTIVATION_EPS * EPS
    np.testing.assert_allclose(got, want, rtol=bound, atol=bound, err_msg=name)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def activation(name: str, generator: np.random.Generator):
    """The activation function `name` (the registry maps names to `rng -> fn` factories)."""
    return ACTIVATIONS[name](generator)


def apply(mlp, x: np.ndarray) -> np.ndarray:
    """Evaluate an MLP; its call may also return a bound on |output| next to the values."""
    out = mlp(x)
    return out[0] if isinstance(out, tuple) else out


def scm(**kw) -> SCMParams:
    return dataclasses.replace(SCMParams(), **kw)


def single(*values) -> Choices:
    return Choices("set", list(values))


def fixed_range(lo, hi=None) -> Choices:
    return Choices("range", [lo, lo if hi is None else hi])


# ---------------------------------------------------------------- activations


def test_activation_registry_keys_equal_the_config_names():
    assert list(ACTIVATIONS) == list(CONFIG_ACTIVATIONS)
    assert set(REFERENCE) | {"random_sine"} == set(CONFIG_ACTIVATIONS)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_activation_matches_its_definition_on_float32_inputs(name):
    fn = activation(name, rng())
    out = fn(GRID.copy())  # activations may overwrite their argument
    assert out.shape == GRID.shape
    assert out.dtype == np.float32, f"{name} returned {out.dtype}"
    within_activation_accuracy(out, REFERENCE[name](GRID.astype(np.float64)), name)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_activation_matches_its_definition_on_2d_batches(name):
    x = rng(1).normal(0.0, 4.0, (64, 32)).astype(np.float32)
    out = activation(name, rng())(x.copy())
    assert out.shape == (64, 32)
    within_activation_accuracy(out, REFERENCE[name](x.astype(np.float64)), name)


@pytest.mark.parametrize("name", list(CONFIG_ACTIVATIONS))
def test_activation_is_finite_for_values_up_to_the_hidden_range(name):
    # Activation inputs are clamped hidden values times a 32-wide weight row: ~1e9 at most.
    out = activation(name, rng())(np.concatenate([GRID, HUGE]))
    assert np.isfinite(out).all(), name


@pytest.mark.parametrize("name", ["tanhshrink", "softplus", "logsigmoid", "silu", "mish", "gelu"])
def test_activation_large_magnitude_limits(name):
    x = np.array([-50.0, 50.0], dtype=np.float32)
    out = activation(name, rng())(x.copy())
    limits = {
        "tanhshrink": [-49.0, 49.0],
        "softplus": [0.0, 50.0],
        "logsigmoid": [-50.0, 0.0],
        "silu": [0.0, 50.0],
        "mish": [0.0, 50.0],
        "gelu": [0.0, 50.0],
    }[name]
    within_activation_accuracy(out, limits, name)


def test_random_sine_parameters_are_frozen():
    fn = activation("random_sine", rng(3))
    x = np.linspace(-10, 10, 501).astype(np.float32)
    first = fn(x.copy())
    second = fn(x.copy())
    np.testing.assert_array_equal(first, second)
    assert np.ptp(first) > 0


def test_random_sine_same_rng_state_gives_same_function():
    x = np.linspace(-10, 10, 501).astype(np.float32)
    np.testing.assert_array_equal(
        activation("random_sine", rng(5))(x.copy()),
        activation("random_sine", rng(5))(x.copy()),
    )


def test_random_sine_different_rngs_give_different_functions():
    x = np.linspace(-10, 10, 501).astype(np.float32)
    outs = [activation("random_sine", rng(s))(x.copy()) for s in range(6)]
    for i in range(len(outs)):
        for j in range(i):
            assert not np.allclose(outs[i], outs[j])


def _sinusoid_count(fn) -> int:
    """Number of sinusoids in a sampled sum of sinusoids: a sum of n real sinusoids with
    distinct frequencies satisfies a linear recurrence of order 2n, so its Hankel matrix
    has rank exactly 2n (sampled in float64 so the rank gap is ~1e-14). 1200 samples and
    a window of 120 keep the smallest true singular value of 60 seeds above 1e-8 of the
    largest, and the SVD at a few milliseconds."""
    y = fn(np.arange(1200) * 0.2)
    hankel = np.lib.stride_tricks.sliding_window_view(y, 120)
    s = np.linalg.svd(hankel, compute_uv=False)
    rank = int((s > 1e-10 * s[0]).sum())
    assert rank % 2 == 0, f"odd Hankel rank {rank}: not a sum of sinusoids"
    return rank // 2


@pytest.mark.parametrize("seed", range(8))
def test_random_sine_is_a_sum_of_3_to_7_sinusoids(seed):
    assert 3 <= _sinusoid_count(activation("random_sine", rng(seed))) <= 7


def test_random_sine_component_counts_cover_the_range():
    counts = {_sinusoid_count(activation("random_sine", rng(s))) for s in range(30)}
    assert counts == {3, 4, 5, 6, 7}


def test_random_sine_frequencies_are_at_most_10():
    # Band limit: no spectral energy above the largest allowed frequency (10 rad/unit).
    for seed in range(10):
        y = activation("random_sine", rng(seed))(np.arange(3000) * 0.2)
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        omega = 2 * np.pi * np.fft.rfftfreq(len(y), 0.2)
        assert spectrum[omega > 11].max() < 1e-3 * spectrum.max()


# ---------------------------------------------------------------- MLPs


def _first_layers(init: str, in_dim: int = 8, emb: int = 32, density=1.0, count=150):
    params = scm(
        initialization_choices=single(init),
        mlp_weight_density_choices=fixed_range(float(density)),
        mlp_num_layers_choices=fixed_range(2),
        activation_choices=single("identity"),
        mlp_emb_dim=emb,
    )
    mlps = build_mlps([(in_dim, 1)] * count, params, rng(11))
    # Only the first layer holds raw initialiser values: later layers may carry the
    # previous activation's scale.
    return np.stack([m.weights[0] for m in mlps])


# Expected std of each initialiser for a (fan_in=8, fan_out=32) layer (torch defaults).
TRUNC_STD = math.sqrt(stats.truncnorm(-2, 2).var())
INIT_STD = {
    "kaiming_normal": math.sqrt(2.0 / 8),
    "kaiming_uniform": math.sqrt(6.0 / 8) / math.sqrt(3.0),
    "xavier_normal": math.sqrt(2.0 / (8 + 32)),
    "xavier_uniform": math.sqrt(6.0 / (8 + 32)) / math.sqrt(3.0),
    "trunc_normal": TRUNC_STD,
}


def test_every_config_initialiser_is_covered():
    assert set(INIT_STD) | {"sparse"} == set(INITIALIZATIONS)


@pytest.mark.parametrize("init", sorted(INIT_STD))
def test_initialiser_std_and_mean(init):
    w = _first_layers(init)
    assert w.shape == (150, 8, 32)
    assert w.dtype == np.float32
    assert abs(w.mean()) < 0.02 * INIT_STD[init]  # 38400 samples: se ≈ 0.005 std
    assert w.std() == pytest.approx(INIT_STD[init], rel=0.02)


@pytest.mark.parametrize("init", ["kaiming_uniform", "xavier_uniform"])
def test_uniform_initialisers_are_bounded_by_their_limit(init):
    w = _first_layers(init)
    bound = math.sqrt(3.0) * INIT_STD[init]
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * bound
    assert stats.kstest(w.ravel()[:20000], stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


@pytest.mark.parametrize("init", ["kaiming_normal", "xavier_normal"])
def test_normal_initialisers_are_gaussian(init):
    w = _first_layers(init).ravel()[:20000]
    assert stats.kstest(w, stats.norm(0, INIT_STD[init]).cdf).pvalue > 1e-3


def test_trunc_normal_stays_within_two_and_is_truncated_gaussian():
    w = _first_layers("trunc_normal").ravel()
    assert np.abs(w).max() <= 2.0
    assert np.abs(w).max() > 1.95
    assert stats.kstest(w[:20000], stats.truncnorm(-2, 2).cdf).pvalue > 1e-3


@pytest.mark.parametrize("in_dim", [8, 5, 1], ids=["fan_in8", "fan_in5", "fan_in1"])
def test_sparse_zeroes_ceil_half_fan_in_per_output_column(in_dim):
    # torch.nn.init.sparse_ on the (in, out) matrix, as the reference stores it: every
    # output unit loses ceil(in / 2) of its inputs, so a 1 → 32 layer is all zero.
    w = _first_layers("sparse", in_dim=in_dim)  # (count, fan_in=in_dim, fan_out=32)
    zeros_per_column = (w == 0).sum(axis=1)
    np.testing.assert_array_equal(zeros_per_column, math.ceil(0.5 * in_dim))
    if in_dim > 1:
        assert w[w != 0].std() == pytest.approx(0.01, rel=0.05)


def test_sparse_last_layer_to_one_output_keeps_half_its_weights():
    # Zeroing half of each row instead zeroed every weight of a 32 → 1 layer: each such
    # decoder output exactly 0, a constant column.
    params = scm(
        initialization_choices=single("sparse"),
        mlp_weight_density_choices=fixed_range(1.0),
        mlp_num_layers_choices=fixed_range(2),
    )
    for mlp in build_mlps([(32, 1)] * 20, params, rng(4)):
        last = mlp.weights[-1]
        assert last.shape == (32, 1) and last.flags.c_contiguous
        assert (last != 0).sum() == 16


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.8])
def test_density_mask_zero_fraction_and_inverse_scaling(rho):
    w = _first_layers("kaiming_normal", density=rho)
    zero_fraction = (w == 0).mean()
    assert zero_fraction == pytest.approx(1 - rho, abs=0.01)
    # Kept weights are divided by rho: their std is the initialiser's std / rho.
    kept = w[w != 0]
    assert kept.std() == pytest.approx(INIT_STD["kaiming_normal"] / rho, rel=0.03)


def test_density_from_a_range_varies_per_mlp():
    params = scm(
        initialization_choices=single("kaiming_normal"),
        mlp_weight_density_choices=Choices("range", [0.3, 1.0]),
        mlp_num_layers_choices=fixed_range(2),
    )
    mlps = build_mlps([(32, 32)] * 60, params, rng(2))
    zero_fraction = np.array([(m.weights[0] == 0).mean() for m in mlps])
    assert zero_fraction.min() < 0.15
    assert zero_fraction.max() > 0.55
    assert zero_fraction.max() < 0.75  # density >= 0.3 → at most ~70 % zeros


def test_layer_count_within_mlp_num_layers_and_all_counts_occur():
    params = scm(mlp_num_layers_choices=Choices("range", [2, 4]))
    mlps = build_mlps([(1, 32)] * 200, params, rng(4))
    counts = [len(m.weights) for m in mlps]
    assert set(counts) == {2, 3, 4}
    for m in mlps:
        assert len(m.activations) == len(m.weights) - 1
        assert len(m.clamps) == len(m.weights) - 1


@pytest.mark.parametrize(
    "dims",
    [(1, 32), (32, 1), (32, 32), (7, 3)],
    ids=["num_encoder", "num_decoder", "cat", "odd"],
)
def test_mlp_shapes_and_output_shape(dims):
    in_dim, out_dim = dims
    params = scm(mlp_emb_dim=16)
    mlps = build_mlps([dims] * 20, params, rng(5))
    x2 = rng(6).normal(size=(50, in_dim)).astype(np.float32)
    for m in mlps:
        widths = [w.shape for w in m.weights]
        assert widths[0] == (in_dim, 16)
        assert widths[-1] == (16, out_dim)
        assert all(s == (16, 16) for s in widths[1:-1])
        out = apply(m, x2)
        assert out.shape == (50, out_dim)
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
        if in_dim == 1:
            np.testing.assert_allclose(apply(m, x2[:, 0].copy()), out, rtol=1e-5, atol=1e-6)


def test_build_mlps_of_nothing_is_empty():
    assert build_mlps([], SCMParams(), rng()) == []


def test_build_mlps_is_deterministic_for_a_given_rng_state():
    x = np.linspace(-3, 3, 40, dtype=np.float32)
    a = build_mlps([(1, 32), (32, 1)], SCMParams(), rng(9))
    b = build_mlps([(1, 32), (32, 1)], SCMParams(), rng(9))
    for ma, mb in zip(a, b, strict=True):
        for wa, wb in zip(ma.weights, mb.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(apply(a[0], x), apply(b[0], x))


@pytest.mark.parametrize("name", list(CONFIG_ACTIVATIONS))
def test_mlp_does_not_modify_its_input(name):
    params = scm(activation_choices=single(name), mlp_num_layers_choices=fixed_range(3))
    (m,) = build_mlps([(32, 32)], params, rng(7))
    x = rng(8).normal(0, 3, (40, 32)).astype(np.float32)
    before = x.copy()
    apply(m, x)
    np.testing.assert_array_equal(x, before)
    (m1,) = build_mlps([(1, 32)], params, rng(7))
    x1 = before[:, 0].copy()
    apply(m1, x1)
    np.testing.assert_array_equal(x1, before[:, 0])


def test_hidden_clamp_bounds_follow_the_activation_scale():
    params = scm(activation_choices=single("identity"), mlp_num_layers_choices=fixed_range(4))
    for m in build_mlps([(1, 32)] * 50, params, rng(3)):
        for bound in m.clamps:
            # clamp(s·a, ±1e6) ⇔ a clamped to ±1e6 / s, s = exp(U(-1, 1)).
            assert bound is not None
            assert HIDDEN_CLAMP / math.e <= bound <= HIDDEN_CLAMP * math.e


def test_identity_mlp_with_huge_input_saturates_at_the_hidden_clamp():
    params = scm(
        activation_choices=single("identity"),
        mlp_num_layers_choices=fixed_range(2),
        mlp_weight_density_choices=fixed_range(1.0),
        initialization_choices=single("kaiming_normal"),
    )
    x = np.array([-1e30, -1e12, 1e12, 1e30], dtype=np.float32)
    for m in build_mlps([(1, 1)] * 20, params, rng(12)):
        out = apply(m, x.copy())
        assert np.isfinite(out).all()
        (bound,) = m.clamps
        w0, w1 = m.weights
        expected = np.clip(x.astype(np.float64)[:, None] * w0[0], -bound, bound) @ w1
        np.testing.assert_allclose(out, expected, rtol=1e-5)
        # Every hidden unit saturates: |out| is the full clamp times |Σ w1|.
        np.testing.assert_allclose(
            np.abs(out[-1, 0]), bound * abs(np.sign(w0[0]) @ w1[:, 0]), rtol=1e-5
        )


# smooth_identity squares its input: beyond ~1e19 that overflows to inf, which the clamp
# then maps to the bound (real inputs stay below ~1e9).
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("name", ["identity", "relu", "abs", "smooth_identity", "selu"])
def test_deep_mlp_with_huge_input_stays_finite_and_bounded(name):
    params = scm(activation_choices=single(name), mlp_num_layers_choices=fixed_range(4))
    x = np.full((3, 32), 1e30, dtype=np.float32)  # the first layer stays finite
    x[1] = -1e30
    x[2, ::2] *= -1
    for m in build_mlps([(32, 1)] * 20, params, rng(13)):
        out = apply(m, x)
        assert np.isfinite(out).all(), name
        last_bound = m.clamps[-1]
        limit = last_bound * np.abs(m.weights[-1]).sum(axis=0)
        assert (np.abs(out) <= limit * (1 + 1e-5)).all()


# ---------------------------------------------------------------- embeddings


def test_build_embeddings_shapes_and_dtype():
    ks = [2, 3, 10, 7]
    tables = build_embeddings(ks, scm(mlp_emb_dim=16), rng(1))
    assert [t.shape for t in tables] == [(k, 16) for k in ks]
    assert all(t.dtype == np.float32 and t.flags.c_contiguous for t in tables)
    assert build_embeddings([], SCMParams(), rng()) == []


def test_embedding_kaiming_normal_uses_the_embedding_width_as_fan_in():
    tables = build_embeddings(
        [50] * 40, scm(initialization_choices=single("kaiming_normal")), rng(2)
    )
    w = np.concatenate(tables)
    assert w.std() == pytest.approx(math.sqrt(2.0 / 32), rel=0.03)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_embedding_sparse_zeroes_ceil_half_k_per_embedding_column(k):
    tables = build_embeddings([k] * 20, scm(initialization_choices=single("sparse")), rng(3))
    for t in tables:
        np.testing.assert_array_equal((t == 0).sum(axis=0), math.ceil(0.5 * k))
