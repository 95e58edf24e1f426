"""The PluRel configuration: frozen, validated, serialisable data.

A `Config` holds three parameter groups (database, per-table SCM, DAG layouts) and a few
top-level fields. Everything is plain data — numbers, strings and `Choices` of them;
functions (activations, initialisers, layouts) are named by string and resolved by
`plurel_ray.synth` through registries whose canonical names live here. So a Config
round-trips exactly through YAML/JSON, hashes stably across processes, and travels to Ray
workers. Every field is checked at construction and a bad value raises `ConfigError`
naming the field (with its group, e.g. ``scm_params.activation_choices``, when the
config came through `Config.from_dict`, `from_yaml`, `from_json` or `load`).
"""

import dataclasses
import datetime
import difflib
import hashlib
import json
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml

from plurel_ray.errors import ConfigError
from plurel_ray.limits import DOCUMENT_BYTES, check_document

# Bump when a field is added, removed or changes meaning; it is part of `to_dict()` (and
# so of `content_hash()`), and `from_dict` refuses configs written under another version.
CONFIG_SCHEMA_VERSION = 1
_VERSION_KEY = "config_schema_version"

TABLE_AND_SCM_LAYOUTS = (
    "ErdosRenyi", "BarabasiAlbert", "RandomTree", "ReverseRandomTree", "Layered",
    "WattsStrogatz", "RandomCauchy",
)  # fmt: skip
ACTIVATIONS = (
    "relu", "elu", "selu", "silu", "softsign", "tanh", "sigmoid", "hardswish", "mish",
    "leaky_relu", "gelu", "softplus", "hardsigmoid", "hardtanh", "celu", "tanhshrink",
    "rrelu", "logsigmoid", "softshrink", "hardshrink", "identity", "abs", "sin", "cos",
    "sign", "clamp", "signed_log1p", "smooth_identity", "random_sine",
)  # fmt: skip
INITIALIZATIONS = (
    "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "trunc_normal",
    "sparse",
)  # fmt: skip
COL_TRANSFORMS = ("identity", "rank_uniform", "log", "sqrt", "standardize")
COL_STYPES = ("categorical", "numerical")
AGGREGATIONS = ("sum", "max", "product", "logexp")
EDGE_WEIGHT_DISTS = ("gaussian", "lognormal", "cauchy", "uniform")
SOURCE_GEN_TYPES = ("ts", "uniform", "gaussian", "beta", "mixed")
PROPAGATION_MODES = ("type_eager", "type_lazy")

# Upper bounds of the count fields (docs/limits.md): far above the defaults and any real
# use, low enough that a typo cannot ask one database for hours or terabytes.
MAX_TABLES = 1_000
MAX_ROWS = 10_000_000
MAX_COLUMNS = 1_000
MAX_CATEGORIES = 1_000  # a categorical source draws from an (n rows, k) matrix
MAX_MLP_LAYERS = 100
# Bi-HSBM parent assignment builds (blocks x blocks) and (blocks x child rows) matrices,
# blocks being the product of the per-level cluster counts: 3**5 = 243 by default.
MAX_HSBM_BLOCKS = 1_000
MAX_HSBM_LEVELS = 16  # 2**16 blocks already exceed MAX_HSBM_BLOCKS


def _is_int(x: Any) -> bool:
    # bool is an int subclass, but `True` as a table count is always a mistake.
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _scalar(x: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (YAML/JSON and hashing need those)."""
    return x.item() if isinstance(x, np.generic) else x


@dataclass(frozen=True, eq=False)
class Choices:
    """A set of values to sample from: ``range [lo, hi]`` or ``set [v, ...]``.

    A range is an int range (inclusive) when both ends are ints, otherwise a float range
    (uniform on ``[lo, hi)``; int ends are coerced to float). Equality and hashing see the
    element types, so the int range [0, 2] differs from the float range [0.0, 2.0].

    Args:
        kind: "range" or "set".
        value: a list or tuple; two numbers for a range, one or more numbers or strings
            for a set. Stored as a tuple.
    """

    kind: str
    value: tuple

    def __post_init__(self) -> None:
        if self.kind not in ("range", "set"):
            raise ConfigError(f"Choices kind must be 'range' or 'set', got {self.kind!r}")
        if not isinstance(self.value, (list, tuple)):
            raise ConfigError(f"Choices value must be a list or tuple, got {self.value!r}")
        value = tuple(_scalar(v) for v in self.value)
        for v in value:
            if not (isinstance(v, str) or _is_real(v)):
                raise ConfigError(f"Choices values must be numbers or strings, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"Choices values must be finite, got {v!r}")
        if self.kind == "range":
            if len(value) != 2 or not all(_is_real(v) for v in value):
                raise ConfigError(f"a range needs exactly two numbers [lo, hi], got {value!r}")
            value = value if all(_is_int(v) for v in value) else tuple(float(v) for v in value)
            if value[0] > value[1]:
                raise ConfigError(f"reversed range [{value[0]}, {value[1]}]: need lo <= hi")
        elif not value:
            raise ConfigError("a set needs at least one value, got []")
        object.__setattr__(self, "value", value)

    def _key(self) -> tuple:
        return (self.kind, tuple((type(v).__name__, v) for v in self.value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choices) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def is_int_range(self) -> bool:
        """True for a range whose ends are ints (sampled inclusively)."""
        return self.kind == "range" and _is_int(self.value[0])

    def sample(self, rng: np.random.Generator) -> Any:
        """One uniform draw: int range inclusive, float range ``[lo, hi)``, set: pick.

        Args:
            rng: the generator to draw from (exactly one draw).
        """
        if self.kind == "set":
            return self.value[int(rng.integers(len(self.value)))]
        lo, hi = self.value
        if self.is_int_range:
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))

    def sample_power_law(self, rng: np.random.Generator, exponent: float = 1.0) -> int:
        """One draw of k from an int range with ``P(k) ∝ 1 / k**exponent``.

        Inverse CDF on a single ``rng.random()``, so the stream advances by the same
        amount whatever the range.

        Args:
            rng: the generator to draw from.
            exponent: the power-law exponent e (the prior uses 1).
        """
        if not self.is_int_range or self.value[0] < 1:
            raise ConfigError(f"power-law sampling needs an int range with lo >= 1, got {self}")
        ks = np.arange(self.value[0], self.value[1] + 1, dtype=np.float64)
        cdf = np.cumsum(ks**-exponent)
        i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        return int(ks[min(i, len(ks) - 1)])

    def to_dict(self) -> dict:
        """``{"kind": ..., "value": [...]}``, the form YAML and JSON hold."""
        return {"kind": self.kind, "value": list(self.value)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Choices":
        """The Choices a `to_dict()` mapping describes.

        Args:
            d: a mapping with exactly the keys "kind" and "value".
        """
        if not isinstance(d, Mapping) or set(d) != {"kind", "value"}:
            raise ConfigError(f"a choice must be a mapping with keys kind and value, got {d!r}")
        return cls(kind=d["kind"], value=d["value"])


# ---- field rules: each takes (field name, value) and returns the normalised value ----

Rule = Callable[[str, Any], Any]


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> tuple[Callable, str]:
    def inside(x: float) -> bool:
        return (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)

    if hi == math.inf:
        return inside, f"{'>' if lo_open else '>='} {lo}"
    return inside, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _as_choices(name: str, v: Any) -> Choices:
    try:
        if isinstance(v, Mapping):
            return Choices.from_dict(v)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    if not isinstance(v, Choices):
        raise ConfigError(f"{name}: expected Choices or {{kind, value}}, got {v!r}")
    return v


def _names(registry: tuple[str, ...]) -> Rule:
    def check(name: str, v: Any) -> Choices:
        c = _as_choices(name, v)
        if c.kind != "set":
            raise ConfigError(f"{name}: must be a set of names, got a range")
        for x in c.value:
            if x not in registry:
                raise ConfigError(f"{name}: unknown name {x!r}; valid: {', '.join(registry)}")
        return c

    return check


def _num_choices(
    lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, integer=False, why=""
) -> Rule:
    inside, text = _interval(lo, hi, lo_open, hi_open)
    text += why

    def check(name: str, v: Any) -> Choices:
        c = _as_choices(name, v)
        if not all(_is_real(x) for x in c.value):
            raise ConfigError(f"{name}: values must be numbers, got {list(c.value)}")
        if integer and not all(_is_int(x) for x in c.value):
            raise ConfigError(f"{name}: values must be integers, got {list(c.value)}")
        if not integer and c.kind == "range":
            # A real-valued field given [0, 1] means the float range, not the two ints.
            c = Choices("range", tuple(float(x) for x in c.value))
        bad = [x for x in c.value if not inside(x)]
        if bad:
            raise ConfigError(f"{name}: values must be {text}, got {bad[0]}")
        return c

    return check


def _float(lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False) -> Rule:
    inside, text = _interval(lo, hi, lo_open, hi_open)

    def check(name: str, v: Any) -> float:
        if not _is_real(v):
            raise ConfigError(f"{name}: expected a number, got {v!r}")
        try:
            x = float(v)
        except OverflowError:
            x = math.inf
        if not (math.isfinite(x) and inside(x)):
            raise ConfigError(f"{name}: must be finite and {text}, got {v!r}")
        return x

    return check


def _int(lo: int, hi: int | None = None, why: str = "") -> Rule:
    def check(name: str, v: Any) -> int:
        if not _is_int(v):
            raise ConfigError(f"{name}: expected an integer, got {v!r}")
        if v < lo or (hi is not None and v > hi):
            bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ConfigError(f"{name}: must be {bounds}{why}, got {v!r}")
        return int(v)

    return check


def _timestamp(name: str, v: Any) -> str:
    # Unquoted dates in YAML load as datetime.date; keep the ISO text either way.
    if isinstance(v, datetime.date):
        return v.isoformat()
    if not isinstance(v, str):
        raise ConfigError(f"{name}: expected an ISO date string like '1990-01-01', got {v!r}")
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        raise ConfigError(f"{name}: not an ISO date: {v!r}") from None
    return v


def _optional_path(name: str, v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    raise ConfigError(f"{name}: expected a path string or None, got {v!r}")


def _counts(most: int, what: str) -> Rule:
    return _num_choices(1, most, integer=True, why=f" (at most {most:,} {what}, docs/limits.md)")


# Field types: a value's type together with the rule that checks it.
_Counts = Annotated[Choices, _num_choices(1, integer=True)]
_Probs = Annotated[Choices, _num_choices(0.0, 1.0)]
_Fractions = Annotated[Choices, _num_choices(0.0, 1.0, lo_open=True)]  # 0 would leave nothing
_Positives = Annotated[Choices, _num_choices(0.0, lo_open=True)]
_Reals = Annotated[Choices, _num_choices()]
_Prob = Annotated[float, _float(0.0, 1.0)]
_Layouts = Annotated[Choices, _names(TABLE_AND_SCM_LAYOUTS)]


def _nested(cls: type) -> Rule:
    """The rule of a parameter-group field: an instance, or a mapping of its fields."""

    def check(name: str, v: Any) -> Any:
        if isinstance(v, cls):
            return v
        _check_keys(name, v, [f.name for f in dataclasses.fields(cls)])
        try:
            return cls(**v)
        except ConfigError as e:  # a group's messages start with its field name
            raise ConfigError(f"{name}.{e}") from None

    return check


def _check_keys(where: str, d: Any, valid: list[str]) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {d!r}")
    for key in d:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


class _Group:
    """Checking and (de)serialisation shared by the frozen config dataclasses.

    Each field is declared as ``Annotated[type, rule]``; the rule checks the value given
    and returns it normalised (a {kind, value} mapping becomes a Choices, an int a float).
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            rule = f.type.__metadata__[0]  # type: ignore[union-attr]
            object.__setattr__(self, f.name, rule(f.name, getattr(self, f.name)))
        self._check_together()

    def _check_together(self) -> None:
        """Constraints across fields; a group overrides it where it has any."""

    def to_dict(self) -> dict:
        """The group as plain dicts, lists, numbers and strings."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Any:
        """The group a (possibly partial) mapping describes; missing fields take defaults.

        Args:
            d: field name -> value; Choices may be given as {kind, value} mappings.
        """
        return _nested(cls)(cls.__name__, d)


def _plain(v: Any) -> Any:
    return v.to_dict() if isinstance(v, (Choices, _Group)) else v


@dataclass(frozen=True)
class DatabaseParams(_Group):
    """How many tables, rows and columns a database has, its timeline and post-processing."""

    table_layout_choices: _Layouts = Choices(
        "set", ("BarabasiAlbert", "ReverseRandomTree", "WattsStrogatz")
    )
    num_tables_choices: Annotated[Choices, _counts(MAX_TABLES, "tables")] = Choices(
        "range", (3, 20)
    )
    num_rows_entity_table_choices: Annotated[Choices, _counts(MAX_ROWS, "rows")] = Choices(
        "range", (500, 1000)
    )
    num_rows_activity_table_choices: Annotated[Choices, _counts(MAX_ROWS, "rows")] = Choices(
        "range", (2000, 5000)
    )
    # Sampled power-law (docs/prior.md), so most tables are narrow.
    num_cols_choices: Annotated[Choices, _counts(MAX_COLUMNS, "columns")] = Choices(
        "range", (3, 40)
    )
    min_timestamp: Annotated[str, _timestamp] = "1990-01-01"
    max_timestamp: Annotated[str, _timestamp] = "2025-01-01"
    column_nan_perc_choices: _Probs = Choices("range", (0.01, 0.1))
    col_transform_choices: Annotated[Choices, _names(COL_TRANSFORMS)] = Choices(
        "set", COL_TRANSFORMS
    )

    def _check_together(self) -> None:
        lo = datetime.datetime.fromisoformat(self.min_timestamp)
        hi = datetime.datetime.fromisoformat(self.max_timestamp)
        try:
            ordered = lo < hi
        except TypeError:  # one has a timezone and the other not
            raise ConfigError(
                "min_timestamp: give min_timestamp and max_timestamp both with or both "
                "without a timezone"
            ) from None
        if not ordered:
            raise ConfigError(
                f"min_timestamp: {self.min_timestamp} must be before "
                f"max_timestamp {self.max_timestamp}"
            )


@dataclass(frozen=True)
class SCMParams(_Group):
    """The structural causal model of each table: its DAG, node types, MLPs and sources."""

    scm_layout_choices: _Layouts = Choices("set", TABLE_AND_SCM_LAYOUTS)
    scm_col_node_perc_choices: _Fractions = Choices("range", (0.3, 0.9))
    num_categories_choices: Annotated[
        Choices,
        _num_choices(2, MAX_CATEGORIES, integer=True,
                     why=f" (at most {MAX_CATEGORIES:,} categories, docs/limits.md)"),
    ] = Choices("range", (2, 10))  # fmt: skip
    col_stype_choices: Annotated[Choices, _names(COL_STYPES)] = Choices("set", COL_STYPES)
    initialization_choices: Annotated[Choices, _names(INITIALIZATIONS)] = Choices(
        "set", INITIALIZATIONS
    )
    activation_choices: Annotated[Choices, _names(ACTIVATIONS)] = Choices("set", ACTIVATIONS)
    node_noise_alpha_choices: _Positives = Choices("range", (0.5, 5.0))
    node_noise_beta_choices: _Positives = Choices("range", (0.5, 5.0))
    # Their product is bounded together in `_check_together`.
    bi_hsbm_levels_choices: Annotated[Choices, _counts(MAX_HSBM_LEVELS, "levels")] = Choices(
        "range", (1, 5)
    )
    bi_hsbm_clusters_per_level_choices: _Counts = Choices("range", (1, 3))
    ts_trend_alpha_choices: Annotated[Choices, _num_choices(0.0)] = Choices("range", (0.0, 2.0))
    activity_table_ts_trend_scale_choices: _Reals = Choices("set", (-1, 1))
    entity_table_ts_trend_scale: Annotated[float, _float()] = 0.0
    ts_cycle_freq_perc_choices: _Fractions = Choices(
        "set", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    )
    activity_table_ts_cycle_scale_choices: _Reals = Choices("set", (-1, 1))
    entity_table_ts_cycle_scale: Annotated[float, _float()] = 0.0
    activity_table_ts_noise_scale: Annotated[float, _float(0.0)] = 0.05
    entity_table_ts_noise_scale: Annotated[float, _float(0.0)] = 1.0
    # rho = 1 would make the AR(1) noise a random walk that never forgets.
    ts_ar_rho_choices: Annotated[Choices, _num_choices(0.0, 1.0, hi_open=True)] = Choices(
        "range", (0.0, 0.9)
    )
    ts_value_scale_choices: _Positives = Choices("set", (0.01, 0.1, 1, 10, 100))
    propagation_agg_choices: Annotated[Choices, _names(AGGREGATIONS)] = Choices("set", AGGREGATIONS)
    # Every cell is one scalar, and the native MLP kernels handle widths up to 64.
    mlp_in_dim: Annotated[int, _int(1, 1, " (a cell is one scalar)")] = 1
    mlp_out_dim: Annotated[int, _int(1, 1, " (a cell is one scalar)")] = 1
    mlp_emb_dim: Annotated[int, _int(1, 64, " (the native MLP kernels' limit)")] = 32
    # Two linear maps at least: in -> hidden -> out.
    mlp_num_layers_choices: Annotated[
        Choices,
        _num_choices(2, MAX_MLP_LAYERS, integer=True,
                     why=f" (at most {MAX_MLP_LAYERS} layers, docs/limits.md)"),
    ] = Choices("range", (2, 4))  # fmt: skip
    mlp_weight_density_choices: _Fractions = Choices("range", (0.3, 1.0))
    source_gen_type_choices: Annotated[Choices, _names(SOURCE_GEN_TYPES)] = Choices(
        "set", SOURCE_GEN_TYPES
    )
    source_beta_alpha_choices: _Positives = Choices("range", (0.5, 5.0))
    source_beta_beta_choices: _Positives = Choices("range", (0.5, 5.0))
    propagation_mode_choices: Annotated[Choices, _names(PROPAGATION_MODES)] = Choices(
        "set", PROPAGATION_MODES
    )
    cat_label_permute_prob_choices: _Probs = Choices("range", (0.3, 1.0))
    cat_label_reverse_prob_choices: _Probs = Choices("range", (0.2, 0.8))

    def _check_together(self) -> None:
        levels = max(self.bi_hsbm_levels_choices.value)
        clusters = max(self.bi_hsbm_clusters_per_level_choices.value)
        if clusters**levels > MAX_HSBM_BLOCKS:  # levels <= MAX_HSBM_LEVELS: a small power
            raise ConfigError(
                f"bi_hsbm_clusters_per_level_choices: up to {clusters} clusters on up to "
                f"{levels} levels (bi_hsbm_levels_choices) make {clusters}**{levels} blocks, "
                f"more than {MAX_HSBM_BLOCKS:,} (docs/limits.md); lower either"
            )


@dataclass(frozen=True)
class DAGParams(_Group):
    """Parameters of the DAG layouts used for the table graph and every table's SCM."""

    ba_sink_edge_dropout: _Prob = 0.4
    ba_flip_leaf_edge_prob: _Prob = 0.0
    ba_max_in_degree: Annotated[int, _int(1)] = 4
    ba_m: Annotated[int, _int(1)] = 2
    er_p_choices: _Probs = Choices("range", (0.3, 0.8))
    ws_rewire_p_choices: _Probs = Choices("range", (0.1, 0.3))
    layered_depth_choices: _Counts = Choices("range", (2, 8))
    layered_edge_dropout_p: _Prob = 0.1
    edge_weight_dist_choices: Annotated[Choices, _names(EDGE_WEIGHT_DISTS)] = Choices(
        "set", EDGE_WEIGHT_DISTS
    )


@dataclass(frozen=True)
class Config(_Group):
    """Everything that decides what a generated database contains (and where it is cached).

    Args:
        database_params: tables, rows, columns, timeline, post-processing.
        scm_params: the per-table structural causal model.
        dag_params: DAG layout parameters.
        val_split: fraction of the timeline before the validation timestamp.
        test_split: fraction of the timeline before the test timestamp.
        cache_dir: where generated databases are cached (not part of `content_hash`).
        schema_file: optional SQL DDL file that fixes tables, keys and column types.
    """

    database_params: Annotated[DatabaseParams, _nested(DatabaseParams)] = field(
        default_factory=DatabaseParams
    )
    scm_params: Annotated[SCMParams, _nested(SCMParams)] = field(default_factory=SCMParams)
    dag_params: Annotated[DAGParams, _nested(DAGParams)] = field(default_factory=DAGParams)
    val_split: Annotated[float, _float(0.0, 1.0, lo_open=True, hi_open=True)] = 0.8
    test_split: Annotated[float, _float(0.0, 1.0, lo_open=True, hi_open=True)] = 0.9
    cache_dir: Annotated[str | None, _optional_path] = None
    schema_file: Annotated[str | None, _optional_path] = None

    def _check_together(self) -> None:
        if not self.val_split < self.test_split:
            raise ConfigError(
                f"val_split: {self.val_split} must be below test_split {self.test_split}"
            )

    def to_dict(self) -> dict:
        """Nested plain dicts and lists (Choices as {kind, value}), with the schema version."""
        return {_VERSION_KEY: CONFIG_SCHEMA_VERSION, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Config":
        """The Config a (possibly partial) mapping describes; missing fields take defaults.

        Args:
            d: as written by `to_dict()`; any subset of its keys.
        """
        valid = [_VERSION_KEY, *(f.name for f in dataclasses.fields(cls))]
        _check_keys("config", d, valid)
        d = dict(d)
        version = d.pop(_VERSION_KEY, CONFIG_SCHEMA_VERSION)
        if version != CONFIG_SCHEMA_VERSION:
            raise ConfigError(
                f"{_VERSION_KEY}: this code reads version {CONFIG_SCHEMA_VERSION}, got {version!r}"
            )
        return cls(**d)

    def to_yaml(self) -> str:
        """The config as YAML text, fields in declaration order."""
        # Flow style for leaf lists keeps a choice on two lines: `value: [3, 20]`.
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str) -> "Config":
        """The Config in YAML `text` (empty text gives the defaults).

        Args:
            text: YAML as written by `to_yaml()`, or any subset of it.
        """
        _check_length(text)
        try:
            d = yaml.safe_load(text)
        # ValueError: an integer of more than 4300 digits; RecursionError: deep nesting.
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            raise ConfigError(f"config: malformed YAML: {_one_line(e)}") from None
        check_document(d, "config", ConfigError)
        return cls.from_dict({} if d is None else d)

    def to_json(self) -> str:
        """The config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """The Config in JSON `text`.

        Args:
            text: JSON as written by `to_json()`, or any subset of it.
        """
        _check_length(text)
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            raise ConfigError(f"config: malformed JSON: {_one_line(e)}") from None
        check_document(d, "config", ConfigError)
        return cls.from_dict(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config to `path`: YAML for .yaml/.yml, JSON for .json.

        Args:
            path: the file to write; parent folders are created.
        """
        p = Path(path).expanduser()
        if p.suffix not in (".yaml", ".yml", ".json"):
            raise ConfigError(f"{p}: config files end in .yaml, .yml or .json")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json() if p.suffix == ".json" else self.to_yaml())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        """Read a config written by `save` (JSON for .json, YAML otherwise).

        Args:
            path: the file to read.
        """
        p = Path(path).expanduser()
        try:
            with open(p, "rb") as f:
                data = f.read(DOCUMENT_BYTES.value + 1)  # bounded: may be a pipe or a device
            text = data.decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read config file: {e}") from None
        try:
            return cls.from_json(text) if p.suffix == ".json" else cls.from_yaml(text)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None

    def content_hash(self) -> str:
        """SHA-256 hex of the canonical JSON of everything that decides the content.

        `cache_dir` is left out: where a database is cached does not change what it holds.
        Keys are sorted and floats written by `repr` (json's default), so the hash is the
        same in every process and on every machine.
        """
        d = self.to_dict()
        del d["cache_dir"]
        canonical = json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_length(text: str) -> None:
    # Characters, not bytes: a config is ASCII in practice, and a bound is what matters.
    if len(text) > DOCUMENT_BYTES.value:
        raise ConfigError(
            f"config: more than {DOCUMENT_BYTES.value:,} characters; a config is a few KB "
            "(docs/limits.md)"
        )


def _one_line(err: Exception) -> str:
    """A parser's multi-line message (YAML marks the position on extra lines) on one line."""
    return " ".join(str(err).split())
