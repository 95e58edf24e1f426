"""The table SCM: node noise is Beta(alpha, beta)/32, sources follow their generators, and the
bipartite HSBM assigns foreign keys along its strong (wrapped-diagonal) blocks."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from plurel_ray.config import Choices, SCMParams
from plurel_ray.synth.hsbm import (
    Hierarchy,
    assign_parents,
    block_bounds,
    block_clusters,
    level_matrix,
    sample_hierarchy,
)
from plurel_ray.synth.noise import TABLE_SIZE, add_noise, beta_quantile_tables
from plurel_ray.synth.sources import categorical_source, numerical_source

SOURCE_KINDS = ("ts", "uniform", "gaussian", "beta", "mixed")


def draw_noise(table, generator, shape):
    """Noise draws alone: `add_noise` on zeros, without a clamp."""
    h = np.zeros(shape, dtype=np.float32)
    add_noise(h, table, generator, math.inf)
    return h


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def scm(**kw) -> SCMParams:
    return dataclasses.replace(SCMParams(), **kw)


def single(*values) -> Choices:
    return Choices("set", list(values))


def fixed(value: float) -> Choices:
    return Choices("range", [value, value])


def table_for(alpha: float, beta: float, scale: float = 1.0) -> np.ndarray:
    return beta_quantile_tables(np.array([alpha]), np.array([beta]), scale)[0]


# ---------------------------------------------------------------- noise

BETA_PARAMS = [(0.5, 0.5), (0.5, 5.0), (5.0, 0.5), (5.0, 5.0), (1.0, 1.0), (2.0, 3.0), (0.7, 4.2)]


@pytest.mark.parametrize("alpha,beta", BETA_PARAMS, ids=[f"a{a}_b{b}" for a, b in BETA_PARAMS])
def test_noise_draws_pass_a_ks_test_against_the_exact_beta(alpha, beta):
    draws = draw_noise(table_for(alpha, beta), rng(1), (20000, 1)).ravel()
    assert stats.kstest(draws, stats.beta(alpha, beta).cdf).pvalue > 1e-3


@pytest.mark.parametrize("alpha,beta", BETA_PARAMS, ids=[f"a{a}_b{b}" for a, b in BETA_PARAMS])
def test_quantile_table_cdf_is_within_2e_3_of_the_exact_beta(alpha, beta):
    table = table_for(alpha, beta)
    assert table.shape == (TABLE_SIZE,)
    assert (np.diff(table) >= 0).all()
    assert table[0] >= 0.0
    assert table[-1] <= 1.0
    midpoints = (np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE
    cdf_error = np.abs(stats.beta(alpha, beta).cdf(table.astype(np.float64)) - midpoints)
    assert cdf_error.max() < 2e-3


def test_quantile_tables_of_many_nodes_match_tables_built_one_by_one():
    alpha = np.array([0.5, 1.3, 4.9])
    beta = np.array([5.0, 0.6, 2.2])
    together = beta_quantile_tables(alpha, beta, 1.0 / 32)
    assert together.shape == (3, TABLE_SIZE)
    assert together.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(together[i], table_for(alpha[i], beta[i], 1.0 / 32))


def test_noise_is_scaled_by_one_over_the_embedding_width():
    unscaled = table_for(2.0, 3.0)
    scaled = table_for(2.0, 3.0, 1.0 / 32)
    np.testing.assert_allclose(scaled, unscaled / 32, rtol=1e-6)
    draws = draw_noise(scaled, rng(2), (5000, 32))
    assert draws.min() >= 0.0
    assert draws.max() <= 1.0 / 32
    assert draws.mean() == pytest.approx(2.0 / 5.0 / 32, rel=0.01)


def test_add_noise_adds_table_draws_in_place_clamps_and_rejects_bad_input():
    table = table_for(1.5, 2.5, 1.0 / 32)
    before = table.copy()
    draws = draw_noise(table, rng(3), (17, 32))
    assert draws.shape == (17, 32) and draws.dtype == np.float32
    assert np.isin(draws, table).all()
    h = np.full((17, 32), 5.0, dtype=np.float32)
    add_noise(h, table, rng(3), math.inf)
    np.testing.assert_array_equal(h, np.float32(5.0) + draws)  # same draws, added
    clamped = np.full((17, 32), 5.0, dtype=np.float32)
    add_noise(clamped, table, rng(3), 1.0)
    assert (clamped == 1.0).all()
    np.testing.assert_array_equal(table, before)
    with pytest.raises(ValueError):
        add_noise(np.zeros((4, 32)), table, rng(3), 1.0)  # float64
    with pytest.raises(ValueError):
        add_noise(np.zeros((4, 32), np.float32), table[:100], rng(3), 1.0)


def test_noise_is_reproducible_from_the_rng_state_and_differs_across_rngs():
    table = table_for(1.5, 2.5)
    a = draw_noise(table, rng(4), (100, 32))
    np.testing.assert_array_equal(a, draw_noise(table, rng(4), (100, 32)))
    assert not np.array_equal(a, draw_noise(table, rng(5), (100, 32)))
    generator = rng(6)
    assert not np.array_equal(
        draw_noise(table, generator, (100, 32)), draw_noise(table, generator, (100, 32))
    )


def test_noise_uses_every_table_entry_uniformly():
    table = table_for(1.0, 1.0)  # Beta(1, 1): strictly increasing, so values give indices
    assert (np.diff(table) > 0).all()
    draws = draw_noise(table, rng(7), (409600, 1)).ravel()
    index = np.searchsorted(table, draws)
    np.testing.assert_array_equal(table[index], draws)
    counts = np.bincount(index, minlength=TABLE_SIZE)
    assert stats.chisquare(counts).pvalue > 1e-3


# ---------------------------------------------------------------- numerical sources


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("activity", [False, True], ids=["entity", "activity"])
def test_numerical_source_shape_dtype_finite_and_deterministic(kind, activity):
    params = SCMParams()
    for seed in range(10):
        values = numerical_source(kind, params, 300, activity, rng(seed))
        assert values.shape == (300,)
        assert values.dtype == np.float64
        assert np.isfinite(values).all()
        np.testing.assert_array_equal(
            values, numerical_source(kind, params, 300, activity, rng(seed))
        )


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "beta", "mixed"])
@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_non_ts_sources_stay_within_zero_and_the_value_scale(kind, scale):
    params = scm(ts_value_scale_choices=single(scale))
    for seed in range(10):
        values = numerical_source(kind, params, 2000, seed % 2 == 0, rng(seed))
        assert values.min() >= 0.0
        assert values.max() < scale
        assert np.ptp(values) > 0


def test_uniform_source_is_uniform_between_its_extremes():
    params = scm(ts_value_scale_choices=single(10.0))
    values = numerical_source("uniform", params, 20000, True, rng(8))
    lo, hi = values.min(), values.max()
    assert stats.kstest(values, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def test_gaussian_source_is_centred_and_clipped_at_two_sigma():
    params = scm(ts_value_scale_choices=single(10.0))
    for seed in range(4):
        values = numerical_source("gaussian", params, 40000, False, rng(seed))
        lo, hi = values.min(), values.max()
        width = hi - lo
        # N(mid, (high-low)/4) clipped to [low, high]: P(clipped at each end) = Φ(-2).
        assert (values == lo).mean() == pytest.approx(stats.norm.cdf(-2), abs=0.005)
        assert (values == hi).mean() == pytest.approx(stats.norm.cdf(-2), abs=0.005)
        assert values.mean() == pytest.approx((lo + hi) / 2, abs=0.01 * width)
        # std of N(0, 1) clipped at ±2 is 0.9594, so std / (high - low) = 0.2398.
        assert values.std() / width == pytest.approx(0.9594 / 4, abs=0.006)


@pytest.mark.parametrize("a,b", [(2.0, 5.0), (5.0, 2.0), (0.5, 0.5)])
def test_beta_source_has_the_shape_of_beta_a_b(a, b):
    # low + (high-low)·Beta(a, b): skewness and kurtosis do not depend on low and high.
    params = scm(
        ts_value_scale_choices=single(10.0),
        source_beta_alpha_choices=fixed(a),
        source_beta_beta_choices=fixed(b),
    )
    values = numerical_source("beta", params, 40000, False, rng(9))
    expected = stats.beta(a, b)
    assert stats.skew(values) == pytest.approx(float(expected.stats(moments="s")), abs=0.06)
    assert stats.kurtosis(values) == pytest.approx(float(expected.stats(moments="k")), abs=0.12)


def _ts_params(**kw) -> SCMParams:
    return scm(activity_table_ts_noise_scale=0.0, **kw)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
def test_ts_trend_is_the_power_law_of_row_position(alpha, direction):
    # Cycle scale 0 and no noise leave value = (trend + 2·low) / 3 with
    # trend = min(±(i/n)^alpha + low, high): 3·|value - value[0]| = min((i/n)^alpha, high - low).
    params = _ts_params(
        ts_trend_alpha_choices=fixed(alpha),
        activity_table_ts_trend_scale_choices=single(direction),
        activity_table_ts_cycle_scale_choices=single(0),
        ts_value_scale_choices=single(100.0),
    )
    n = 500
    position = np.arange(n) / n
    for seed in range(5):
        values = numerical_source("ts", params, n, True, rng(seed))
        rise = 3.0 * direction * (values - values[0])
        cap = np.inf if direction < 0 else rise.max()
        np.testing.assert_allclose(rise, np.minimum(position**alpha, cap), rtol=1e-9, atol=1e-9)
        assert 0.0 <= values[0] < 100.0  # value[0] = low


def test_ts_cycle_is_a_clipped_half_wave_with_period_two_f():
    # n = 201, f = 0.25 → F = ceil(50.25) = 51; sin(π i / F) has period 2F = 102 and is
    # negative (clipped to low, the value at i = 0) for F < i < 2F.
    params = _ts_params(
        activity_table_ts_trend_scale_choices=single(0),
        activity_table_ts_cycle_scale_choices=single(1),
        ts_cycle_freq_perc_choices=single(0.25),
        ts_value_scale_choices=single(1.0),
    )
    for seed in range(5):
        v = numerical_source("ts", params, 201, True, rng(seed))
        np.testing.assert_allclose(v[:99], v[102:201], atol=1e-12)
        np.testing.assert_array_equal(v[52:102], v[0])
        np.testing.assert_allclose(v[1:51], v[50:0:-1], atol=1e-12)  # symmetric half wave
        assert v[25] > v[0]  # sin(π·25/51) ≈ 1 > low


def test_ts_cycle_period_uses_the_ceiling_of_n_times_f():
    # Value scale 0.01 keeps [low, high] below 0.01, under every |sin| value at integer
    # rows that are not multiples of F, so the clip only hides the sign of the wave.
    params = _ts_params(
        activity_table_ts_trend_scale_choices=single(0),
        activity_table_ts_cycle_scale_choices=single(-1),
        ts_cycle_freq_perc_choices=single(0.1),
        ts_value_scale_choices=single(0.01),
    )
    # n = 95, f = 0.1 → F = ceil(9.5) = 10: -sin(π i / 10) > 0 exactly for 10 < i < 20.
    for seed in range(3):
        v = numerical_source("ts", params, 95, True, rng(seed))
        positive = v > v[0]
        np.testing.assert_array_equal(positive, (np.arange(95) % 20) > 10)


def test_entity_ts_is_flat_trend_and_cycle_plus_clipped_noise():
    # Entity tables: trend = cycle = low, noise sigma = 1 clipped to [low, high], so every
    # value lies in [low, (2·low + high) / 3] and the minimum is low.
    scale = 1.0
    params = scm(ts_value_scale_choices=single(scale))
    for seed in range(10):
        v = numerical_source("ts", params, 2000, False, rng(seed))
        low = v.min()
        assert low >= 0.0
        assert v.max() <= (2 * low + scale) / 3 + 1e-12
        assert np.ptp(v) > 0


def _lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def test_ts_noise_is_ar1_with_rho():
    def lag1(rho: float, seed: int) -> float:
        params = scm(ts_ar_rho_choices=fixed(rho), ts_value_scale_choices=single(1.0))
        return _lag1(numerical_source("ts", params, 4000, False, rng(seed)))

    for seed in range(3):
        assert abs(lag1(0.0, seed)) < 0.1
        assert lag1(0.9, seed) > 0.5


def test_mixed_source_combines_several_generators():
    # Each part draws its own [low, high]; a mixture of 2-3 parts spans more than a
    # single part does on average, and different rows come from different parts.
    params = scm(ts_value_scale_choices=single(1.0))
    spans = [np.ptp(numerical_source("mixed", params, 3000, True, rng(s))) for s in range(30)]
    single_spans = [
        np.ptp(numerical_source("uniform", params, 3000, True, rng(s))) for s in range(30)
    ]
    assert np.mean(spans) > np.mean(single_spans) + 0.1


# ---------------------------------------------------------------- categorical sources


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("k", [2, 3, 10])
def test_categorical_source_gives_int_categories_in_range(kind, k):
    for seed, activity in itertools.product(range(4), (False, True)):
        values = categorical_source(kind, k, SCMParams(), 500, activity, rng(seed))
        assert values.shape == (500,)
        assert values.dtype == np.int64
        assert values.min() >= 0
        assert values.max() < k


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "beta", "mixed"])
def test_iid_categorical_source_has_stable_dirichlet_frequencies(kind):
    n, k = 20000, 4
    deviations = []
    for seed in range(6):
        values = categorical_source(kind, k, SCMParams(), n, True, rng(seed))
        first = np.bincount(values[: n // 2], minlength=k) / (n // 2)
        second = np.bincount(values[n // 2 :], minlength=k) / (n // 2)
        assert np.abs(first - second).max() < 0.03  # i.i.d.: no drift along rows
        deviations.append(np.abs(first - 1 / k).max())
    # Dirichlet(1, …, 1) probabilities are far from uniform for most draws.
    assert max(deviations) > 0.1


def test_ts_categorical_source_uses_every_category():
    params = scm(ts_value_scale_choices=single(1.0))
    for seed in range(5):
        values = categorical_source("ts", 5, params, 5000, seed % 2 == 0, rng(seed))
        assert set(np.unique(values)) == set(range(5))


def test_ts_categorical_source_samples_from_the_softmax_of_its_series():
    # Entity series (no trend, no cycle) at value scale 0.01 are nearly equal, so the
    # softmax is uniform to ~0.1 %: frequencies ≈ 1/k (an argmax would pick one
    # category, i.i.d. Dirichlet probabilities would be far from uniform).
    params = scm(ts_value_scale_choices=single(0.01))
    for seed in range(3):
        values = categorical_source("ts", 4, params, 20000, False, rng(seed))
        np.testing.assert_allclose(np.bincount(values, minlength=4) / 20000, 0.25, atol=0.015)


# ---------------------------------------------------------------- HSBM


@pytest.mark.parametrize(
    "n,blocks,expected",
    [
        (10, 4, [0, 3, 6, 9, 10]),
        (9, 3, [0, 3, 6, 9]),
        (7, 1, [0, 7]),
        (5, 9, [0, 1, 2, 3, 4, 5, 5, 5, 5, 5]),
        (3000, 9, [0, 334, 668, 1002, 1336, 1670, 2004, 2338, 2672, 3000]),
    ],
)
def test_block_bounds_cut_contiguous_blocks_of_ceil_n_over_blocks(n, blocks, expected):
    np.testing.assert_array_equal(block_bounds(n, blocks), expected)


def test_block_bounds_properties_for_many_sizes():
    for n, blocks in itertools.product(range(1, 60), range(1, 28)):
        bounds = block_bounds(n, blocks)
        sizes = np.diff(bounds)
        assert len(bounds) == blocks + 1
        assert bounds[0] == 0
        assert bounds[-1] == n
        assert (sizes >= 0).all()
        full = math.ceil(n / blocks)
        nonempty = sizes[sizes > 0]
        assert (nonempty[:-1] == full).all()
        assert 0 < nonempty[-1] <= full
        # Empty blocks only trail.
        assert (sizes[len(nonempty) :] == 0).all()


def test_block_clusters_are_mixed_radix_digits_coarsest_level_first():
    np.testing.assert_array_equal(
        block_clusters((2, 3)), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    )
    np.testing.assert_array_equal(block_clusters((3,)), [[0], [1], [2]])
    for clusters in [(1, 3, 2), (3, 3, 3), (2, 1, 2, 3), (1,)]:
        digits = block_clusters(clusters)
        assert digits.shape == (math.prod(clusters), len(clusters))
        assert ((digits >= 0) & (digits < np.array(clusters))).all()
        radix = np.array([math.prod(clusters[level + 1 :]) for level in range(len(clusters))])
        np.testing.assert_array_equal(digits @ radix, np.arange(len(digits)))


@pytest.mark.parametrize("rows,cols", list(itertools.product([1, 2, 3], [1, 2, 3])))
def test_level_matrix_is_strong_on_the_wrapped_diagonal_and_weak_elsewhere(rows, cols):
    matrix = level_matrix(rows, cols, rng(rows * 10 + cols))
    assert matrix.shape == (rows, cols)
    strong = {(i % rows, i % cols) for i in range(max(rows, cols))}
    for i, j in itertools.product(range(rows), range(cols)):
        if (i, j) in strong:
            assert matrix[i, j] == 0.9
        else:
            assert 0.001 <= matrix[i, j] < 0.002


def test_level_matrix_weak_entries_are_random():
    a, b = level_matrix(3, 2, rng(1)), level_matrix(3, 2, rng(2))
    assert not np.array_equal(a, b)


def test_sample_hierarchy_levels_and_cluster_counts_follow_the_choices():
    params = SCMParams()
    levels = set()
    for seed in range(200):
        h = sample_hierarchy(params, rng(seed))
        assert len(h.parent_clusters) == len(h.child_clusters)
        assert 1 <= len(h.parent_clusters) <= 5
        assert all(1 <= c <= 3 for c in h.parent_clusters + h.child_clusters)
        levels.add(len(h.parent_clusters))
    assert levels == {1, 2, 3, 4, 5}
    fixed_params = scm(
        bi_hsbm_levels_choices=single(2), bi_hsbm_clusters_per_level_choices=single(3)
    )
    assert sample_hierarchy(fixed_params, rng()) == Hierarchy((3, 3), (3, 3))


@pytest.mark.parametrize("seed", range(5))
def test_assign_parents_gives_int64_rows_in_range(seed):
    generator = rng(seed)
    for _ in range(20):
        levels = int(generator.integers(1, 4))
        h = Hierarchy(
            tuple(int(c) for c in generator.integers(1, 4, levels)),
            tuple(int(c) for c in generator.integers(1, 4, levels)),
        )
        n_parent, n_child = int(generator.integers(1, 300)), int(generator.integers(0, 500))
        parents = assign_parents(n_parent, n_child, h, generator)
        assert parents.shape == (n_child,)
        assert parents.dtype == np.int64
        if n_child:
            assert parents.min() >= 0
            assert parents.max() < n_parent


def _same_cluster_share(h: Hierarchy, n_parent: int, n_child: int, seed: int) -> np.ndarray:
    """Per child block, the share of its rows whose parent lies in the strong block."""
    parents = assign_parents(n_parent, n_child, h, rng(seed))
    p_blocks = math.prod(h.parent_clusters)
    c_blocks = math.prod(h.child_clusters)
    parent_block = np.searchsorted(block_bounds(n_parent, p_blocks), parents, side="right") - 1
    child_block = (
        np.searchsorted(block_bounds(n_child, c_blocks), np.arange(n_child), side="right") - 1
    )
    p_digits, c_digits = block_clusters(h.parent_clusters), block_clusters(h.child_clusters)
    shares = []
    for b in range(c_blocks):
        chosen = p_digits[parent_block[child_block == b]]
        # Strong at every level: parent digit == child digit modulo the parent radix when
        # the parent side has fewer clusters (wrapped diagonal: (i mod rows, i mod cols)).
        strong = np.ones(len(chosen), dtype=bool)
        for level, (pc, cc) in enumerate(zip(h.parent_clusters, h.child_clusters, strict=True)):
            pairs = {(i % pc, i % cc) for i in range(max(pc, cc))}
            strong &= np.array([(p, c_digits[b, level]) in pairs for p in chosen[:, level]])
        shares.append(strong.mean())
    return np.array(shares)


@pytest.mark.parametrize("seed", range(3))
def test_children_pick_parents_in_their_strong_cluster(seed):
    # One level, 3x3 clusters: 0.9 vs ~0.0015 off the diagonal → ~99.7 % same cluster.
    shares = _same_cluster_share(Hierarchy((3,), (3,)), 300, 3000, seed)
    assert (shares > 0.9).all()
    # And that cluster is the matching contiguous block of rows.
    parents = assign_parents(300, 3000, Hierarchy((3,), (3,)), rng(seed))
    for c in range(3):
        picked = parents[c * 1000 : (c + 1) * 1000]
        assert ((picked >= c * 100) & (picked < (c + 1) * 100)).mean() > 0.9


@pytest.mark.parametrize(
    "h",
    [
        Hierarchy((2,), (3,)),
        Hierarchy((3,), (2,)),
        Hierarchy((2, 3), (2, 3)),
        Hierarchy((3, 1), (1, 2)),
    ],
    ids=["2x3", "3x2", "two_levels", "uneven_levels"],
)
def test_strong_blocks_dominate_for_non_square_and_multi_level_hierarchies(h):
    shares = _same_cluster_share(h, 600, 6000, 1)
    assert (shares > 0.9).all()


def test_parent_rows_are_uniform_inside_the_chosen_block():
    parents = assign_parents(300, 30000, Hierarchy((3,), (3,)), rng(4))
    first_block = parents[:10000]
    inside = first_block[first_block < 100]
    counts = np.bincount(inside, minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_empty_parent_blocks_get_no_children():
    # 4 parent rows in 9 base blocks: blocks 4..8 are empty; children whose strong block
    # is empty fall back to the weak blocks, never to a row that does not exist.
    h = Hierarchy((3, 3), (3, 3))
    for seed in range(5):
        parents = assign_parents(4, 9000, h, rng(seed))
        assert parents.min() >= 0
        assert parents.max() < 4
        # Children of blocks 0..3 still find their own (single-row) strong block.
        for b in range(4):
            assert (parents[b * 1000 : (b + 1) * 1000] == b).mean() > 0.9


def test_fewer_child_rows_than_blocks():
    h = Hierarchy((3, 3), (3, 3))
    parents = assign_parents(50, 5, h, rng(1))
    assert parents.shape == (5,)
    assert ((parents >= 0) & (parents < 50)).all()
    assert assign_parents(50, 0, h, rng(1)).shape == (0,)
