"""The fused Rust MLP kernels (`_native.mlp_accumulate`, `mlp_forward`,
`table_accumulate`) reproduce the NumPy path: `RandomMLP.__call__`, the `Encoder` term
clamp and `Accumulator.add`, for all 29 activations and 4 aggregations.

Every comparison holds to a bound derived from float32 arithmetic and the kernels'
documented accuracy (`float_bounds`), not to a number tuned on one CPU: it must hold at
every SIMD level of both sides, which `test_simd_levels.py` checks by rerunning this
module under each level the machine has."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from float_bounds import (
    ACTIVATION_EPS,
    EPS,
    TRIG_ABS_ERR,
    activation_error,
    assert_within,
    gamma,
    mlp_error,
)
from scipy import special

from plurel_ray import _native
from plurel_ray.config import ACTIVATIONS, AGGREGATIONS, Choices, SCMParams
from plurel_ray.synth.activations import ACTIVATIONS as ACTIVATION_FACTORIES
from plurel_ray.synth.aggregate import Accumulator
from plurel_ray.synth.mlp import RandomMLP, build_mlps
from plurel_ray.synth.scm import TERM_CLAMP

SINE_SLOTS = 7
# Caller-initialised accumulators: the identity of each aggregation.
START = {"sum": 0.0, "max": -np.inf, "product": 1.0, "logexp": -np.inf}


def sine_params(fn) -> np.ndarray:
    """One act_params row: random_sine's amplitudes, freqs, phases (zeros otherwise)."""
    row = np.zeros(3 * SINE_SLOTS, np.float32)
    if hasattr(fn, "amplitudes"):
        k = len(fn.amplitudes)
        row[:k], row[SINE_SLOTS : SINE_SLOTS + k] = fn.amplitudes, fn.freqs
        row[2 * SINE_SLOTS : 2 * SINE_SLOTS + k] = fn.phases
    return row


def kernel_args(mlp: RandomMLP, name: str) -> tuple:
    """(weights, act_ids, act_params, clamps) of an MLP built with one activation."""
    hidden = len(mlp.weights) - 1
    act_ids = np.full(hidden, ACTIVATIONS.index(name), np.uint8)
    act_params = np.stack([sine_params(fn) for fn in mlp.activations]).reshape(hidden, -1)
    return mlp.weights, act_ids, act_params, np.asarray(mlp.clamps)


def build(name: str, count: int, dims=(1, 32), seed: int = 0) -> list[RandomMLP]:
    params = dataclasses.replace(SCMParams(), activation_choices=Choices("set", [name]))
    return build_mlps([dims] * count, params, np.random.default_rng(seed))


def numpy_terms(mlp: RandomMLP, x: np.ndarray) -> np.ndarray:
    out = mlp(x.copy())
    return np.clip(out, -TERM_CLAMP, TERM_CLAMP)


def native_terms(mlp: RandomMLP, name: str, x: np.ndarray) -> np.ndarray:
    acc = np.zeros((len(x), mlp.weights[-1].shape[1]), np.float32)
    _native.mlp_accumulate(x, *kernel_args(mlp, name), float(TERM_CLAMP), 0, acc)
    return acc


def numpy_aggregate(mode: str, terms: list[np.ndarray]) -> np.ndarray:
    acc = Accumulator(mode, terms[0].shape)
    for term in terms:
        acc.add(term)
    return acc.result()


def term_error(mlp: RandomMLP, name: str, x: np.ndarray) -> np.ndarray:
    """Bound on |native - NumPy| of an Encoder term: the MLP's, through the 1-Lipschitz
    term clamp (which also caps it at twice the clamp)."""
    return np.minimum(mlp_error(mlp, name, x), 2 * TERM_CLAMP)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_numpy_within_float32_accuracy(name):
    # 1x1 identity layers around the activation: mlp_forward returns act(h) itself.
    h = np.concatenate(
        [np.linspace(-50, 50, 20001), [0.0, -0.0, 1e-30, -1e-30, 1e-8, 0.5, -0.5, 3.0, -3.0]]
    ).astype(np.float32)
    fn = ACTIVATION_FACTORIES[name](np.random.default_rng(3))
    ones = [np.ones((1, 1), np.float32)] * 2
    ids = np.array([ACTIVATIONS.index(name)], np.uint8)
    got = _native.mlp_forward(h[:, None], ones, ids, sine_params(fn)[None], [np.inf])[:, 0]
    want = fn(h.copy())
    # Each side within ACTIVATION_EPS·EPS·(1 + |f(h)|) of the exact value.
    assert_within(got, want, activation_error(name, fn, h, np.zeros(len(h))), name)


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_stay_accurate_to_1e4(name):
    h = np.linspace(-1e4, 1e4, 400_001).astype(np.float32)
    ids = np.array([ACTIVATIONS.index(name)], np.uint8)
    ones = [np.ones((1, 1), np.float32)] * 2
    got = _native.mlp_forward(h[:, None], ones, ids, np.zeros((1, 21), np.float32), [np.inf])
    want = getattr(np, name)(h.astype(np.float64))
    # fastmath's documented absolute error, against the float64 value.
    assert_within(got[:, 0], want, TRIG_ABS_ERR, name)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_mlp_accumulate_matches_numpy_encoder(name):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(300) * 3).astype(np.float32)
    for mlp in build(name, 6):
        assert_within(
            native_terms(mlp, name, x), numpy_terms(mlp, x), term_error(mlp, name, x), name
        )


PERIODIC = ("sin", "cos", "random_sine")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_mlp_accumulate_matches_numpy_on_large_inputs(name):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(200) * 1e3, [1e3, -1e3]])
    if name not in PERIODIC:
        # sin/cos are only specified to |argument| <= 1e4; beyond, the kernel returns a
        # deterministic bounded value that need not match NumPy.
        x = np.concatenate([x, [1e6, -1e6]])
    x = x.astype(np.float32)
    # The bound grows with the inputs: random_sine after a matmul of ~1e4-sized values
    # is chaotic (its Lipschitz constant Σ|a_k f_k| times a γ_n·1e4 matmul difference).
    for mlp in build(name, 4, seed=3):
        assert_within(
            native_terms(mlp, name, x), numpy_terms(mlp, x), term_error(mlp, name, x), name
        )


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_every_aggregation_matches_numpy(mode):
    rng = np.random.default_rng(4)
    x = [(rng.standard_normal(257) * 2).astype(np.float32) for _ in range(4)]
    # random_sine is left out: its chaos would swamp the aggregation's own error.
    names = ["tanh", "gelu", "sin", "softplus"]
    mlps = [build(name, 1, seed=k)[0] for k, name in enumerate(names)]
    terms = [numpy_terms(m, xi) for m, xi in zip(mlps, x, strict=True)]
    errors = [term_error(m, n, xi) for m, n, xi in zip(mlps, names, x, strict=True)]
    magnitudes = [np.abs(t.astype(np.float64)) for t in terms]
    agg = AGGREGATIONS.index(mode)
    acc = np.full((257, 32), START[mode], np.float32)
    acc2 = np.zeros_like(acc)
    for m, name, xi in zip(mlps, names, x, strict=True):
        _native.mlp_accumulate(xi, *kernel_args(m, name), float(TERM_CLAMP), agg, acc, acc2)
    if mode == "logexp":
        got, want = acc + np.log(acc2), special.logsumexp(np.stack(terms), axis=0)
    else:
        got, want = acc, numpy_aggregate(mode, terms)
    assert_within(got, want, fold_error(mode, errors, magnitudes, want), mode)


def fold_error(mode: str, errors: list, magnitudes: list, result: np.ndarray) -> np.ndarray:
    """Bound on |native - NumPy| of folding K terms, from bounds on the terms' differences:
    sum adds them plus both sides' rounding (γ_K·Σ|t|); max is 1-Lipschitz per term;
    product carries each term's difference times the others' magnitudes, plus γ_K·|∏|;
    log-sum-exp is 1-Lipschitz in the max norm, plus exp and log on each side (K + 1
    functions within ACTIVATION_EPS·EPS, relative to 1 + |result|)."""
    k = len(errors)
    result = np.abs(result.astype(np.float64))
    if mode == "sum":
        return sum(errors) + 2 * gamma(k) * sum(magnitudes)
    if mode == "max":
        return np.maximum.reduce(errors)
    if mode == "product":
        carried = sum(
            e * np.prod([m for j, m in enumerate(magnitudes) if j != i], axis=0)
            for i, e in enumerate(errors)
        )
        return carried + 2 * gamma(k) * result
    return np.maximum.reduce(errors) + 2 * (k + 1) * ACTIVATION_EPS * EPS * (1 + result)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_table_accumulate_folds_indexed_rows(mode):
    rng = np.random.default_rng(5)
    tables = [rng.standard_normal((k, 32)).astype(np.float32) for k in (3, 11)]
    idx = [rng.integers(0, len(t), 100) for t in tables]
    agg = AGGREGATIONS.index(mode)
    acc = np.full((100, 32), START[mode], np.float32)
    acc2 = np.zeros_like(acc)
    for t, i in zip(tables, idx, strict=True):
        _native.table_accumulate(t, i, agg, acc, acc2)
    terms = [t[i] for t, i in zip(tables, idx, strict=True)]
    if mode == "logexp":
        got, want = acc + np.log(acc2), special.logsumexp(np.stack(terms), axis=0)
        zero = [np.zeros(want.shape)] * len(terms)  # the same float32 terms on both sides
        assert_within(got, want, fold_error(mode, zero, zero, want), mode)
    else:
        np.testing.assert_array_equal(acc, numpy_aggregate(mode, terms))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "sin", "gelu", "identity"])
def test_mlp_forward_matches_random_mlp_on_2d_input(name):
    rng = np.random.default_rng(6)
    h = (rng.standard_normal((101, 32)) * 2).astype(np.float32)
    for dims in ((32, 32), (32, 1)):
        for mlp in build(name, 3, dims=dims, seed=7):
            want = mlp(h.copy())
            got = _native.mlp_forward(h, *kernel_args(mlp, name))
            assert got.shape == want.shape and got.dtype == np.float32
            assert_within(got, want, mlp_error(mlp, name, h), f"{name} {dims}")


def test_same_inputs_give_identical_bytes():
    x = (np.random.default_rng(8).standard_normal(1000) * 50).astype(np.float32)
    mlp = build("mish", 1)[0]
    runs = []
    for _ in range(2):
        acc, acc2 = np.full((1000, 32), -np.inf, np.float32), np.zeros((1000, 32), np.float32)
        _native.mlp_accumulate(x, *kernel_args(mlp, "mish"), 1e4, 3, acc, acc2)
        runs.append(acc.tobytes() + acc2.tobytes())
    assert runs[0] == runs[1]


def test_empty_input_is_a_no_op():
    mlp = build("tanh", 1)[0]
    acc = np.zeros((0, 32), np.float32)
    _native.mlp_accumulate(np.zeros(0, np.float32), *kernel_args(mlp, "tanh"), 1e4, 0, acc)
    out = _native.mlp_forward(np.zeros((0, 1), np.float32), *kernel_args(mlp, "tanh"))
    assert out.shape == (0, 32)


def valid_call() -> dict:
    w = [np.ones((1, 4), np.float32), np.ones((4, 3), np.float32)]
    return dict(
        x=np.ones(5, np.float32),
        weights=w,
        act_ids=np.zeros(1, np.uint8),
        act_params=np.zeros((1, 21), np.float32),
        clamps=np.array([1e6]),
        term_clamp=1e4,
        agg=0,
        acc=np.zeros((5, 3), np.float32),
    )


def _fortran_second_layer():
    return [np.ones((1, 4), np.float32), np.ones((3, 4), np.float32).T]


BAD_CALLS = {
    "x must have dtype float32": dict(x=np.ones(5)),
    "x must be 1-D": dict(x=np.ones((5, 1), np.float32)),
    "x must be C-contiguous": dict(x=np.ones(10, np.float32)[::2]),
    "x must be a numpy array": dict(x=[1.0] * 5),
    r"weights\[1\] must be C-contiguous": dict(weights=_fortran_second_layer()),
    r"weights\[1\] must have dtype float32": dict(
        weights=[np.ones((1, 4), np.float32), np.ones((4, 3))]
    ),
    r"weights\[1\] has 5 input rows": dict(
        weights=[np.ones((1, 4), np.float32), np.ones((5, 3), np.float32)]
    ),
    r"widths must be in 1..=64": dict(
        weights=[np.ones((1, 65), np.float32), np.ones((65, 3), np.float32)]
    ),
    "at least one layer": dict(
        weights=[], act_ids=np.zeros(0, np.uint8), act_params=np.zeros((0, 21), np.float32)
    ),
    "act_ids must have dtype uint8": dict(act_ids=np.zeros(1, np.int64)),
    "act_ids has 2 entries": dict(act_ids=np.zeros(2, np.uint8)),
    "activation id 29 is out of range": dict(act_ids=np.array([29], np.uint8)),
    r"act_params must have shape \(len\(weights\) - 1, 21\)": dict(
        act_params=np.zeros((1, 20), np.float32)
    ),
    r"clamps\[0\] is -1": dict(clamps=np.array([-1.0])),
    "clamps has 2 entries": dict(clamps=[1.0, 2.0]),
    "term_clamp is NaN": dict(term_clamp=float("nan")),
    r"agg must be 0 \(sum\)": dict(agg=4),
    r"acc must have shape \(5, 3\)": dict(acc=np.zeros((5, 4), np.float32)),
    "acc must have dtype float32": dict(acc=np.zeros((5, 3))),
    "needs acc2": dict(agg=3),
    "1 input row": dict(weights=[np.ones((2, 4), np.float32), np.ones((4, 3), np.float32)]),
}


@pytest.mark.parametrize("message", list(BAD_CALLS))
def test_invalid_mlp_accumulate_raises_value_error(message):
    call = valid_call() | BAD_CALLS[message]
    acc_before = call["acc"].copy()
    with pytest.raises(ValueError, match=message):
        _native.mlp_accumulate(**call)
    assert np.array_equal(call["acc"], acc_before)


def test_acc_must_be_writeable_and_not_overlap_inputs():
    call = valid_call()
    call["acc"].flags.writeable = False
    with pytest.raises(ValueError, match=r"acc.*writeable"):
        _native.mlp_accumulate(**call)
    shared = np.zeros((5, 3), np.float32)
    call = valid_call() | dict(x=shared[:, 0].copy(), acc=shared, agg=3, acc2=shared)
    with pytest.raises(ValueError, match="acc2"):
        _native.mlp_accumulate(**call)


def test_invalid_table_accumulate_raises_value_error():
    table, acc = np.ones((3, 2), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"idx\[2\] = 3 is out of range for a table of 3"):
        _native.table_accumulate(table, np.array([0, 1, 3, 2]), 0, acc)
    with pytest.raises(ValueError, match=r"idx\[0\] = -1"):
        _native.table_accumulate(table, np.array([-1, 1, 0, 2]), 0, acc)
    assert not acc.any()
    with pytest.raises(ValueError, match="idx must have dtype int64"):
        _native.table_accumulate(table, np.array([0, 1, 0, 2], np.int32), 0, acc)
    with pytest.raises(ValueError, match="needs acc2"):
        _native.table_accumulate(table, np.array([0, 1, 0, 2]), 3, acc)
    with pytest.raises(ValueError, match=r"acc must have shape \(4, 2\)"):
        _native.table_accumulate(table, np.array([0, 1, 0, 2]), 0, acc[:3])


def test_invalid_mlp_forward_raises_value_error():
    call = valid_call()
    args = (call["weights"], call["act_ids"], call["act_params"], call["clamps"])
    with pytest.raises(ValueError, match="h has 2 columns but weights"):
        _native.mlp_forward(np.ones((5, 2), np.float32), *args)
    with pytest.raises(ValueError, match="h must be 2-D"):
        _native.mlp_forward(np.ones(5, np.float32), *args)


def test_init_layers_is_deterministic_and_validates_its_arguments():
    tables = np.arange(3 * 65536, dtype=np.float32)
    args = (
        tables,
        np.array([0, 65536], dtype=np.uint32),
        np.ones(2, dtype=np.float32),
        np.array([65536, 0], dtype=np.uint32),  # keep everything / keep nothing
        np.array([False, False]),
        4,
        8,
    )
    a = _native.init_layers(11, *args)
    assert a.shape == (2, 32)
    assert np.array_equal(a, _native.init_layers(11, *args))
    assert not np.array_equal(a, _native.init_layers(12, *args))
    assert (a[0] < 65536).all() and (a[0] > 0).any()
    assert (a[1] == 0).all()
    bad_offset = (tables, np.array([5, 0], dtype=np.uint32), *args[2:])
    with pytest.raises(ValueError, match="table offset"):
        _native.init_layers(1, *bad_offset)
    with pytest.raises(ValueError, match="one entry per layer"):
        _native.init_layers(1, tables, args[1][:1], *args[2:])


def test_dense_accumulate_folds_rows_and_validates_shapes():
    term = np.arange(12, dtype=np.float32).reshape(3, 4)
    acc = np.ones((3, 4), np.float32)
    _native.dense_accumulate(term, 0, acc)  # sum
    np.testing.assert_array_equal(acc, term + 1)
    _native.dense_accumulate(np.full((3, 4), 5.0, np.float32), 1, acc)  # max
    np.testing.assert_array_equal(acc, np.maximum(term + 1, 5))
    with pytest.raises(ValueError, match="acc"):
        _native.dense_accumulate(term, 0, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="acc2"):
        _native.dense_accumulate(term, 3, np.zeros((3, 4), np.float32))


def test_encoding_distinct_values_once_gives_the_per_row_terms():
    from plurel_ray.synth.scm import Distinct, Encoder

    column = np.repeat(np.array([-3.0, 0.5, 7.0], np.float32), 40)
    distinct = Distinct.of(column)
    assert distinct is not None
    np.testing.assert_array_equal(distinct.values[distinct.index], column)
    assert Distinct.of(np.arange(100, dtype=np.float32)) is None  # all distinct
    for mlp in build("tanh", 3):
        encoder = Encoder(mlp=mlp)
        per_row = Accumulator("sum", (len(column), 32))
        encoder.accumulate_into(per_row, column)
        deduplicated = Accumulator("sum", (len(column), 32))
        encoder.accumulate_into(deduplicated, column, distinct)
        # The same kernel on the same values, gathered instead of recomputed: same bits.
        np.testing.assert_array_equal(deduplicated.result(), per_row.result())
