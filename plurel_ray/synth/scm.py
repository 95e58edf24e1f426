"""One table's structural causal model (docs/prior.md#table-scm): structure, then propagation.

`TableSCM.build` draws everything random about a table's SCM — DAG, node types,
noise, aggregations, encoders, decoders, collation encoders — into arrays and batched
MLPs. `TableSCM.propagate` then computes every row at once, node by node in
topological order: no per-row Python. Three exact shortcuts keep it fast:

- only the column nodes and their ancestors are built and computed: no column can
  depend on any other node, and over seeds 0–29 of the default Config those others
  hold ~22 % of the node rows and ~15 % of the edge rows;

- a categorical value has only `k` possible encodings, so a categorical encoder is
  evaluated on its `k` embedding rows once and gathered per row;
- the foreign-table terms `F` are the same for every node of a table, so they are
  aggregated once per aggregation mode and merged into each node's aggregate
  (sum/max/product/logsumexp are all associative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plurel_ray import _native
from plurel_ray.config import DAGParams, SCMParams
from plurel_ray.synth.aggregate import Accumulator
from plurel_ray.synth.dag import CompiledDAG, build_dag
from plurel_ray.synth.mlp import HIDDEN_CLAMP, RandomMLP, build_embeddings, build_mlps
from plurel_ray.synth.noise import add_noise, beta_quantile_tables
from plurel_ray.synth.rng import derive_rng
from plurel_ray.synth.sampling import sample_many
from plurel_ray.synth.schema import CATEGORICAL, TableSpec
from plurel_ray.synth.sources import categorical_source, numerical_source

TERM_CLAMP = np.float32(1e4)


def clamp_terms(terms: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`np.clip(terms, ±TERM_CLAMP)` (NaN stays NaN) as two bare ufunc calls, half the
    cost of np.clip's Python wrapper on the small tables clamped ~1,800 times a
    database."""
    clamped = np.minimum(terms, TERM_CLAMP, out=out)
    return np.maximum(clamped, -TERM_CLAMP, out=clamped)


@dataclass(frozen=True)
class Distinct:
    """A numerical node's distinct values and, per row, the index of its value."""

    values: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, column: np.ndarray) -> Distinct | None:
        """The distinct values of `column` if there are at most half as many as rows.

        Decoders that saturate and clipped sources often emit few distinct values (a
        quarter of all edge-MLP rows over seeds 0–9); an MLP run per distinct value
        plus a gather is exact and far cheaper there. Counting costs one sort; the
        index is a binary search among the few values.
        """
        ordered = np.sort(column)
        starts = np.empty(column.size, dtype=bool)
        starts[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        if np.count_nonzero(starts) > column.size // 2:
            return None
        values = ordered[starts]
        return cls(values, np.searchsorted(values, column).astype(np.int64, copy=False))


@dataclass
class Encoder:
    """Maps a node's values to `(n, emb)` terms `clamp(w · enc(value), ±1e4)`.

    A numerical encoder is an MLP on the scalar value, `w` folded into its last layer;
    a categorical one is a precomputed `(k, emb)` table (embedding → MLP → `w`) indexed
    by category, kept both raw and clamped.
    """

    mlp: RandomMLP | None = None
    raw_table: np.ndarray | None = None
    table: np.ndarray | None = None

    def accumulate_into(
        self, acc: Accumulator, values: np.ndarray, distinct: Distinct | None = None
    ) -> None:
        """Fold this encoder's terms for `values` into `acc` with the native kernels,
        which fuse the MLP, the clamp and the aggregation per row.

        Args:
            acc: the child node's accumulator.
            values: the parent node's values, one per row.
            distinct: the parent's distinct values, when few: the MLP then runs once per
                distinct value and its terms are gathered, like a categorical table.
        """
        if self.table is not None:
            acc.add_native(
                lambda agg, value, total: _native.table_accumulate(
                    self.table, values, agg, value, total
                )
            )
            return
        if distinct is not None:
            terms = self.mlp.forward(distinct.values[:, None])
            clamp_terms(terms, out=terms)
            acc.add_native(
                lambda agg, value, total: _native.table_accumulate(
                    terms, distinct.index, agg, value, total
                )
            )
            return
        mlp = self.mlp
        acc.add_native(
            lambda agg, value, total: _native.mlp_accumulate(
                values,
                mlp.weights,
                mlp.act_ids,
                mlp.act_params,
                mlp.clamps,
                float(TERM_CLAMP),
                agg,
                value,
                total,
            )
        )

    def raw_lookup(self, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`w · enc(values[rows])` before the clamp, for callers that reweight terms
        first, as a table and an index: row `i` is `table[index[i]]`.

        The table is the categorical one (`k` rows), or the MLP run on whichever of
        `values` and `values[rows]` is shorter; the per-row result is the same.
        """
        if self.raw_table is not None:
            return self.raw_table, values[rows]
        # type_lazy categorical columns hold int classes; the MLP works in float32.
        if len(values) <= len(rows):
            return self.mlp.forward(values.astype(np.float32).reshape(-1, 1)), rows
        picked = values[rows].astype(np.float32).reshape(-1, 1)
        return self.mlp.forward(picked), np.arange(len(rows), dtype=np.int64)


@dataclass
class Decoder:
    """`(n, emb)` → values: an MLP to one number, or an MLP then the nearest category
    embedding by dot product."""

    mlp: RandomMLP
    categories: np.ndarray | None = None

    def __call__(self, h: np.ndarray) -> np.ndarray:
        out = self.mlp.forward(h)
        if self.categories is None:
            return out[:, 0]
        return np.argmax(out @ self.categories.T, axis=1)


def _categorical_encoder(embedding: np.ndarray, mlp: RandomMLP, weight: float) -> Encoder:
    raw = mlp.forward(embedding)
    raw *= np.float32(weight)
    return Encoder(raw_table=raw, table=clamp_terms(raw))


@dataclass(frozen=True)
class ForeignTable:
    """What a child table's propagation needs of one parent table.

    Args:
        collation: the parent's collation encoders, per child table, per column.
        rows: the parent row assigned to each child row.
        columns: the parent's final feature-column values.
    """

    collation: dict[str, list[Encoder]]
    rows: np.ndarray
    columns: list[np.ndarray]


@dataclass
class TableSCM:
    """A built SCM for one table; see `build` and `propagate`."""

    spec: TableSpec
    num_rows: int
    lazy: bool
    dag: CompiledDAG
    is_cat: np.ndarray  # (nodes,) bool: categorical in the propagation sense
    num_categories: np.ndarray  # (nodes,) int, 0 for numerical
    col_nodes: np.ndarray  # node of each feature column, in feature order
    aggs: np.ndarray  # (nodes,) aggregation name
    needed: np.ndarray  # (nodes,) bool: a column node or an ancestor of one
    noise_tables: dict[int, np.ndarray]  # per needed non-source node: (TABLE_SIZE,)
    decoders: dict[int, Decoder]  # per needed non-source node
    edge_encoders: dict[int, Encoder]  # per edge (index into dag) into a needed node
    collation: dict[str, list[Encoder]]  # child table → encoder per feature column
    source_kinds: dict[int, str]
    seed: int
    path: tuple

    @classmethod
    def build(
        cls,
        spec: TableSpec,
        num_rows: int,
        child_tables: list[str],
        column_categories: list[int],
        scm_params: SCMParams,
        dag_params: DAGParams,
        seed: int,
        path: tuple,
    ) -> TableSCM:
        """Draw the SCM of table `spec`.

        Args:
            spec: the table's schema.
            num_rows: rows to generate.
            child_tables: tables with a foreign key to this one (one collation encoder
                each per column).
            column_categories: category count of each feature column (0 = numerical).
            scm_params: SCM parameter choices.
            dag_params: DAG layout parameters.
            seed: database seed.
            path: rng path prefix of this table.
        """
        rng = derive_rng(seed, *path, "structure")
        lazy = scm_params.propagation_mode_choices.sample(rng) == "type_lazy"
        c = len(spec.features)
        perc = float(scm_params.scm_col_node_perc_choices.sample(rng))
        num_nodes = c + math.ceil(c / perc) + 3
        layout = str(scm_params.scm_layout_choices.sample(rng))
        dag = build_dag(layout, num_nodes, dag_params, rng)

        col_nodes = rng.choice(num_nodes, size=c, replace=False)
        stypes = sample_many(scm_params.col_stype_choices, rng, num_nodes)
        ks = sample_many(scm_params.num_categories_choices, rng, num_nodes).astype(np.int64)
        declared_cat = stypes == CATEGORICAL
        declared_cat[col_nodes] = np.asarray(column_categories, dtype=np.int64) > 0
        ks = np.where(declared_cat, ks, 0)
        ks[col_nodes] = column_categories
        is_cat = declared_cat & (not lazy)

        alpha = sample_many(scm_params.node_noise_alpha_choices, rng, num_nodes)
        beta = sample_many(scm_params.node_noise_beta_choices, rng, num_nodes)
        aggs = sample_many(scm_params.propagation_agg_choices, rng, num_nodes)
        needed = dag.ancestors(col_nodes)
        in_degree = dag.in_degree()
        sources = [int(v) for v in np.flatnonzero(needed & (in_degree == 0))]
        source_kinds = {
            v: str(kind)
            for v, kind in zip(
                sources,
                sample_many(scm_params.source_gen_type_choices, rng, len(sources)),
                strict=True,
            )
        }

        emb, one = scm_params.mlp_emb_dim, scm_params.mlp_in_dim
        out = scm_params.mlp_out_dim
        # Every encoder/decoder of this SCM, listed once so they are built in one batch.
        decoded = [int(v) for v in np.flatnonzero(needed & (in_degree > 0))]
        edges = [int(e) for e in np.flatnonzero(needed[dag.dst])]
        encoded = [(int(dag.src[e]), int(dag.dst[e])) for e in edges]
        weights = dag.weight[edges]
        collated = [(child, int(v)) for child in child_tables for v in col_nodes]
        mlp_dims = [(emb, emb if is_cat[v] else out) for v in decoded]
        mlp_dims += [(emb, emb) if is_cat[s] else (one, emb) for s, _ in encoded]
        mlp_dims += [(emb, emb) if is_cat[v] else (one, emb) for _, v in collated]
        # A numerical encoder's edge weight is folded into its last layer at build time.
        out_scale = [1.0] * len(decoded)
        out_scale += [
            1.0 if is_cat[s] else float(w) for (s, _), w in zip(encoded, weights, strict=True)
        ]
        out_scale += [1.0] * len(collated)
        mlps = iter(build_mlps(mlp_dims, scm_params, rng, out_scale))
        cat_sizes = [int(ks[v]) for v in decoded if is_cat[v]]
        cat_sizes += [int(ks[s]) for s, _ in encoded if is_cat[s]]
        cat_sizes += [int(ks[v]) for _, v in collated if is_cat[v]]
        embeddings = iter(build_embeddings(cat_sizes, scm_params, rng))

        decoders = {
            v: Decoder(next(mlps), next(embeddings) if is_cat[v] else None) for v in decoded
        }

        def encoder(node: int, weight: float) -> Encoder:
            if is_cat[node]:
                return _categorical_encoder(next(embeddings), next(mlps), weight)
            return Encoder(mlp=next(mlps))  # weight already folded in by build_mlps

        edge_encoders = {
            e: encoder(s, float(w))
            for e, (s, _), w in zip(edges, encoded, weights, strict=True)
        }
        collation: dict[str, list[Encoder]] = {child: [] for child in child_tables}
        for child, v in collated:
            collation[child].append(encoder(v, 1.0))
        noise_tables = beta_quantile_tables(
            alpha[decoded].astype(np.float64),
            beta[decoded].astype(np.float64),
            1.0 / scm_params.mlp_emb_dim,
        )
        return cls(
            spec=spec,
            num_rows=num_rows,
            lazy=lazy,
            dag=dag,
            is_cat=is_cat,
            num_categories=ks,
            col_nodes=col_nodes,
            aggs=aggs,
            needed=needed,
            noise_tables=dict(zip(decoded, noise_tables, strict=True)),
            decoders=decoders,
            edge_encoders=edge_encoders,
            collation=collation,
            source_kinds=source_kinds,
            seed=seed,
            path=path,
        )

    def propagate(self, scm_params: SCMParams, foreign: list[ForeignTable]) -> list[np.ndarray]:
        """Compute every node for every row; return the feature columns' values.

        Args:
            scm_params: SCM parameters (source settings, quantisation probabilities).
            foreign: per parent table, what this table's rows see of it.

        Returns:
            per feature column, `(n,)` float32 values (numerical) or int64 categories.
        """
        n = self.num_rows
        is_activity = self.spec.is_activity
        foreign_terms = self._foreign_aggregates(foreign, scm_params.mlp_emb_dim)
        values: list[np.ndarray | None] = [None] * self.dag.num_nodes
        source_rng = derive_rng(self.seed, *self.path, "sources")
        noise_rng = derive_rng(self.seed, *self.path, "noise")
        emb = scm_params.mlp_emb_dim
        starts = self.dag.parent_ptr
        # Only parents of needed nodes are ever encoded.
        has_children = np.bincount(
            self.dag.src[self.needed[self.dag.dst]], minlength=self.dag.num_nodes
        ) > 0
        distinct: dict[int, Distinct | None] = {}
        for v in (int(x) for x in self.dag.topo_order):
            if not self.needed[v]:
                continue
            if v in self.source_kinds:
                kind = self.source_kinds[v]
                if self.is_cat[v]:
                    values[v] = categorical_source(
                        kind, int(self.num_categories[v]), scm_params, n, is_activity, source_rng
                    )
                else:
                    raw = numerical_source(kind, scm_params, n, is_activity, source_rng)
                    values[v] = raw.astype(np.float32)
            else:
                acc = Accumulator(str(self.aggs[v]), (n, emb))
                for e in range(starts[v], starts[v + 1]):  # at least one: v is no source
                    parent = int(self.dag.src[e])
                    self.edge_encoders[e].accumulate_into(acc, values[parent], distinct.get(parent))
                if acc.mode in foreign_terms:
                    acc.add(foreign_terms[acc.mode])
                h = acc.result()  # owned by this node: noise is added in place
                add_noise(h, self.noise_tables[v], noise_rng, HIDDEN_CLAMP)
                values[v] = self.decoders[v](h)
            if has_children[v] and not self.is_cat[v]:
                distinct[v] = Distinct.of(values[v])
        return self._finish_columns(values, scm_params)

    def _foreign_aggregates(self, foreign: list[ForeignTable], width: int) -> dict[str, np.ndarray]:
        """Per aggregation mode used by this table, the aggregate of its foreign terms F."""
        modes = {str(self.aggs[v]) for v in self.decoders}
        if not foreign or not modes:
            return {}
        name = self.spec.name
        accumulators = {m: Accumulator(m, (self.num_rows, width)) for m in sorted(modes)}
        for parent in foreign:
            encoders, rows, columns = parent.collation[name], parent.rows, parent.columns
            # Under sum each parent's columns weigh 1/|columns| (docs/prior.md#table-scm), else 1.
            share = np.float32(1.0 / len(columns))
            for encoder, column in zip(encoders, columns, strict=True):
                # Terms stay a table plus an index: the native fold gathers each row,
                # never materialising (rows, width) temporaries.
                table, index = encoder.raw_lookup(column, rows)
                unweighted = None  # the weight-1 table, shared by max, product and logexp
                for mode, acc in accumulators.items():
                    if mode == "sum":
                        terms = table * share
                        clamp_terms(terms, out=terms)
                    else:
                        if unweighted is None:
                            unweighted = clamp_terms(table)
                        terms = unweighted
                    acc.add_native(
                        lambda agg, value, total, terms=terms, index=index: (
                            _native.table_accumulate(terms, index, agg, value, total)
                        )
                    )
        return {m: acc.result() for m, acc in accumulators.items()}

    def _finish_columns(
        self, values: list[np.ndarray | None], scm_params: SCMParams
    ) -> list[np.ndarray]:
        columns = []
        rng = derive_rng(self.seed, *self.path, "quantise")
        for v in self.col_nodes:
            column = values[int(v)]
            k = int(self.num_categories[v])
            if self.lazy and k > 0:
                column = _quantise(column, k, scm_params, rng)
            columns.append(column)
        return columns


def _quantise(
    column: np.ndarray, k: int, params: SCMParams, rng: np.random.Generator
) -> np.ndarray:
    """type_lazy: numbers → k classes by k-1 boundaries taken at random rows, then
    maybe permuted and maybe reversed."""
    boundaries = column[rng.integers(0, len(column), k - 1)]
    classes = (column[:, None] > boundaries[None, :]).sum(axis=1).astype(np.int64)
    if rng.random() < float(params.cat_label_permute_prob_choices.sample(rng)):
        classes = rng.permutation(k)[classes]
    if rng.random() < float(params.cat_label_reverse_prob_choices.sample(rng)):
        classes = k - 1 - classes
    return classes
