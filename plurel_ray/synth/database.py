"""Seed + config → a whole synthetic relational database (docs/prior.md).

`generate_database` is a pure function of (seed, config, GENERATOR_VERSION): every
component draws from its own path-derived generator (see `rng.py`), so the tables do
not depend on process, run, thread count or the order components are visited in.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError
from plurel_ray.synth.hsbm import assign_parents, sample_hierarchy
from plurel_ray.synth.postprocess import postprocess_columns
from plurel_ray.synth.random_schema import sample_schema
from plurel_ray.synth.rng import derive_rng
from plurel_ray.synth.schema import DatabaseSchema, TableSpec
from plurel_ray.synth.scm import ForeignTable, TableSCM

# Bump whenever a change alters any generated value: it is part of every database's
# identity (plurel.json) and of the cache key.
GENERATOR_VERSION = "3"
_TIMELINE_TRIES = 1000


@dataclass(frozen=True)
class Timeline:
    """The database's time span and its validation and test cut-offs (docs/prior.md)."""

    min_timestamp: pd.Timestamp
    max_timestamp: pd.Timestamp
    val_timestamp: pd.Timestamp
    test_timestamp: pd.Timestamp


@dataclass
class GeneratedDatabase:
    """Generated tables with the schema and timeline that explain them.

    Args:
        seed: the seed it was made from.
        schema: tables, keys and feature columns, parents before children.
        timeline: time span and split timestamps.
        tables: one DataFrame per table, in schema order: primary key, foreign keys,
            features, then the time column.
    """

    seed: int
    schema: DatabaseSchema
    timeline: Timeline
    tables: dict[str, pd.DataFrame]

    @property
    def num_cells(self) -> int:
        """Rows × columns summed over tables, keys and time columns included."""
        return sum(df.shape[0] * df.shape[1] for df in self.tables.values())


def sample_timeline(config: Config, rng: np.random.Generator) -> Timeline:
    """Two distinct sorted day offsets inside the configured span, and the split days.

    docs/prior.md#the-database, with one guard: a pair so close that the validation or test window
    would be empty (val day == test day, or no day after the test day) is redrawn,
    since RelBench cannot build tasks on it. With the default 35-year span this
    redraws ~0.2 % of timelines.

    Raises:
        ConfigError: the configured span is too short for three non-empty windows.
    """
    params = config.database_params
    start = pd.Timestamp(params.min_timestamp)
    days = (pd.Timestamp(params.max_timestamp) - start).days
    for _ in range(_TIMELINE_TRIES if days >= 2 else 0):
        first, last = sorted(int(d) for d in rng.choice(days, size=2, replace=False))
        length = last - first + 1
        val_day = int(np.floor(length * config.val_split))
        test_day = int(np.floor(length * config.test_split))
        if val_day < test_day < length - 1:
            lo = start + pd.Timedelta(days=first)
            return Timeline(
                min_timestamp=lo,
                max_timestamp=start + pd.Timedelta(days=last),
                val_timestamp=lo + pd.Timedelta(days=val_day),
                test_timestamp=lo + pd.Timedelta(days=test_day),
            )
    raise ConfigError(
        f"database_params.min_timestamp..max_timestamp spans {days} days, too few for "
        f"val_split={config.val_split} and test_split={config.test_split} to leave "
        "non-empty train, validation and test windows; widen the span"
    )


def load_schema(config: Config, seed: int) -> DatabaseSchema:
    """The schema from `config.schema_file`, or a random one drawn for `seed`."""
    if config.schema_file is not None:
        # sqlglot (~60 ms to import) only for SQL schemas, not in every generator process.
        from plurel_ray.synth.sql_schema import load_sql_schema

        return load_sql_schema(os.path.expanduser(config.schema_file))
    return sample_schema(config, derive_rng(seed, "schema"))


def _num_rows(config: Config, spec: TableSpec, rng: np.random.Generator) -> int:
    params = config.database_params
    choices = (
        params.num_rows_activity_table_choices
        if spec.is_activity
        else params.num_rows_entity_table_choices
    )
    return int(choices.sample(rng))


def _column_categories(config: Config, spec: TableSpec, rng: np.random.Generator) -> list[int]:
    """Category count per feature column (0 = numerical); SQL text columns draw one."""
    counts = []
    for column in spec.features:
        if column.stype != "categorical":
            counts.append(0)
        elif column.num_categories is None:
            counts.append(int(config.scm_params.num_categories_choices.sample(rng)))
        else:
            counts.append(int(column.num_categories))
    return counts


def generate_database(
    seed: int, config: Config, schema: DatabaseSchema | None = None
) -> GeneratedDatabase:
    """Generate the database of `seed` under `config`.

    Args:
        seed: a non-negative integer.
        config: the generator configuration.
        schema: a pre-parsed schema (e.g. shared by many seeds); by default loaded
            from `config.schema_file` or sampled.
    """
    # A database makes ~100k short-lived containers (MLPs, closures) and no reference
    # cycles, so reference counting frees everything; the cyclic collector's passes
    # over them cost ~1.5 % of generation time. It runs again once the database is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _generate(seed, config, schema)
    finally:
        if collecting:
            gc.enable()


def _generate(seed: int, config: Config, schema: DatabaseSchema | None) -> GeneratedDatabase:
    if schema is None:
        schema = load_schema(config, seed)
    timeline = sample_timeline(config, derive_rng(seed, "timeline"))
    # Of a finished table, its children need only the collation encoders, row count
    # and column values; its edge encoders and decoders (most of the memory) are freed.
    done: dict[str, tuple[dict, int, list[np.ndarray]]] = {}
    tables: dict[str, pd.DataFrame] = {}
    for spec in schema.tables:
        path = ("table", spec.name)
        num_rows = _num_rows(config, spec, derive_rng(seed, *path, "rows"))
        categories = _column_categories(config, spec, derive_rng(seed, *path, "columns"))
        scm = TableSCM.build(
            spec,
            num_rows,
            schema.children(spec.name),
            categories,
            config.scm_params,
            config.dag_params,
            seed,
            path,
        )
        frame: dict[str, np.ndarray] = {}
        if spec.pkey is not None:
            frame[spec.pkey] = np.arange(num_rows, dtype=np.int64)
        foreign = []
        for fk_col, parent in spec.fkeys:
            fk_rng = derive_rng(seed, *path, "fk", fk_col)
            hierarchy = sample_hierarchy(config.scm_params, fk_rng)
            collation, parent_rows, parent_columns = done[parent]
            rows = assign_parents(parent_rows, num_rows, hierarchy, fk_rng)
            frame[fk_col] = rows
            foreign.append(ForeignTable(collation, rows, parent_columns))
        values = scm.propagate(config.scm_params, foreign)
        done[spec.name] = (scm.collation, num_rows, values)
        del scm
        frame.update(
            postprocess_columns(
                list(spec.features),
                values,
                categories,
                config.database_params,
                derive_rng(seed, *path, "post"),
                derive_rng(seed, *path, "ties"),
            )
        )
        if spec.time_col is not None:
            frame[spec.time_col] = pd.date_range(
                timeline.min_timestamp, timeline.max_timestamp, periods=num_rows
            )
        # Nothing writes these arrays afterwards, so the frame shares them instead of
        # copying (half the cost of building it).
        tables[spec.name] = pd.DataFrame(frame, copy=False)
    return GeneratedDatabase(
        seed, schema, timeline, {s.name: tables[s.name] for s in schema.tables}
    )
