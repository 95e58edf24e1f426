"""Config: reference defaults, sampling, serialisation round trips, hashing and validation."""

import dataclasses
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from plurel_ray.config import (
    ACTIVATIONS,
    AGGREGATIONS,
    COL_TRANSFORMS,
    CONFIG_SCHEMA_VERSION,
    EDGE_WEIGHT_DISTS,
    INITIALIZATIONS,
    PROPAGATION_MODES,
    SOURCE_GEN_TYPES,
    TABLE_AND_SCM_LAYOUTS,
    Choices,
    Config,
    DAGParams,
    DatabaseParams,
    SCMParams,
)
from plurel_ray.errors import ConfigError
from plurel_ray.synth.sampling import sample_many, sample_set_indices

REPO = Path(__file__).resolve().parents[2]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def r(lo, hi) -> Choices:
    return Choices(kind="range", value=[lo, hi])


def s(*values) -> Choices:
    return Choices(kind="set", value=list(values))


# ---- defaults ----


def test_defaults_match_spec():
    c = Config()
    db, scm, dag = c.database_params, c.scm_params, c.dag_params
    assert db.table_layout_choices == s("BarabasiAlbert", "ReverseRandomTree", "WattsStrogatz")
    assert db.num_tables_choices == r(3, 20)
    assert db.num_rows_entity_table_choices == r(500, 1000)
    assert db.num_rows_activity_table_choices == r(2000, 5000)
    assert db.num_cols_choices == r(3, 40)
    assert (db.min_timestamp, db.max_timestamp) == ("1990-01-01", "2025-01-01")
    assert db.column_nan_perc_choices == r(0.01, 0.1)
    assert db.col_transform_choices.value == COL_TRANSFORMS
    assert scm.scm_layout_choices.value == TABLE_AND_SCM_LAYOUTS
    assert len(scm.activation_choices.value) == len(ACTIVATIONS) == 29
    assert scm.activation_choices.value[-3:] == ("signed_log1p", "smooth_identity", "random_sine")
    assert scm.initialization_choices.value == INITIALIZATIONS
    assert scm.num_categories_choices == r(2, 10)
    assert scm.scm_col_node_perc_choices == r(0.3, 0.9)
    assert scm.node_noise_alpha_choices == scm.node_noise_beta_choices == r(0.5, 5.0)
    assert (scm.bi_hsbm_levels_choices, scm.bi_hsbm_clusters_per_level_choices) == (
        r(1, 5),
        r(1, 3),
    )
    assert scm.ts_trend_alpha_choices == r(0.0, 2.0)
    assert scm.ts_trend_alpha_choices.is_int_range is False
    assert scm.activity_table_ts_trend_scale_choices == s(-1, 1)
    assert scm.ts_cycle_freq_perc_choices.value == (
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
    )
    assert (scm.entity_table_ts_trend_scale, scm.entity_table_ts_cycle_scale) == (0.0, 0.0)
    assert (scm.activity_table_ts_noise_scale, scm.entity_table_ts_noise_scale) == (0.05, 1.0)
    assert scm.ts_ar_rho_choices == r(0.0, 0.9)
    assert scm.ts_value_scale_choices == s(0.01, 0.1, 1, 10, 100)
    assert scm.propagation_agg_choices.value == AGGREGATIONS
    assert (scm.mlp_in_dim, scm.mlp_out_dim, scm.mlp_emb_dim) == (1, 1, 32)
    assert scm.mlp_num_layers_choices == r(2, 4)
    assert scm.mlp_weight_density_choices == r(0.3, 1.0)
    assert scm.source_gen_type_choices.value == SOURCE_GEN_TYPES
    assert scm.propagation_mode_choices.value == PROPAGATION_MODES
    assert scm.cat_label_permute_prob_choices == r(0.3, 1.0)
    assert scm.cat_label_reverse_prob_choices == r(0.2, 0.8)
    assert (dag.ba_sink_edge_dropout, dag.ba_flip_leaf_edge_prob) == (0.4, 0.0)
    assert (dag.ba_max_in_degree, dag.ba_m, dag.layered_edge_dropout_p) == (4, 2, 0.1)
    assert dag.er_p_choices == r(0.3, 0.8)
    assert dag.ws_rewire_p_choices == r(0.1, 0.3)
    assert dag.layered_depth_choices == r(2, 8)
    assert dag.edge_weight_dist_choices.value == EDGE_WEIGHT_DISTS
    assert (c.val_split, c.test_split, c.cache_dir, c.schema_file) == (0.8, 0.9, None, None)


def test_original_api_call_works_and_is_hashable():
    c = Config(
        database_params=DatabaseParams(num_tables_choices=Choices(kind="range", value=[5, 10])),
        schema_file="schema.sql",
        cache_dir="~/.cache/plurel",
    )
    assert c.database_params.num_tables_choices.value == (5, 10)
    assert c.schema_file == "schema.sql" and c.cache_dir == "~/.cache/plurel"
    assert hash(c) == hash(dataclasses.replace(c))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.val_split = 0.5  # type: ignore[misc]


# ---- Choices and sampling ----


def test_int_range_sampling_is_uniform_and_inclusive():
    g = rng(1)
    assert type(r(3, 6).sample(g)) is int
    counts = Counter(r(3, 6).sample(g) for _ in range(4000))
    assert set(counts) == {3, 4, 5, 6}
    assert all(900 < n < 1100 for n in counts.values())


def test_float_range_sampling_stays_in_half_open_interval():
    g = rng(2)
    xs = [r(0.5, 1.5).sample(g) for _ in range(2000)]
    assert all(type(x) is float and 0.5 <= x < 1.5 for x in xs)
    assert min(xs) < 0.55 and max(xs) > 1.45


def test_set_sampling_picks_every_element_as_itself():
    g = rng(3)
    picks = Counter(s("a", 2, 0.5).sample(g) for _ in range(3000))
    assert set(picks) == {"a", 2, 0.5}
    assert all(800 < n < 1200 for n in picks.values())
    assert type(s(-1, 1).sample(g)) is int


def test_power_law_frequencies_follow_inverse_k():
    g = rng(4)
    n = 20_000
    counts = Counter(r(1, 6).sample_power_law(g) for _ in range(n))
    ks = np.arange(1, 7)
    expected = n * (1 / ks) / (1 / ks).sum()
    observed = np.array([counts[k] for k in ks])
    chi2 = (((observed - expected) ** 2) / expected).sum()
    assert chi2 < 20.5  # the 0.999 quantile of chi-square with 5 degrees of freedom
    assert observed[0] > observed[1] > observed[-1]  # small k favoured
    assert abs(observed[0] / observed[1] - 2.0) < 0.15


def test_power_law_exponent_and_bounds():
    g = rng(5)
    draws = [r(3, 40).sample_power_law(g, exponent=2.0) for _ in range(3000)]
    assert min(draws) == 3 and max(draws) <= 40
    ks = np.arange(3, 41)
    p3 = (1 / 9) / (1 / ks**2).sum()  # about 0.30 of the mass sits on k=3 when e=2
    assert abs(np.mean(np.array(draws) == 3) - p3) < 0.03
    assert r(7, 7).sample_power_law(g) == 7


@pytest.mark.parametrize("choices", [r(0.5, 3.0), s(1, 2), r(0, 5)])
def test_power_law_needs_int_range_from_one(choices):
    with pytest.raises(ConfigError, match="power-law"):
        choices.sample_power_law(rng())


@pytest.mark.parametrize(
    "choices", [r(1, 100), r(0.0, 1.0), s("x", "y", "z")], ids=["int", "float", "set"]
)
def test_sampling_is_deterministic_per_seed(choices):
    a, b = rng(42), rng(42)
    assert [choices.sample(a) for _ in range(50)] == [choices.sample(b) for _ in range(50)]
    if choices.is_int_range:
        assert [choices.sample_power_law(a) for _ in range(50)] == [
            choices.sample_power_law(b) for _ in range(50)
        ]


def test_choices_store_tuples_coerce_mixed_ranges_and_compare_by_type():
    assert r(0, 2.0).value == (0.0, 2.0) and not r(0, 2.0).is_int_range
    assert r(np.int64(1), np.int64(3)).value == (1, 3)
    assert type(r(np.int64(1), np.int64(3)).value[0]) is int
    assert r(0, 2) != r(0.0, 2.0)  # an int range samples differently from a float range
    assert Choices.from_dict(s("a", "b").to_dict()) == s("a", "b")


@pytest.mark.parametrize(
    ("kind", "value", "needle"),
    [
        ("list", [1, 2], "kind"),
        ("range", [1], "exactly two"),
        ("range", [1, 2, 3], "exactly two"),
        ("range", ["a", "b"], "exactly two"),
        ("range", [True, 3], "numbers or strings"),
        ("range", [5, 1], "reversed range"),
        ("range", [0.0, float("inf")], "finite"),
        ("set", [], "at least one"),
        ("set", "relu", "list or tuple"),
        ("set", [[1, 2]], "numbers or strings"),
    ],
)
def test_invalid_choices_raise(kind, value, needle):
    with pytest.raises(ConfigError, match=needle):
        Choices(kind=kind, value=value)


# ---- serialisation ----


def custom_config() -> Config:
    return Config(
        database_params=DatabaseParams(num_tables_choices=r(5, 10), min_timestamp="2000-01-01"),
        scm_params=SCMParams(activation_choices=s("relu", "tanh"), ts_value_scale_choices=s(0.1)),
        dag_params=DAGParams(ba_m=3, er_p_choices=r(0.1, 0.2)),
        val_split=0.7,
        schema_file="schema.sql",
    )


@pytest.mark.parametrize("config", [Config(), custom_config()], ids=["default", "custom"])
def test_dict_yaml_json_round_trips_are_exact(config):
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_yaml(config.to_yaml()) == config
    assert Config.from_json(config.to_json()) == config
    assert config.to_dict()["config_schema_version"] == CONFIG_SCHEMA_VERSION


def test_pickle_round_trip_for_shipping_to_workers():
    c = custom_config()
    assert pickle.loads(pickle.dumps(c)) == c


def test_save_and_load_by_suffix(tmp_path):
    c = custom_config()
    for name in ("c.yaml", "c.yml", "sub/c.json"):
        c.save(tmp_path / name)
        assert Config.load(tmp_path / name) == c
    assert (tmp_path / "sub/c.json").read_text().lstrip().startswith("{")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.json"):
        c.save(tmp_path / "c.txt")


def test_partial_dict_fills_defaults_and_accepts_choice_mappings():
    c = Config.from_dict({"scm_params": {"activation_choices": {"kind": "set", "value": ["sin"]}}})
    assert c.scm_params.activation_choices == s("sin")
    assert c.scm_params.mlp_emb_dim == 32 and c.database_params == DatabaseParams()
    assert Config.from_yaml("") == Config()


def test_unquoted_yaml_date_and_path_like_values_are_normalised(tmp_path):
    c = Config.from_yaml("database_params:\n  min_timestamp: 1995-06-01\n")
    assert c.database_params.min_timestamp == "1995-06-01"
    assert Config(cache_dir=tmp_path).cache_dir == str(tmp_path)


def test_int_range_for_a_float_field_becomes_a_float_range():
    c = DAGParams(er_p_choices={"kind": "range", "value": [0, 1]})
    assert c.er_p_choices == r(0.0, 1.0) and not c.er_p_choices.is_int_range


def test_unknown_keys_are_named_with_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'activatio_choices'.*activation_choices"):
        Config.from_dict({"scm_params": {"activatio_choices": s("relu")}})
    with pytest.raises(ConfigError, match=r"config: unknown key 'seed'.*val_split"):
        Config.from_dict({"seed": 1})


def test_other_schema_version_is_refused():
    with pytest.raises(ConfigError, match="config_schema_version"):
        Config.from_dict({"config_schema_version": CONFIG_SCHEMA_VERSION + 1})


def test_load_missing_and_malformed_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml.*not found"):
        Config.load(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("scm_params: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*malformed YAML"):
        Config.load(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(ConfigError, match="malformed JSON"):
        Config.load(bad_json)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Config.load(not_mapping)


# ---- content hash ----


def test_content_hash_equal_for_equal_configs_built_differently():
    a = custom_config()
    b = Config.from_yaml(a.to_yaml())
    c = Config.from_dict({**a.to_dict(), "val_split": 7 / 10})
    assert a.content_hash() == b.content_hash() == c.content_hash()
    assert len(a.content_hash()) == 64


def test_content_hash_changes_with_content_but_not_cache_dir():
    base = Config()
    assert base.content_hash() != dataclasses.replace(base, val_split=0.75).content_hash()
    changed = Config(scm_params=SCMParams(mlp_emb_dim=16))
    assert base.content_hash() != changed.content_hash()
    assert base.content_hash() != Config(schema_file="s.sql").content_hash()
    assert base.content_hash() == Config(cache_dir="/tmp/elsewhere").content_hash()


def test_content_hash_is_stable_across_processes():
    code = (
        "from plurel_ray.config import Config;"
        "print(Config.from_json(open(0).read()).content_hash())"
    )
    c = custom_config()
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=c.to_json(),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == c.content_hash()


# ---- validation: every bad value names its field ----

BAD = [
    ("database_params", "table_layout_choices", s("Grid")),
    ("database_params", "table_layout_choices", r(1, 2)),
    ("database_params", "num_tables_choices", r(0, 5)),
    ("database_params", "num_tables_choices", r(1.0, 5.0)),
    ("database_params", "num_rows_entity_table_choices", r(0, 10)),
    ("database_params", "num_rows_activity_table_choices", s(-1)),
    ("database_params", "num_cols_choices", r(0, 3)),
    ("database_params", "num_cols_choices", "3-40"),
    ("database_params", "min_timestamp", 5),
    ("database_params", "min_timestamp", "yesterday"),
    ("database_params", "min_timestamp", "2030-01-01"),
    ("database_params", "column_nan_perc_choices", r(0.1, 1.5)),
    ("database_params", "col_transform_choices", s("exp")),
    ("scm_params", "scm_layout_choices", s("Star")),
    ("scm_params", "scm_col_node_perc_choices", r(0.0, 0.5)),
    ("scm_params", "num_categories_choices", r(1, 4)),
    ("scm_params", "col_stype_choices", s("text")),
    ("scm_params", "initialization_choices", s("zeros")),
    ("scm_params", "activation_choices", s("foo")),
    ("scm_params", "activation_choices", {"kind": "set"}),
    ("scm_params", "node_noise_alpha_choices", r(0.0, 1.0)),
    ("scm_params", "node_noise_beta_choices", r(-1.0, 1.0)),
    ("scm_params", "bi_hsbm_levels_choices", r(0, 2)),
    ("scm_params", "bi_hsbm_clusters_per_level_choices", r(0, 2)),
    ("scm_params", "ts_cycle_freq_perc_choices", s(0.0, 0.5)),
    ("scm_params", "ts_cycle_freq_perc_choices", s(1.5)),
    ("scm_params", "ts_ar_rho_choices", r(0.0, 1.0)),
    ("scm_params", "ts_value_scale_choices", s(0, 1)),
    ("scm_params", "propagation_agg_choices", s("mean")),
    ("scm_params", "mlp_emb_dim", 0),
    ("scm_params", "mlp_in_dim", 1.0),
    ("scm_params", "mlp_in_dim", 2),
    ("scm_params", "mlp_out_dim", 3),
    ("scm_params", "mlp_emb_dim", 65),
    ("scm_params", "mlp_num_layers_choices", r(1, 3)),
    ("scm_params", "mlp_weight_density_choices", r(0.0, 1.0)),
    ("scm_params", "source_gen_type_choices", s("poisson")),
    ("scm_params", "source_beta_alpha_choices", r(0.0, 1.0)),
    ("scm_params", "source_beta_beta_choices", s("a")),
    ("scm_params", "propagation_mode_choices", s("eager")),
    ("scm_params", "cat_label_permute_prob_choices", r(0.5, 1.1)),
    ("scm_params", "cat_label_reverse_prob_choices", r(-0.1, 0.5)),
    ("scm_params", "entity_table_ts_noise_scale", -1.0),
    ("scm_params", "entity_table_ts_trend_scale", True),
    ("dag_params", "ba_sink_edge_dropout", 1.5),
    ("dag_params", "ba_flip_leaf_edge_prob", -0.1),
    ("dag_params", "ba_max_in_degree", 0),
    ("dag_params", "ba_m", 2.5),
    ("dag_params", "ba_m", 0),
    ("dag_params", "er_p_choices", r(0.5, 2.0)),
    ("dag_params", "ws_rewire_p_choices", s(-0.5)),
    ("dag_params", "layered_depth_choices", r(0, 3)),
    ("dag_params", "layered_edge_dropout_p", "0.1"),
    ("dag_params", "edge_weight_dist_choices", s("laplace")),
]


@pytest.mark.parametrize(("group", "name", "value"), BAD, ids=lambda x: str(x)[:40])
def test_bad_group_value_raises_naming_the_field(group, name, value):
    if isinstance(value, Choices):
        value = value.to_dict()
    with pytest.raises(ConfigError, match=rf"{group}\.{name}"):
        Config.from_dict({group: {name: value}})


@pytest.mark.parametrize(("group", "name", "value"), BAD[:3] + BAD[-5:], ids=lambda x: str(x)[:40])
def test_bad_value_raises_at_direct_construction(group, name, value):
    cls = {"database_params": DatabaseParams, "scm_params": SCMParams, "dag_params": DAGParams}
    with pytest.raises(ConfigError, match=name):
        cls[group](**{name: value})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"val_split": "x"}, "val_split"),
        ({"val_split": True}, "val_split"),
        ({"val_split": 0.0}, "val_split"),
        ({"test_split": 1.0}, "test_split"),
        ({"val_split": 0.95}, "val_split"),
        ({"cache_dir": 3}, "cache_dir"),
        ({"schema_file": ["a.sql"]}, "schema_file"),
        ({"scm_params": "default"}, "scm_params"),
        ({"database_params": {"max_timestamp": "1980-01-01"}}, "database_params.min_timestamp"),
    ],
)
def test_bad_top_level_value_raises_naming_the_field(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        Config(**kwargs)


def test_ints_are_accepted_where_floats_are_expected():
    c = DAGParams(ba_sink_edge_dropout=1)
    assert c.ba_sink_edge_dropout == 1.0 and type(c.ba_sink_edge_dropout) is float
    assert type(Config(val_split=np.float32(0.5)).val_split) is float


def test_set_indices_are_the_positions_of_the_same_draws_as_sample_many():
    choices = Choices("set", ["relu", "tanh", "sin"])
    picks = sample_set_indices(choices, np.random.default_rng(4), 500)
    names = sample_many(choices, np.random.default_rng(4), 500)
    assert [choices.value[i] for i in picks] == names.tolist()
    with pytest.raises(ValueError, match="expected a set"):
        sample_set_indices(Choices("range", [1, 3]), np.random.default_rng(0), 3)
