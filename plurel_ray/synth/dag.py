"""DAG layouts: the topologies of the table graph and of every table's SCM.

What each layout draws: docs/prior.md#dag-layouts.

Each layout is written directly against a `numpy.random.Generator`, not networkx's random
graph generators: those have changed algorithm and seeding between networkx releases, and a
database must be a pure function of (seed, config, generator version). A layout returns an
int64 `(E, 2)` array of (parent, child) edges; `build_dag` draws the edge weights and
compiles everything into a `CompiledDAG` of sorted arrays before any per-row work.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from plurel_ray.errors import ConfigError

if TYPE_CHECKING:
    from plurel_ray.config import DAGParams

Layout = Callable[[int, "DAGParams", np.random.Generator], np.ndarray]


@dataclass(frozen=True, eq=False)  # eq=False: elementwise array `==` has no bool value
class CompiledDAG:
    """A weighted DAG as arrays; edges sorted by (child, parent) so parents are a slice.

    Args:
        num_nodes: node count n; nodes are 0..n-1.
        src: int64 (E,), the parent of each edge.
        dst: int64 (E,), the child of each edge (non-decreasing).
        weight: float64 (E,), the weight of each edge.
        topo_order: int64 (n,), Kahn's order taking the smallest ready node first.
    """

    num_nodes: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    topo_order: np.ndarray

    @cached_property
    def parent_ptr(self) -> np.ndarray:
        """CSR offsets (n+1,): node v's in-edges are `parent_ptr[v]:parent_ptr[v + 1]`."""
        return np.searchsorted(self.dst, np.arange(self.num_nodes + 1)).astype(np.int64)

    def parents(self, node: int) -> np.ndarray:
        """The parent ids of `node`, ascending."""
        return self.src[self.parent_ptr[node] : self.parent_ptr[node + 1]]

    def parent_weights(self, node: int) -> np.ndarray:
        """The weights of `node`'s in-edges, aligned with `parents(node)`."""
        return self.weight[self.parent_ptr[node] : self.parent_ptr[node + 1]]

    def in_degree(self) -> np.ndarray:
        """(n,) number of parents of each node."""
        return np.bincount(self.dst, minlength=self.num_nodes).astype(np.int64)

    def out_degree(self) -> np.ndarray:
        """(n,) number of children of each node."""
        return np.bincount(self.src, minlength=self.num_nodes).astype(np.int64)

    def sources(self) -> np.ndarray:
        """Nodes without parents, ascending."""
        return np.flatnonzero(self.in_degree() == 0)

    def sinks(self) -> np.ndarray:
        """Nodes without children, ascending."""
        return np.flatnonzero(self.out_degree() == 0)

    def ancestors(self, nodes: np.ndarray) -> np.ndarray:
        """(n,) bool: `nodes` and every node with a path to one of them."""
        marked = np.zeros(self.num_nodes, dtype=bool)
        marked[nodes] = True
        marked_list = marked.tolist()
        position = np.empty(self.num_nodes, dtype=np.int64)
        position[self.topo_order] = np.arange(self.num_nodes)
        # Edges by their child's topological position, last first: every edge out of a
        # child has been seen before the child's mark is read.
        order = np.argsort(-position[self.dst], kind="stable")
        for parent, child in zip(self.src[order].tolist(), self.dst[order].tolist(), strict=True):
            if marked_list[child]:
                marked_list[parent] = True
        return np.asarray(marked_list, dtype=bool)


def compile_dag(
    num_nodes: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> CompiledDAG:
    """Check edges, sort them by (child, parent) and compute a topological order.

    Args:
        num_nodes: node count n.
        src: (E,) parent of each edge.
        dst: (E,) child of each edge.
        weight: (E,) weight of each edge, reordered along with the edges.

    Raises:
        ValueError: an edge leaves 0..n-1, is a self-loop or a duplicate, or the edges
            contain a cycle.
    """
    src, dst = np.asarray(src, np.int64).ravel(), np.asarray(dst, np.int64).ravel()
    weight = np.asarray(weight, np.float64).ravel()
    if not (src.size == dst.size == weight.size):
        raise ValueError(
            f"src, dst, weight differ in length: {src.size}, {dst.size}, {weight.size}"
        )
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= num_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {num_nodes})")
    if np.any(src == dst):
        raise ValueError("DAG edges must not be self-loops")
    order = np.lexsort((src, dst))
    src, dst, weight = src[order], dst[order], weight[order]
    if np.any((src[1:] == src[:-1]) & (dst[1:] == dst[:-1])):
        raise ValueError("DAG edges must not repeat")
    topo = _topo_order(num_nodes, src, dst)
    for a in (src, dst, weight, topo):
        a.setflags(write=False)  # shared by every consumer of the DAG; nobody may mutate it
    return CompiledDAG(num_nodes, src, dst, weight, topo)


def _topo_order(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    children: list[list[int]] = [[] for _ in range(n)]
    for u, v in zip(src.tolist(), dst.tolist(), strict=True):
        children[u].append(v)
    indeg = np.bincount(dst, minlength=n).tolist()
    ready = [v for v in range(n) if indeg[v] == 0]  # ascending, hence already a heap
    order: list[int] = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in children[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, v)
    if len(order) < n:
        raise ValueError("DAG edges contain a cycle")
    return np.asarray(order, dtype=np.int64)


# ---- shared steps: components, "connect", "orient low→high" ----


def _no_edges() -> np.ndarray:
    return np.empty((0, 2), dtype=np.int64)


def _as_edges(pairs: list[tuple[int, int]] | np.ndarray) -> np.ndarray:
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _components(n: int, edges: np.ndarray) -> list[np.ndarray]:
    """Undirected components (union-find), ordered by smallest member; members ascending."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps trees shallow
            x = parent[x]
        return x

    for u, v in edges.tolist():
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)  # the root is the smallest member
    roots = np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)
    return [np.flatnonzero(roots == r) for r in np.unique(roots)]


def _connect(n: int, edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Connect: join consecutive components by one edge between random members."""
    comps = _components(n, edges)
    extra = [(int(rng.choice(a)), int(rng.choice(b))) for a, b in itertools.pairwise(comps)]
    return np.concatenate([edges, _as_edges(extra)])


def _orient_low_high(edges: np.ndarray) -> np.ndarray:
    return np.sort(edges, axis=1)


# ---- layouts: f(n, dag_params, rng) -> int64 (E, 2) (parent, child); n < 2 gives no edges ----


def _erdos_renyi(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """G(n, p) over the pairs i < j with `p ∈ er_p_choices`; connect; orient low→high."""
    if n < 2:
        return _no_edges()
    p = float(params.er_p_choices.sample(rng))
    iu, ju = np.triu_indices(n, k=1)
    keep = rng.random(iu.size) < p
    return _orient_low_high(_connect(n, np.stack([iu[keep], ju[keep]], axis=1), rng))


def _random_cauchy(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """Edge i→j (i < j) with probability sigmoid(A + B_i + C_j), all standard Cauchy."""
    if n < 2:
        return _no_edges()
    a, b, c = rng.standard_cauchy(), rng.standard_cauchy(n), rng.standard_cauchy(n)
    iu, ju = np.triu_indices(n, k=1)
    x = a + b[iu] + c[ju]
    z = np.exp(-np.abs(x))  # never overflows, unlike exp(-x) for heavy-tailed negative x
    prob = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    keep = rng.random(iu.size) < prob
    return _orient_low_high(_connect(n, np.stack([iu[keep], ju[keep]], axis=1), rng))


def _barabasi_albert(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """Preferential attachment, oriented low→high, relabelled, then sinks thinned/flipped.

    Growth follows networkx >= 2.6 `barabasi_albert_graph`: a star on m+1 nodes (centre 0),
    then each node m+1..n-1 attaches to m distinct earlier nodes drawn with probability
    proportional to degree, so there are exactly m·(n-m) edges before the sink steps.
    """
    if n < 2:
        return _no_edges()
    m = max(1, min(params.ba_m, n - 1))
    pairs = [(0, leaf) for leaf in range(1, m + 1)]
    repeated = [0] * m + list(range(1, m + 1))  # each node once per incident edge
    for new in range(m + 1, n):
        targets: list[int] = []  # a list, not a set, so iteration order is the draw order
        while len(targets) < m:
            t = repeated[int(rng.integers(len(repeated)))]
            if t not in targets:
                targets.append(t)
        pairs += [(t, new) for t in targets]
        repeated += targets + [new] * m
    edges = _orient_low_high(_connect(n, _as_edges(pairs), rng))
    edges = rng.permutation(n)[edges]  # relabel; each edge keeps its direction
    return _thin_and_flip_sinks(n, edges, params, rng)


def _thin_and_flip_sinks(
    n: int, edges: np.ndarray, params: DAGParams, rng: np.random.Generator
) -> np.ndarray:
    parents: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges.tolist():
        parents[v].append(u)
    out_deg = np.bincount(edges[:, 0], minlength=n)
    for s in np.flatnonzero(out_deg == 0).tolist():
        if len(parents[s]) > 1 and rng.random() < params.ba_sink_edge_dropout:
            parents[s].pop(int(rng.integers(len(parents[s]))))
    # Sinks are re-read after thinning, which may have emptied a parent's out-edges. A flip
    # u→s ⇒ s→u turns the sink s into a source, so it can never close a cycle; the flips
    # only add in-edges to non-sinks, so the list stays valid while we go.
    out_deg = np.bincount([u for ps in parents for u in ps], minlength=n)
    for s in np.flatnonzero(out_deg == 0).tolist():
        if len(parents[s]) == 1 and rng.random() < params.ba_flip_leaf_edge_prob:
            u = parents[s][0]
            if len(parents[u]) + 1 > params.ba_max_in_degree:
                continue
            parents[s] = []
            parents[u].append(s)
    return _as_edges([(u, v) for v in range(n) for u in parents[v]])


def _random_tree_bfs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform labelled tree (Prüfer decode), random root, (parent, child) edges in BFS order."""
    if n == 2:
        pairs = [(0, 1)]
    else:
        seq = rng.integers(n, size=n - 2).tolist()
        degree = [1] * n
        for x in seq:
            degree[x] += 1
        leaves = [v for v in range(n) if degree[v] == 1]
        pairs = []
        for x in seq:
            leaf = heapq.heappop(leaves)
            pairs.append((leaf, x))
            degree[x] -= 1
            if degree[x] == 1:
                heapq.heappush(leaves, x)
        pairs.append((heapq.heappop(leaves), heapq.heappop(leaves)))
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in pairs:
        adj[u].append(v)
        adj[v].append(u)
    root = int(rng.integers(n))
    seen, queue, out = {root}, [root], []
    for u in queue:  # appending while iterating walks the BFS frontier
        for v in sorted(adj[u]):
            if v not in seen:
                seen.add(v)
                queue.append(v)
                out.append((u, v))
    return _as_edges(out)


def _random_tree(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """Uniform random labelled tree with a random root; edges point away from the root."""
    return _no_edges() if n < 2 else _random_tree_bfs(n, rng)


def _reverse_random_tree(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """`_random_tree` with every edge reversed: edges point to the root."""
    return _no_edges() if n < 2 else _random_tree_bfs(n, rng)[:, ::-1].copy()


def _watts_strogatz(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """Small-world ring (networkx `watts_strogatz_graph` semantics); connect; orient low→high.

    k ∈ {2, 4} is clamped to [2, n] and made even; k == n gives the complete graph. Each
    lattice edge (u, u+j) is rewired with probability p ∈ ws_rewire_p_choices to (u, w), w
    uniform over the nodes that are neither u nor a neighbour of u (skipped when none are).
    """
    if n < 2:
        return _no_edges()
    p = float(params.ws_rewire_p_choices.sample(rng))
    k = min((2, 4)[int(rng.integers(2))], n)
    k = max(2, k - k % 2)
    if k >= n:
        return _as_edges(np.stack(np.triu_indices(n, k=1), axis=1))
    adj = [set() for _ in range(n)]
    for j in range(1, k // 2 + 1):
        for u in range(n):
            adj[u].add((u + j) % n)
            adj[(u + j) % n].add(u)
    for j in range(1, k // 2 + 1):
        for u in range(n):
            if rng.random() >= p or len(adj[u]) >= n - 1:
                continue
            v = (u + j) % n
            free = [w for w in range(n) if w != u and w not in adj[u]]
            w = free[int(rng.integers(len(free)))]
            adj[u].discard(v)
            adj[v].discard(u)
            adj[u].add(w)
            adj[w].add(u)
    edges = _as_edges([(u, v) for u in range(n) for v in sorted(adj[u]) if u < v])
    return _orient_low_high(_connect(n, edges, rng))


def _layered(n: int, params: DAGParams, rng: np.random.Generator) -> np.ndarray:
    """Consecutive layers of node ids; edges only from layer l to layer l+1.

    Depth d ∈ layered_depth_choices is clamped to [2, n] (one layer would have no edges).
    Each layer gets one node, the other n-d nodes go to uniform random layers. Every edge
    between consecutive layers is kept with probability 1 - layered_edge_dropout_p; then a
    parentless node of layer l+1 gets a random parent in l and a childless node of layer l
    a random child in l+1. That can still leave components (e.g. two parallel chains), so
    consecutive components are joined by an edge from a random layer l of one to l+1 of the
    next — every component reaches every layer, so such an edge always exists.
    """
    if n < 2:
        return _no_edges()
    d = min(max(int(params.layered_depth_choices.sample(rng)), 2), n)
    sizes = 1 + np.bincount(rng.integers(d, size=n - d), minlength=d)
    start = np.concatenate([[0], np.cumsum(sizes)])
    blocks = []
    for lay in range(d - 1):
        a = np.arange(start[lay], start[lay + 1])
        b = np.arange(start[lay + 1], start[lay + 2])
        keep = rng.random((a.size, b.size)) >= params.layered_edge_dropout_p
        for col in np.flatnonzero(~keep.any(axis=0)).tolist():
            keep[int(rng.integers(a.size)), col] = True
        for row in np.flatnonzero(~keep.any(axis=1)).tolist():
            keep[row, int(rng.integers(b.size))] = True
        r, c = np.nonzero(keep)
        blocks.append(np.stack([a[r], b[c]], axis=1))
    edges = np.concatenate(blocks)
    layer_of = np.repeat(np.arange(d), sizes)
    extra = []
    comps = _components(n, edges)
    for lo, hi in itertools.pairwise(comps):
        lay = int(rng.integers(d - 1))
        extra.append(
            (int(rng.choice(lo[layer_of[lo] == lay])), int(rng.choice(hi[layer_of[hi] == lay + 1])))
        )
    return np.concatenate([edges, _as_edges(extra)])


LAYOUTS: dict[str, Layout] = {
    "ErdosRenyi": _erdos_renyi,
    "BarabasiAlbert": _barabasi_albert,
    "RandomTree": _random_tree,
    "ReverseRandomTree": _reverse_random_tree,
    "Layered": _layered,
    "WattsStrogatz": _watts_strogatz,
    "RandomCauchy": _random_cauchy,
}

EDGE_WEIGHT_DISTS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "gaussian": lambda rng, size: rng.standard_normal(size),
    "lognormal": lambda rng, size: rng.lognormal(0.0, 1.0, size),
    "cauchy": lambda rng, size: rng.standard_cauchy(size),
    "uniform": lambda rng, size: rng.uniform(-2.0, 2.0, size),
}


def build_dag(
    layout: str, num_nodes: int, dag_params: DAGParams, rng: np.random.Generator
) -> CompiledDAG:
    """A weighted DAG of the named layout; all edge weights come from ONE distribution.

    Args:
        layout: a key of `LAYOUTS`.
        num_nodes: node count n (n < 2 gives isolated nodes and no edges).
        dag_params: layout parameters and `edge_weight_dist_choices`.
        rng: generator for every draw (edges first, then the distribution, then weights).

    Raises:
        ConfigError: (a ValueError) the layout or weight distribution name is unknown.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown DAG layout {layout!r}; valid layouts: {sorted(LAYOUTS)}")
    edges = _as_edges(LAYOUTS[layout](num_nodes, dag_params, rng))
    order = np.lexsort((edges[:, 0], edges[:, 1]))  # weights are drawn in stored order
    edges = edges[order]
    dist = dag_params.edge_weight_dist_choices.sample(rng)
    if dist not in EDGE_WEIGHT_DISTS:
        raise ConfigError(
            f"unknown edge_weight_dist {dist!r}; valid names: {sorted(EDGE_WEIGHT_DISTS)}"
        )
    weight = EDGE_WEIGHT_DISTS[dist](rng, len(edges))
    return compile_dag(num_nodes, edges[:, 0], edges[:, 1], weight)
