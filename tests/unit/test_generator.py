"""docs/prior.md end to end: a database is a deterministic function of (seed, config), keeps
the RelBench key contract, and every configurable option generates clean tables."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plurel_ray.config import (
    ACTIVATIONS,
    AGGREGATIONS,
    COL_STYPES,
    COL_TRANSFORMS,
    EDGE_WEIGHT_DISTS,
    INITIALIZATIONS,
    PROPAGATION_MODES,
    SOURCE_GEN_TYPES,
    TABLE_AND_SCM_LAYOUTS,
    Choices,
    Config,
    DatabaseParams,
)
from plurel_ray.errors import ConfigError
from plurel_ray.synth.database import generate_database, sample_timeline
from plurel_ray.synth.postprocess import TRANSFORMS, postprocess_columns
from plurel_ray.synth.rng import derive_rng
from plurel_ray.synth.schema import CATEGORICAL, NUMERICAL, ColumnSpec, TableSpec
from plurel_ray.synth.scm import TableSCM, _quantise
from plurel_ray.synth.sql_schema import parse_sql_schema

REPO = Path(__file__).resolve().parents[2]
NAN_RATE = 0.05


def single(*values) -> Choices:
    return Choices("set", list(values))


def with_db(config: Config, **kw) -> Config:
    return dataclasses.replace(
        config, database_params=dataclasses.replace(config.database_params, **kw)
    )


def with_scm(config: Config, **kw) -> Config:
    return dataclasses.replace(config, scm_params=dataclasses.replace(config.scm_params, **kw))


def with_dag(config: Config, **kw) -> Config:
    return dataclasses.replace(config, dag_params=dataclasses.replace(config.dag_params, **kw))


@pytest.fixture(scope="module")
def base(small_config) -> Config:
    """small_config with up to 5 tables (so tables get several parents) and one NaN rate."""
    return with_db(
        small_config,
        num_tables_choices=Choices("range", [3, 5]),
        column_nan_perc_choices=single(NAN_RATE),
    )


def run_python(code: str, env_extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_digest(df) -> str:
    """SHA-256 of a DataFrame's column names, dtypes and exact values."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    for name in df.columns:
        column = df[name]
        h.update(f"{name}:{column.dtype};".encode())
        values = column.to_numpy()
        if values.dtype.kind in "biufmM":
            h.update(np.ascontiguousarray(values).tobytes())
        else:
            h.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())
    return h.hexdigest()


def database_digests(seed: int, config: Config) -> dict[str, str]:
    db = generate_database(seed, config)
    return {name: table_digest(df) for name, df in db.tables.items()}


# ---------------------------------------------------------------- determinism


def _determinism_config(small_config: Config) -> Config:
    # Big enough (up to ~2000 rows) for BLAS to split its matmuls across threads.
    return with_db(
        small_config,
        num_tables_choices=Choices("range", [3, 4]),
        num_rows_entity_table_choices=Choices("range", [300, 500]),
        num_rows_activity_table_choices=Choices("range", [1500, 2000]),
        num_cols_choices=Choices("range", [3, 8]),
    )


DETERMINISM_SEEDS = [3, 11]


def _digests_in_subprocess(config: Config, threads: int) -> dict[str, dict[str, str]]:
    code = (
        textwrap.dedent(
            """
        import json, sys
        import numpy as np
        from plurel_ray.config import Config
        from plurel_ray.synth.database import generate_database
        """
        )
        + inspect.getsource(table_digest)
        + textwrap.dedent(
            f"""
        config = Config.from_json({config.to_json()!r})
        out = {{}}
        for seed in {DETERMINISM_SEEDS!r}:
            db = generate_database(seed, config)
            out[str(seed)] = {{n: table_digest(df) for n, df in db.tables.items()}}
        print(json.dumps(out))
        """
        )
    )
    n = str(threads)
    env = {
        "OPENBLAS_NUM_THREADS": n,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "PYTHONHASHSEED": str(threads * 7919),
    }
    return json.loads(run_python(code, env))


def test_same_seed_gives_identical_tables_across_processes_and_thread_counts(small_config):
    config = _determinism_config(small_config)
    one_thread = _digests_in_subprocess(config, 1)
    two_threads = _digests_in_subprocess(config, 2)
    here = {str(s): database_digests(s, config) for s in DETERMINISM_SEEDS}
    assert one_thread == two_threads
    assert here == one_thread


def test_same_seed_in_one_process_is_identical(base):
    assert database_digests(5, base) == database_digests(5, base)


def test_different_seeds_give_different_databases(base):
    digests = [database_digests(seed, base) for seed in range(6)]
    for i in range(len(digests)):
        for j in range(i):
            a, b = digests[i], digests[j]
            assert a != b
            shared = set(a) & set(b)
            assert not any(a[name] == b[name] for name in shared)


def test_derive_rng_is_stable_across_processes():
    paths = [(0, "timeline"), (12345, "table", "table_3", "fk", "foreign_row_0"), (7, "a", 3, "b")]
    code = textwrap.dedent(
        f"""
        from plurel_ray.synth.rng import derive_rng
        for seed, *path in {paths!r}:
            print(derive_rng(seed, *path).integers(0, 2**62, size=4).tolist())
        """
    )
    lines = [run_python(code, {"PYTHONHASHSEED": str(k)}).split("\n") for k in (1, 2)]
    assert lines[0] == lines[1]
    here = [
        str(derive_rng(seed, *path).integers(0, 2**62, size=4).tolist()) for seed, *path in paths
    ]
    assert lines[0][: len(paths)] == here


# ---------------------------------------------------------------- derive_rng


def _first_draws(seed: int, *path) -> tuple:
    return tuple(derive_rng(seed, *path).integers(0, 2**62, size=3).tolist())


def test_derive_rng_same_path_gives_same_stream():
    assert _first_draws(3, "table", "table_1", "noise") == _first_draws(
        3, "table", "table_1", "noise"
    )


def test_derive_rng_different_paths_and_seeds_differ():
    cases = [
        (0, ("a",)), (0, ("b",)), (0, ("a", "b")), (0, ("b", "a")), (0, ("a", "a")),
        (0, (1,)), (0, (2,)), (0, ("1",)), (0, ("table", 1)), (0, ("table", 2)),
        (1, ("a",)), (2, ("a",)), (0, ("table", "table_1", "rows")),
        (0, ("table", "table_1", "columns")), (0, ("table", "table_10", "rows")),
    ]  # fmt: skip
    draws = [_first_draws(seed, *path) for seed, path in cases]
    assert len(set(draws)) == len(cases)


@pytest.mark.parametrize(
    "a,b",
    [
        ((7,), (7, 0)),
        ((7, "x"), (7, "x", 0)),
        ((7, 2**32), (7, 0, 1)),
        ((2**32 + 5, "timeline"), (5, 1, "timeline")),
    ],
    ids=["trailing_zero", "trailing_zero_after_str", "big_int_vs_two_ints", "big_seed"],
)
def test_derive_rng_paths_that_differ_give_different_streams(a, b):
    # SeedSequence pads its entropy with zeros to 4 words and splits big ints into
    # 32-bit words, so unframed parts collide: these distinct paths must not share a
    # stream (see rng.py's promise that components do not share streams).
    assert _first_draws(*a) != _first_draws(*b)


@pytest.mark.parametrize(
    "seed,path,error",
    [
        (0, (-1,), ValueError),
        (-1, ("a",), ValueError),
        (0, (True,), TypeError),
        (True, ("a",), TypeError),
        (0, (1.5,), TypeError),
        (0, (None,), TypeError),
        (0, (b"x",), TypeError),
    ],
    ids=["negative_part", "negative_seed", "bool_part", "bool_seed", "float", "none", "bytes"],
)
def test_derive_rng_rejects_bad_parts(seed, path, error):
    with pytest.raises(error):
        derive_rng(seed, *path)


# ---------------------------------------------------------------- contract


def check_database(db, config: Config, exact_nan_rate: float | None = NAN_RATE) -> None:
    """The RelBench key contract and the post-processing guarantees of the prior."""
    params = config.database_params
    names = list(db.tables)
    assert sorted(names) == sorted(f"table_{i}" for i in range(len(names)))
    assert names == [spec.name for spec in db.schema.tables]
    position = {name: i for i, name in enumerate(names)}
    referenced = {parent for spec in db.schema.tables for _, parent in spec.fkeys}
    lo, hi = db.timeline.min_timestamp, db.timeline.max_timestamp
    for spec in db.schema.tables:
        df = db.tables[spec.name]
        n = len(df)
        assert spec.is_activity == (spec.name not in referenced)
        row_range = (
            params.num_rows_activity_table_choices
            if spec.is_activity
            else params.num_rows_entity_table_choices
        ).value
        assert row_range[0] <= n <= row_range[1]
        # primary key
        assert spec.pkey == "row_idx"
        assert df.columns[0] == "row_idx"
        assert df["row_idx"].dtype == np.int64
        np.testing.assert_array_equal(df["row_idx"].to_numpy(), np.arange(n))
        # foreign keys: foreign_row_k to parents in ascending table index
        parents = [parent for _, parent in spec.fkeys]
        assert [col for col, _ in spec.fkeys] == [f"foreign_row_{k}" for k in range(len(parents))]
        assert parents == sorted(parents, key=lambda t: int(t.split("_")[1]))
        assert len(set(parents)) == len(parents)
        for col, parent in spec.fkeys:
            assert position[parent] < position[spec.name]  # parents generated first
            keys = df[col].to_numpy()
            assert keys.dtype == np.int64
            assert keys.min() >= 0
            assert keys.max() < len(db.tables[parent])
        # features: a subset (constant booleans dropped) of feature_j, in order
        declared = [c.name for c in spec.features]
        assert declared == [f"feature_{j}" for j in range(len(declared))]
        features = [c for c in df.columns if c.startswith("feature_")]
        assert features == [c for c in declared if c in features]
        expected_columns = ["row_idx", *(c for c, _ in spec.fkeys), *features]
        # time column
        if spec.is_activity:
            assert spec.time_col == "date"
            expected_columns.append("date")
            dates = df["date"]
            assert pd.api.types.is_datetime64_any_dtype(dates)
            assert dates.is_monotonic_increasing
            assert dates.iloc[0] == lo
            assert dates.iloc[-1] == hi
            steps = np.diff(dates.to_numpy().astype("datetime64[ns]").astype(np.int64))
            assert steps.max() - steps.min() <= 1000  # evenly spaced, to 1 µs rounding
        else:
            assert spec.time_col is None
            assert "date" not in df.columns
        assert list(df.columns) == expected_columns
        # feature values
        kinds = {c.name: c.stype for c in spec.features}
        nan_counts = set()
        for name in features:
            column = df[name]
            if kinds[name] == NUMERICAL:
                assert column.dtype == np.float64, (spec.name, name, column.dtype)
                values = column.to_numpy()
                assert not np.isinf(values).any()
                nan_counts.add(int(np.isnan(values).sum()))
            else:
                assert column.dtype == bool, (spec.name, name, column.dtype)
                assert column.nunique() == 2  # constant booleans are dropped
        assert len(nan_counts) <= 1  # one NaN rate per table
        if nan_counts:
            (count,) = nan_counts
            if exact_nan_rate is not None:
                assert count == math.floor(exact_nan_rate * n)
            else:
                p_lo, p_hi = params.column_nan_perc_choices.value
                assert math.floor(p_lo * n) <= count <= math.floor(p_hi * n)


@pytest.mark.parametrize("seed", range(20))
def test_random_databases_keep_the_relbench_key_contract(small_config, seed):
    config = with_db(small_config, num_tables_choices=Choices("range", [3, 6]))
    check_database(generate_database(seed, config), config, exact_nan_rate=None)


def test_tables_get_several_parents_somewhere(base):
    # Guard against the contract test passing vacuously on chains only.
    fkey_counts = [
        len(spec.fkeys)
        for seed in range(20)
        for spec in generate_database(seed, base).schema.tables
    ]
    assert max(fkey_counts) >= 2
    assert 0 in fkey_counts


# ---------------------------------------------------------------- timeline


@pytest.mark.parametrize("splits", [(0.8, 0.9), (0.5, 0.75), (0.1, 0.2)])
def test_timeline_follows_the_day_arithmetic_of_spec(splits):
    config = dataclasses.replace(Config(), val_split=splits[0], test_split=splits[1])
    start = pd.Timestamp(config.database_params.min_timestamp)
    end = pd.Timestamp(config.database_params.max_timestamp)
    for seed in range(300):
        t = sample_timeline(config, derive_rng(seed, "timeline"))
        assert start <= t.min_timestamp < t.max_timestamp < end
        for ts in (t.min_timestamp, t.max_timestamp, t.val_timestamp, t.test_timestamp):
            assert ts == ts.normalize()  # whole days
        length = (t.max_timestamp - t.min_timestamp).days + 1
        assert t.val_timestamp == t.min_timestamp + pd.Timedelta(
            days=math.floor(length * splits[0])
        )
        assert t.test_timestamp == t.min_timestamp + pd.Timedelta(
            days=math.floor(length * splits[1])
        )
        assert t.min_timestamp <= t.val_timestamp < t.test_timestamp <= t.max_timestamp


def test_timeline_spans_vary_with_the_seed():
    config = Config()
    spans = {sample_timeline(config, derive_rng(s, "timeline")).min_timestamp for s in range(20)}
    assert len(spans) == 20


def test_generated_database_uses_the_timeline_of_its_seed(base):
    db = generate_database(4, base)
    assert db.timeline == sample_timeline(base, derive_rng(4, "timeline"))


def test_timeline_too_short_for_two_days_is_a_config_error():
    config = with_db(Config(), min_timestamp="2020-01-01", max_timestamp="2020-01-02")
    with pytest.raises(ConfigError):
        sample_timeline(config, derive_rng(0, "timeline"))


# ---------------------------------------------------------------- every option

OPTIONS = (
    [("database_params", "table_layout_choices", v) for v in TABLE_AND_SCM_LAYOUTS]
    + [("scm_params", "scm_layout_choices", v) for v in TABLE_AND_SCM_LAYOUTS]
    + [("scm_params", "activation_choices", v) for v in ACTIVATIONS]
    + [("scm_params", "initialization_choices", v) for v in INITIALIZATIONS]
    + [("scm_params", "source_gen_type_choices", v) for v in SOURCE_GEN_TYPES]
    + [("scm_params", "propagation_agg_choices", v) for v in AGGREGATIONS]
    + [("scm_params", "propagation_mode_choices", v) for v in PROPAGATION_MODES]
    + [("scm_params", "col_stype_choices", v) for v in COL_STYPES]
    + [("database_params", "col_transform_choices", v) for v in COL_TRANSFORMS]
    + [("dag_params", "edge_weight_dist_choices", v) for v in EDGE_WEIGHT_DISTS]
)


def _option_id(option) -> str:
    _, field, value = option
    return f"{field.removesuffix('_choices')}={value}"


@pytest.mark.parametrize("option", OPTIONS, ids=[_option_id(o) for o in OPTIONS])
def test_every_single_option_generates_a_clean_database(base, option):
    group, field, value = option
    config = {"database_params": with_db, "scm_params": with_scm, "dag_params": with_dag}[group](
        base, **{field: single(value)}
    )
    for seed in (0, 1):
        db = generate_database(seed, config)
        check_database(db, config)
        if field == "col_stype_choices":
            wanted = bool if value == CATEGORICAL else np.float64
            for df in db.tables.values():
                assert all(df[c].dtype == wanted for c in df.columns if c.startswith("feature_"))
        if value == "rank_uniform":
            for df in db.tables.values():
                for c in df.columns:
                    if c.startswith("feature_") and df[c].dtype == np.float64:
                        scaled = df[c].dropna().to_numpy() * (len(df) + 1)
                        np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-6)
                        assert len(np.unique(np.round(scaled))) == len(scaled)


@pytest.mark.parametrize("mode", PROPAGATION_MODES)
def test_categorical_columns_come_out_boolean_in_both_modes(base, mode):
    config = with_scm(
        base,
        propagation_mode_choices=single(mode),
        col_stype_choices=single(CATEGORICAL),
    )
    booleans = 0
    for seed in range(4):
        db = generate_database(seed, config)
        check_database(db, config)
        for df in db.tables.values():
            features = [c for c in df.columns if c.startswith("feature_")]
            assert all(df[c].dtype == bool for c in features)
            booleans += len(features)
    assert booleans > 0


# ---------------------------------------------------------------- lazy quantisation


def _quantise_params(permute: float, reverse: float):
    return dataclasses.replace(
        Config().scm_params,
        cat_label_permute_prob_choices=Choices("range", [permute, permute]),
        cat_label_reverse_prob_choices=Choices("range", [reverse, reverse]),
    )


@pytest.mark.parametrize("k", [2, 3, 7])
def test_quantise_counts_boundaries_exceeded(k):
    column = np.random.default_rng(k).normal(size=400).astype(np.float32)
    for seed in range(5):
        classes = _quantise(column, k, _quantise_params(0.0, 0.0), np.random.default_rng(seed))
        assert classes.dtype == np.int64
        assert classes.min() >= 0
        assert classes.max() <= k - 1
        order = np.argsort(column)
        assert (np.diff(classes[order]) >= 0).all()  # monotone in the value
        assert classes[order[0]] == 0  # nothing is below the minimum
        # k-1 boundaries are values of the column: each class step sits on one of them.
        steps = np.flatnonzero(np.diff(classes[order]))
        assert len(steps) <= k - 1


def test_quantise_reverse_flips_the_class_order():
    column = np.random.default_rng(1).normal(size=300).astype(np.float32)
    plain = _quantise(column, 5, _quantise_params(0.0, 0.0), np.random.default_rng(2))
    flipped = _quantise(column, 5, _quantise_params(0.0, 1.0), np.random.default_rng(2))
    np.testing.assert_array_equal(flipped, 4 - plain)


def test_quantise_permutation_is_a_relabelling():
    column = np.random.default_rng(1).normal(size=2000).astype(np.float32)
    relabelled = False
    for seed in range(5):
        plain = _quantise(column, 6, _quantise_params(0.0, 0.0), np.random.default_rng(seed))
        permuted = _quantise(column, 6, _quantise_params(1.0, 0.0), np.random.default_rng(seed))
        # Same partition of rows, labels mapped one-to-one.
        mapping = dict(zip(plain.tolist(), permuted.tolist(), strict=True))
        assert len(set(mapping.values())) == len(mapping)
        np.testing.assert_array_equal(np.vectorize(mapping.get)(plain), permuted)
        relabelled |= not np.array_equal(plain, permuted)
    assert relabelled


# ---------------------------------------------------------------- SQL schema input

DDL = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tier ENUM('gold', 'silver', 'bronze'),
    city TEXT,
    joined DATE,
    score REAL
);
CREATE TABLE orders (
    oid INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(id),
    amount REAL,
    status ENUM('open', 'closed'),
    flag BOOLEAN
);
"""


@pytest.mark.parametrize("mode", PROPAGATION_MODES)
def test_sql_schema_labels_keys_and_time_columns(small_config, mode):
    schema = parse_sql_schema(DDL)
    config = with_db(
        with_scm(
            small_config, num_categories_choices=single(3), propagation_mode_choices=single(mode)
        ),
        column_nan_perc_choices=single(NAN_RATE),
    )
    seen = {"tier": set(), "city": set(), "status": set()}
    for seed in range(6):
        db = generate_database(seed, config, schema=schema)
        assert list(db.tables) == ["users", "orders"]
        users, orders = db.tables["users"], db.tables["orders"]
        np.testing.assert_array_equal(users["id"].to_numpy(), np.arange(len(users)))
        np.testing.assert_array_equal(orders["oid"].to_numpy(), np.arange(len(orders)))
        fk = orders["user_id"].to_numpy()
        assert fk.dtype == np.int64
        assert fk.min() >= 0
        assert fk.max() < len(users)
        assert set(users["tier"]) <= {"gold", "silver", "bronze"}
        assert set(users["city"]) <= {"city_0", "city_1", "city_2"}
        assert set(orders["status"]) <= {"open", "closed"}
        for name, df in (("tier", users), ("city", users), ("status", orders)):
            seen[name] |= set(df[name])
        if "flag" in orders.columns:
            assert orders["flag"].dtype == bool
        for df, column in ((users, "score"), (orders, "amount")):
            assert df[column].dtype == np.float64
            assert df[column].isna().sum() == math.floor(NAN_RATE * len(df))
        # DATE column of the entity table and `date` of the activity table are timelines.
        for df, time_col in ((users, "joined"), (orders, "date")):
            dates = df[time_col]
            assert pd.api.types.is_datetime64_any_dtype(dates)
            assert dates.is_monotonic_increasing
            assert dates.iloc[0] == db.timeline.min_timestamp
            assert dates.iloc[-1] == db.timeline.max_timestamp
        assert "date" not in users.columns
    assert all(len(labels) >= 2 for labels in seen.values()), seen


# ---------------------------------------------------------------- post-processing


def test_transform_registry_matches_the_config_names():
    assert set(TRANSFORMS) == set(COL_TRANSFORMS)


def transform(name: str, x: np.ndarray, seed: int = 0) -> np.ndarray:
    return TRANSFORMS[name](x, np.random.default_rng(seed))


def test_rank_uniform_ranks_each_tie_group_in_row_order_from_a_random_member():
    x = np.array([3.0, 1.0, 3.0, 2.0, -5.0, 3.0])
    # -5 → 0, 1 → 1, 2 → 2; the three 3s (rows 0, 2, 5) take ranks 3, 4, 5 in row order
    # starting at one of them and wrapping around.
    rotations = {(0, 2, 5), (2, 5, 0), (5, 0, 2)}
    seen = set()
    for seed in range(30):
        ranks = transform("rank_uniform", x, seed) * 7.0 - 1.0
        np.testing.assert_allclose(ranks[[4, 1, 3]], [0, 1, 2], atol=1e-12)
        rows_by_rank = tuple(int(r) for r in np.argsort(ranks)[3:])
        assert rows_by_rank in rotations
        seen.add(rows_by_rank)
    assert seen == rotations


def test_rank_uniform_ties_neither_follow_rows_nor_shift_other_draws():
    # A column of two values in random rows: ties by row order gave |Spearman(rank,
    # row)| ≈ 0.5; one cut per group leaves about a third of that on average.
    rng = np.random.default_rng(1)
    n = 3000
    trends = []
    for seed in range(20):
        x = rng.integers(0, 2, n).astype(np.float64)
        out = transform("rank_uniform", x, seed)
        np.testing.assert_allclose(np.sort(out), np.arange(1, n + 1) / (n + 1))
        trends.append(abs(np.corrcoef(out, np.arange(n))[0, 1]))
    assert np.mean(trends) < 0.3
    # Untied values draw nothing from the tie generator.
    ties = np.random.default_rng(5)
    TRANSFORMS["rank_uniform"](rng.normal(size=50), ties)
    assert ties.random() == np.random.default_rng(5).random()


def test_rank_uniform_of_random_values_is_a_permutation_of_the_grid():
    x = np.random.default_rng(0).normal(size=101)
    out = transform("rank_uniform", x)
    np.testing.assert_allclose(np.sort(out), np.arange(1, 102) / 102.0)
    np.testing.assert_array_equal(np.argsort(out), np.argsort(x))


def test_standardize_divides_by_max_std_and_1e_8():
    x = np.array([1.0, 2.0, 4.0, 9.0])
    out = transform("standardize", x)
    np.testing.assert_allclose(out, (x - x.mean()) / x.std())
    assert out.mean() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(transform("standardize", np.full(5, 7.0)), np.zeros(5))
    tiny = np.array([0.0, 1e-9])  # std 5e-10 < 1e-8
    np.testing.assert_allclose(transform("standardize", tiny), [-0.05, 0.05])


def test_log_and_sqrt_preserve_the_sign():
    x = np.array([-9.0, -1.0, 0.0, 0.25, 4.0, 1e6])
    np.testing.assert_allclose(transform("log", x), np.sign(x) * np.log1p(np.abs(x)))
    np.testing.assert_allclose(transform("sqrt", x), [-3.0, -1.0, 0.0, 0.5, 2.0, 1e3])
    np.testing.assert_allclose(transform("log", np.array([-math.e + 1, math.e - 1])), [-1.0, 1.0])
    np.testing.assert_array_equal(transform("identity", x), x)


def _post(columns, values, categories, transform="identity", nan=NAN_RATE, seed=0):
    params = DatabaseParams(
        column_nan_perc_choices=single(nan), col_transform_choices=single(transform)
    )
    rng, ties = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    return postprocess_columns(columns, values, categories, params, rng, ties)


def test_postprocess_implants_exactly_floor_p_n_nans_per_float_column():
    n = 203
    columns = [ColumnSpec(f"feature_{j}", NUMERICAL) for j in range(4)]
    values = [np.random.default_rng(j).normal(size=n).astype(np.float32) for j in range(4)]
    out = _post(columns, values, [0] * 4, nan=0.07)
    masks = []
    for name in out:
        assert out[name].dtype == np.float64
        assert np.isnan(out[name]).sum() == math.floor(0.07 * n)
        masks.append(np.isnan(out[name]))
    assert any(not np.array_equal(masks[0], m) for m in masks[1:])  # rows vary per column


@pytest.mark.parametrize("transform", COL_TRANSFORMS)
def test_postprocess_transforms_before_implanting_nans(transform):
    n = 150
    x = np.random.default_rng(3).normal(size=n).astype(np.float32)
    (out,) = _post(
        [ColumnSpec("feature_0", NUMERICAL)], [x], [0], transform=transform, nan=0.1
    ).values()
    kept = ~np.isnan(out)
    full = TRANSFORMS[transform](x.astype(np.float64), np.random.default_rng(1))
    np.testing.assert_allclose(out[kept], full[kept], rtol=1e-12)
    assert (~kept).sum() == 15


def test_postprocess_categories_become_booleans_labels_or_are_dropped():
    n = 50
    rng = np.random.default_rng(0)
    columns = [
        ColumnSpec("feature_0", CATEGORICAL, 3),
        ColumnSpec("feature_1", CATEGORICAL, 2),
        ColumnSpec("feature_2", CATEGORICAL, 4),
        ColumnSpec("tier", CATEGORICAL, 3, labels=("gold", "silver", "bronze")),
        ColumnSpec("city", CATEGORICAL, None, text=True),
        ColumnSpec("feature_3", NUMERICAL),
    ]
    ints = rng.integers(0, 3, n)
    values = [
        ints,
        np.zeros(n, dtype=np.int64),  # constant → dropped
        np.full(n, 3, dtype=np.int64),  # constant True → dropped
        ints,
        ints,
        rng.normal(size=n).astype(np.float32),
    ]
    out = _post(columns, values, [3, 2, 4, 3, 3, 0])
    assert list(out) == ["feature_0", "tier", "city", "feature_3"]
    np.testing.assert_array_equal(out["feature_0"], ints > 0)
    assert out["feature_0"].dtype == bool
    np.testing.assert_array_equal(out["tier"], np.array(["gold", "silver", "bronze"])[ints])
    np.testing.assert_array_equal(out["city"], np.array(["city_0", "city_1", "city_2"])[ints])
    # String labels are kept even when only one label occurs.
    (single_label,) = _post(columns[3:4], [np.zeros(n, dtype=np.int64)], [3]).values()
    assert set(single_label) == {"gold"}


# ---------------------------------------------------------------- aggregation


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_streaming_aggregation_matches_the_elementwise_definition(mode):
    from scipy import special

    from plurel_ray.synth.aggregate import Accumulator

    rng = np.random.default_rng(0)
    terms = [rng.normal(0, 30, (64, 8)).astype(np.float32) for _ in range(5)]
    terms[1][0, 0] = 1e4  # logsumexp must not overflow
    acc = Accumulator(mode, (64, 8))
    for term in terms:
        acc.add(term)
    stacked = np.stack(terms).astype(np.float64)
    expected = {
        "sum": stacked.sum(axis=0),
        "max": stacked.max(axis=0),
        "product": stacked.prod(axis=0),
        "logexp": special.logsumexp(stacked, axis=0),
    }[mode]
    np.testing.assert_allclose(acc.result(), expected, rtol=1e-5, atol=1e-3)
    assert np.isfinite(acc.result()).all()


def test_table_digest_sees_every_value(base):
    db = generate_database(0, base)
    assert table_digest(db.tables["table_0"].copy()) == table_digest(db.tables["table_0"])
    for df in db.tables.values():
        changed = df.copy()
        changed.loc[changed.index[3], "row_idx"] = -1
        assert table_digest(changed) != table_digest(df)
        for name in df.columns:
            if df[name].dtype == np.float64:
                nudged = df.copy()
                value = nudged[name].fillna(0.0).to_numpy()
                nudged[name] = np.nextafter(value, np.inf)  # one ulp, NaNs become numbers
                assert table_digest(nudged) != table_digest(df)


@pytest.mark.parametrize("layout", ["ErdosRenyi", "RandomTree", "Layered"])
def test_scm_builds_and_computes_only_the_columns_and_their_ancestors(base, layout):
    spec = TableSpec(
        "t", "id", (), tuple(ColumnSpec(f"c{i}", NUMERICAL) for i in range(3)), None, False
    )
    params = dataclasses.replace(
        base.scm_params,
        scm_layout_choices=single(layout),
        scm_col_node_perc_choices=single(0.2),  # many more nodes than columns
    )
    scm = TableSCM.build(spec, 64, [], [0, 0, 0], params, base.dag_params, 5, ("t",))
    dag = scm.dag
    assert scm.needed.tolist() == dag.ancestors(scm.col_nodes).tolist()
    assert not scm.needed.all()  # 18 nodes for 3 columns: some have no path to a column
    computed = {v for v in range(dag.num_nodes) if scm.needed[v] and dag.parents(v).size}
    assert set(scm.decoders) == set(scm.noise_tables) == computed
    assert set(scm.edge_encoders) == set(np.flatnonzero(scm.needed[dag.dst]).tolist())
    sources = {v for v in np.flatnonzero(scm.needed).tolist() if not dag.parents(v).size}
    assert set(scm.source_kinds) == sources
    columns = scm.propagate(params, [])
    assert [c.shape for c in columns] == [(64,)] * 3
    assert all(np.isfinite(c).all() for c in columns)


@pytest.mark.parametrize("enabled", [True, False])
def test_generation_leaves_the_garbage_collector_as_it_found_it(small_config, enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        generate_database(0, small_config)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
