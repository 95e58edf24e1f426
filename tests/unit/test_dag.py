"""DAG layouts: every layout yields a connected DAG of the promised shape, deterministically."""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from plurel_ray.config import TABLE_AND_SCM_LAYOUTS, Choices, DAGParams
from plurel_ray.synth.dag import EDGE_WEIGHT_DISTS, LAYOUTS, build_dag, compile_dag

LOW_HIGH = ("ErdosRenyi", "WattsStrogatz", "RandomCauchy", "Layered")
SIZES = (2, 3, 4, 5, 9, 25)
SEEDS = (0, 1, 2)


def params(**kw) -> DAGParams:
    return dataclasses.replace(DAGParams(), **kw)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def to_nx(dag) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(range(dag.num_nodes))
    g.add_edges_from(zip(dag.src.tolist(), dag.dst.tolist(), strict=True))
    return g


def test_layout_registry_matches_config_names():
    assert set(LAYOUTS) == set(TABLE_AND_SCM_LAYOUTS)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_is_a_connected_dag_without_loops_or_duplicates(layout):
    for n in SIZES:
        for seed in SEEDS:
            dag = build_dag(layout, n, DAGParams(), rng(seed))
            g = to_nx(dag)
            assert g.number_of_nodes() == n
            assert g.number_of_edges() == dag.src.size  # no duplicate edges
            assert not np.any(dag.src == dag.dst)
            assert nx.is_directed_acyclic_graph(g)
            # BA sink thinning only drops an in-edge of a sink with another in-edge; from
            # the star start such an edge is never a bridge, so BA stays connected too.
            assert nx.is_weakly_connected(g), (layout, n, seed)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_nodes_gives_isolated_nodes(layout, n):
    dag = build_dag(layout, n, DAGParams(), rng(0))
    assert dag.num_nodes == n and dag.src.size == 0 and dag.topo_order.size == n


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_topo_order_is_a_valid_permutation_and_parents_are_sorted_slices(layout):
    dag = build_dag(layout, 20, DAGParams(), rng(3))
    assert sorted(dag.topo_order.tolist()) == list(range(20))
    pos = np.empty(20, dtype=np.int64)
    pos[dag.topo_order] = np.arange(20)
    assert np.all(pos[dag.src] < pos[dag.dst])
    for v in range(20):
        ps = dag.parents(v)
        assert np.all(np.diff(ps) > 0)
        assert set(ps.tolist()) == {int(u) for u, w in zip(dag.src, dag.dst, strict=True) if w == v}
        assert dag.parent_weights(v).size == ps.size
    assert np.array_equal(dag.sources(), np.flatnonzero(dag.in_degree() == 0))
    assert np.array_equal(dag.sinks(), np.flatnonzero(dag.out_degree() == 0))


@pytest.mark.parametrize("layout", LOW_HIGH)
def test_low_high_layouts_point_from_lower_to_higher_ids(layout):
    for seed in SEEDS:
        dag = build_dag(layout, 30, DAGParams(), rng(seed))
        assert np.all(dag.src < dag.dst)


@pytest.mark.parametrize("layout", ["RandomTree", "ReverseRandomTree"])
def test_trees_have_one_root_and_n_minus_one_edges(layout):
    for n in SIZES:
        for seed in SEEDS:
            dag = build_dag(layout, n, DAGParams(), rng(seed))
            assert dag.src.size == n - 1
            assert nx.is_tree(to_nx(dag).to_undirected())
            if layout == "RandomTree":
                deg, other = dag.in_degree(), dag.out_degree()
            else:
                deg, other = dag.out_degree(), dag.in_degree()
            (root,) = np.flatnonzero(deg == 0)
            assert np.all(np.delete(deg, root) == 1)
            assert other[root] >= 1


def test_erdos_renyi_density_matches_p():
    p = params(er_p_choices=Choices(kind="range", value=[0.5, 0.5]))
    n = 60
    densities = [build_dag("ErdosRenyi", n, p, rng(s)).src.size / (n * (n - 1) / 2) for s in SEEDS]
    # 1770 pairs: one standard deviation of the density is ~0.012.
    assert abs(np.mean(densities) - 0.5) < 0.03


def test_barabasi_albert_without_sink_steps_has_m_times_n_minus_m_edges():
    p = params(ba_sink_edge_dropout=0.0, ba_flip_leaf_edge_prob=0.0)
    for m in (1, 2, 3):
        for n in (2, 3, 4, 10, 30):
            dag = build_dag("BarabasiAlbert", n, dataclasses.replace(p, ba_m=m), rng(n + m))
            mm = min(m, n - 1)
            assert dag.src.size == mm * (n - mm)
            assert nx.is_weakly_connected(to_nx(dag))


def test_barabasi_albert_sink_dropout_removes_edges():
    keep = build_dag("BarabasiAlbert", 40, params(ba_sink_edge_dropout=0.0), rng(5))
    drop = build_dag("BarabasiAlbert", 40, params(ba_sink_edge_dropout=1.0), rng(5))
    assert drop.src.size < keep.src.size == 2 * 38


def test_barabasi_albert_leaf_flips_respect_max_in_degree():
    for max_in in (1, 2, 3):
        p = params(ba_flip_leaf_edge_prob=1.0, ba_max_in_degree=max_in, ba_sink_edge_dropout=0.0)
        for seed in SEEDS:
            base = build_dag("BarabasiAlbert", 30, params(ba_sink_edge_dropout=0.0), rng(seed))
            dag = build_dag("BarabasiAlbert", 30, p, rng(seed))
            assert nx.is_directed_acyclic_graph(to_nx(dag))
            # Only flipped edges can raise an in-degree, and a flip never goes past max_in.
            grown = dag.in_degree() > base.in_degree()
            assert np.all(dag.in_degree()[grown] <= max_in)
            assert dag.src.size == base.src.size


def test_barabasi_albert_leaf_flips_turn_sinks_into_sources():
    p = params(ba_flip_leaf_edge_prob=1.0, ba_max_in_degree=100, ba_sink_edge_dropout=0.0)
    base = build_dag("BarabasiAlbert", 30, params(ba_sink_edge_dropout=0.0, ba_m=1), rng(7))
    dag = build_dag("BarabasiAlbert", 30, dataclasses.replace(p, ba_m=1), rng(7))
    leaves = [s for s in base.sinks().tolist() if base.in_degree()[s] == 1]
    assert leaves and all(dag.in_degree()[s] == 0 for s in leaves)


def test_layered_every_node_has_parent_or_child_across_layers():
    for seed in range(10):
        for n in (2, 5, 12, 40):
            dag = build_dag("Layered", n, params(layered_edge_dropout_p=0.5), rng(seed))
            g = to_nx(dag)
            assert nx.is_weakly_connected(g)
            src0 = dag.sources()
            # Layers are consecutive id ranges: the first layer is the sources, every other
            # node has a parent; the last layer is the sinks, every other node has a child.
            assert np.array_equal(src0, np.arange(src0.size))
            snk = dag.sinks()
            assert np.array_equal(snk, np.arange(n - snk.size, n))
            # Edges join consecutive layers: every path from a source to a node has the same
            # length (its layer), and layers are non-decreasing in node id.
            layer = np.zeros(n, dtype=np.int64)
            for v in dag.topo_order.tolist():
                ps = dag.parents(v)
                if ps.size:
                    assert np.all(layer[ps] == layer[ps[0]])
                    layer[v] = layer[ps[0]] + 1
            assert np.all(layer[dag.dst] == layer[dag.src] + 1)
            assert np.all(np.diff(layer) >= 0)


def test_layered_depth_two_is_bipartite_between_two_id_ranges():
    p = params(layered_depth_choices=Choices(kind="range", value=[2, 2]))
    dag = build_dag("Layered", 10, p, rng(0))
    cut = dag.sources().size
    assert np.all(dag.src < cut) and np.all(dag.dst >= cut)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_same_seed_same_dag_different_seed_different_dag(layout):
    a = build_dag(layout, 25, DAGParams(), rng(11))
    b = build_dag(layout, 25, DAGParams(), rng(11))
    c = build_dag(layout, 25, DAGParams(), rng(12))
    for f in ("src", "dst", "weight", "topo_order"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    same = a.src.size == c.src.size and np.array_equal(a.src, c.src)
    assert not (same and np.array_equal(a.dst, c.dst) and np.array_equal(a.weight, c.weight))


@pytest.mark.parametrize(
    ("name", "dist"),
    [
        ("gaussian", stats.norm()),
        ("lognormal", stats.lognorm(s=1.0)),
        ("cauchy", stats.cauchy()),
        ("uniform", stats.uniform(loc=-2.0, scale=4.0)),
    ],
)
def test_edge_weights_follow_the_picked_distribution(name, dist):
    p = params(
        edge_weight_dist_choices=Choices(kind="set", value=[name]),
        er_p_choices=Choices(kind="range", value=[0.8, 0.8]),
    )
    w = build_dag("ErdosRenyi", 60, p, rng(0)).weight
    assert w.size > 1000
    assert stats.kstest(w, dist.cdf).pvalue > 1e-3


def test_one_weight_distribution_per_dag():
    w = build_dag("ErdosRenyi", 60, DAGParams(), rng(4)).weight
    pvalues = [
        stats.kstest(w, d.cdf).pvalue
        for d in (stats.norm(), stats.lognorm(s=1.0), stats.cauchy(), stats.uniform(-2, 4))
    ]
    assert sum(pv > 1e-3 for pv in pvalues) == 1
    assert set(EDGE_WEIGHT_DISTS) == {"gaussian", "lognormal", "cauchy", "uniform"}


def test_unknown_layout_names_the_valid_ones():
    with pytest.raises(ValueError, match="ErdosRenyi"):
        build_dag("Erdos", 5, DAGParams(), rng(0))


def test_compile_dag_rejects_cycles_and_duplicates():
    with pytest.raises(ValueError, match="cycle"):
        compile_dag(3, np.array([0, 1, 2]), np.array([1, 2, 0]), np.zeros(3))
    with pytest.raises(ValueError, match="repeat"):
        compile_dag(3, np.array([0, 0]), np.array([1, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="self-loop"):
        compile_dag(3, np.array([1]), np.array([1]), np.zeros(1))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_ancestors_are_the_nodes_with_a_path_to_a_target(layout):
    dag = build_dag(layout, 25, params(), rng(3))
    graph = to_nx(dag)
    targets = np.array([4, 17])
    want = set(targets.tolist())
    for t in targets.tolist():
        want |= nx.ancestors(graph, t)
    assert set(np.flatnonzero(dag.ancestors(targets)).tolist()) == want


def test_ancestors_of_a_chain_stop_at_the_target():
    dag = compile_dag(5, [0, 1, 2, 3], [1, 2, 3, 4], [1.0] * 4)
    assert dag.ancestors(np.array([2])).tolist() == [True, True, True, False, False]
    assert not dag.ancestors(np.array([], dtype=np.int64)).any()
