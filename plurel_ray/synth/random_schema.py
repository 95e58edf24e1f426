"""The random database schema (docs/prior.md): table graph, keys and feature columns."""

from __future__ import annotations

import numpy as np

from plurel_ray.config import Config
from plurel_ray.synth.dag import build_dag
from plurel_ray.synth.schema import (
    CATEGORICAL,
    NUMERICAL,
    TIME_COL,
    ColumnSpec,
    DatabaseSchema,
    TableSpec,
)

PKEY_COL = "row_idx"


def sample_schema(config: Config, rng: np.random.Generator) -> DatabaseSchema:
    """Draw a table graph and the tables' keys and columns.

    An edge P → C of the table DAG gives C a foreign key `foreign_row_{k}` to P (k
    counts C's parents in ascending order); sinks are activity tables with a `date`
    column; the column count is drawn power-law so most tables are narrow.

    Args:
        config: the generator configuration.
        rng: the schema's generator.
    """
    db = config.database_params
    scm = config.scm_params
    num_tables = int(db.num_tables_choices.sample(rng))
    layout = str(db.table_layout_choices.sample(rng))
    graph = build_dag(layout, num_tables, config.dag_params, rng)
    is_sink = graph.out_degree() == 0
    specs: dict[int, TableSpec] = {}
    for i in range(num_tables):
        parents = sorted(int(p) for p in graph.parents(i))
        fkeys = tuple((f"foreign_row_{k}", f"table_{p}") for k, p in enumerate(parents))
        features = []
        for j in range(db.num_cols_choices.sample_power_law(rng)):
            stype = str(scm.col_stype_choices.sample(rng))
            k = int(scm.num_categories_choices.sample(rng)) if stype == CATEGORICAL else None
            features.append(ColumnSpec(f"feature_{j}", NUMERICAL if k is None else CATEGORICAL, k))
        activity = bool(is_sink[i])
        specs[i] = TableSpec(
            name=f"table_{i}",
            pkey=PKEY_COL,
            fkeys=fkeys,
            features=tuple(features),
            time_col=TIME_COL if activity else None,
            is_activity=activity,
        )
    return DatabaseSchema(tuple(specs[int(i)] for i in graph.topo_order))
