"""Type stub for the Rust extension `plurel_ray._native` (native/src/lib.rs registers it;
the bindings are native/src/bindings/)."""

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

__version__: str
STORE_FORMAT_VERSION: int
STORE_MAGIC: bytes

class _FormatInfo(TypedDict):  # stub-only helper type
    magic: bytes
    version: int
    crate_version: str

def format_info() -> _FormatInfo:
    """Describe the store format this build reads and writes."""

def check_header(data: bytes) -> int:
    """Validate a 16-byte store header and return its format version.

    Raises:
        StoreError: the header is too short, has a bad magic, or an unsupported version.
    """

# Errors (native/src/bindings/errors.rs, docs/native.md#errors). Each concern's Rust error
# enum maps to one class; plurel_ray.store re-raises them, by type, as plurel_ray.errors
# types. Bad NumPy arguments and kernel arguments stay plain ValueError.

class NativeError(ValueError):
    """Base of the typed errors below; the message names the file or argument."""

class StoreError(NativeError):
    """A node store file is missing, truncated, corrupted, of another format version or
    inconsistent, or the store could not be written (→ plurel_ray.errors.StoreError)."""

class PreprocessError(NativeError):
    """A table, column or file of a database cannot become a node store
    (→ plurel_ray.errors.DatasetError)."""

class SamplerError(NativeError):
    """A sampler argument the stores cannot satisfy (→ plurel_ray.errors.SamplerError)."""

class EmptySourceError(SamplerError):
    """A source has no item in its split: nothing to sample
    (→ plurel_ray.errors.EmptySourceError)."""

# SIMD level (native/src/simd.rs, docs/native.md). The kernels run the widest build the
# CPU has, capped by the environment variable PLUREL_RAY_SIMD=avx512|avx2|baseline, read
# once; every level gives the same bits. Importing this module with any other value of
# PLUREL_RAY_SIMD raises ValueError naming it and the choices.

def simd_level() -> str:
    """The level the kernels run at: "avx512", "avx2" or "baseline" (SSE2 on x86-64)."""

def simd_levels() -> list[str]:
    """Every level this CPU runs, slowest first; "baseline" always."""

# Fused random-MLP kernels (native/src/mlp.rs, activations.rs, aggregate.rs). Arrays are
# checked, never converted: a wrong dtype, rank, shape or layout raises ValueError.
# Aggregation ids follow config.AGGREGATIONS (0 sum, 1 max, 2 product, 3 logexp);
# activation ids follow config.ACTIVATIONS. The GIL is released while computing.

def mlp_accumulate(
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    act_ids: np.ndarray,
    act_params: np.ndarray,
    clamps: np.ndarray | Sequence[float],
    term_clamp: float,
    agg: int,
    acc: np.ndarray,
    acc2: np.ndarray | None = None,
) -> None:
    """Evaluate a random MLP on one scalar per row and fold its clipped output into
    `acc` in place: per row `h = x[i] · W0[0]`, then per hidden layer l
    `h = clip(act_l(h), ±clamps[l]) @ W_{l+1}`, then `t = clip(h, ±term_clamp)` and
    `acc[i] = agg(acc[i], t)`. Sums run in ascending input index; results depend only
    on the inputs (not on the CPU: the AVX-512 + FMA, AVX2 + FMA and SSE2 builds give
    identical bits, NaN payloads aside; multiply-adds are fused, correctly rounded).

    Args:
        x: (n,) float32, C-contiguous.
        weights: per layer a (in, out) float32 C-contiguous array; weights[0] has one
            row, each layer's `in` equals the previous `out`, widths are 1..64.
        act_ids: (len(weights) - 1,) uint8 activation ids (index in config.ACTIVATIONS).
        act_params: (len(weights) - 1, 21) float32; for random_sine, columns 0:7
            amplitudes, 7:14 frequencies, 14:21 phases (amplitude 0 = unused slot);
            ignored for the other activations.
        clamps: (len(weights) - 1,) float32/float64 array or list of floats >= 0 (inf
            allowed): the bound applied after each activation.
        term_clamp: bound applied to the MLP output (>= 0).
        agg: 0 sum (`acc += t`), 1 max (`np.maximum`, NaN propagates), 2 product,
            3 logexp (streaming: `acc` is the running max m, start -inf; `acc2` the
            running Σ exp(t - m), start 0; finish with `acc + np.log(acc2)`).
        acc: (n, out) float32 C-contiguous, writeable, updated in place; initialise
            to the aggregation's identity (0, -inf, 1, -inf).
        acc2: (n, out) float32 like `acc`; required for logexp, ignored otherwise.

    Raises:
        ValueError: any argument of the wrong type, dtype, rank, shape or layout; an
            activation id >= 29; agg outside 0..3; acc2 missing for logexp; arrays
            that overlap an output. Nothing is written when it raises.
    """

def mlp_forward(
    h: np.ndarray,
    weights: Sequence[np.ndarray],
    act_ids: np.ndarray,
    act_params: np.ndarray,
    clamps: np.ndarray | Sequence[float],
) -> np.ndarray:
    """Evaluate a random MLP on the rows of `h`, as `RandomMLP.__call__` does (the first
    layer is a matmul; no term clamp).

    Args:
        h: (n, in) float32 C-contiguous, `in` = weights[0].shape[0].
        weights, act_ids, act_params, clamps: as for `mlp_accumulate`.

    Returns:
        a new (n, weights[-1].shape[1]) float32 array.

    Raises:
        ValueError: as for `mlp_accumulate`, or `h` not matching weights[0].
    """

def table_accumulate(
    table: np.ndarray,
    idx: np.ndarray,
    agg: int,
    acc: np.ndarray,
    acc2: np.ndarray | None = None,
) -> None:
    """Fold `table[idx[i]]` into row i of `acc` (and `acc2` for logexp) in place, with
    the aggregations of `mlp_accumulate` and no clamp (tables come pre-clipped).

    Args:
        table: (k, out) float32 C-contiguous.
        idx: (n,) int64, every value in [0, k) (checked before anything is written).
        agg: aggregation id, as for `mlp_accumulate`.
        acc: (n, out) float32, updated in place.
        acc2: (n, out) float32, required for logexp.

    Raises:
        ValueError: wrong dtype/shape/layout, an index out of range, acc2 missing.
    """

def init_layers(
    seed: int,
    tables: np.ndarray,
    table_offset: np.ndarray,
    gain: np.ndarray,
    keep_below: np.ndarray,
    sparse: np.ndarray,
    fan_in: int,
    fan_out: int,
) -> np.ndarray:
    """Random weights of `count = len(gain)` layers of shape (fan_in, fan_out).

    Per weight, two 16-bit draws from a SplitMix64 stream seeded by `seed`: an index
    into the layer's inverse-CDF table, times `gain`, kept when the second draw is
    below `keep_below` (else 0). Sparse layers then zero ceil(fan_out / 2) random
    entries of every input row, as torch's `sparse_` does.

    Args:
        seed: stream seed (0 ≤ seed < 2**64).
        tables: float32, inverse-CDF tables of 65536 entries each, back to back.
        table_offset: (count,) uint32, start of each layer's table in `tables`.
        gain: (count,) float32 factor per layer.
        keep_below: (count,) uint32, density · 65536 per layer.
        sparse: (count,) bool.
        fan_in, fan_out: the layer shape.

    Returns:
        a new (count, fan_in * fan_out) float32 array, row-major per layer.

    Raises:
        ValueError: inconsistent lengths, wrong dtypes, an offset outside `tables`.
    """

def dense_accumulate(
    term: np.ndarray,
    agg: int,
    acc: np.ndarray,
    acc2: np.ndarray | None = None,
) -> None:
    """Fold the rows of a dense `(n, out)` float32 `term` into `acc` (and `acc2` for
    logexp) in place, with the aggregations of `mlp_accumulate` and no clamp.

    Raises:
        ValueError: wrong dtype/shape/layout, acc2 missing for logexp.
    """

def add_noise(table: np.ndarray, seed: int, h: np.ndarray, clamp: float) -> None:
    """`h[i] = clamp(h[i] + table[draw_i], ±clamp)` for every element of the 2-D float32
    `h`, each draw a 12-bit index into the 4096-entry `table` from a SplitMix64 stream
    seeded by `seed`.

    Raises:
        ValueError: `table` not of 4096 float32 entries, `h` not 2-D writable float32,
            a negative or NaN `clamp`.
    """

def quantile_tables(cdf: np.ndarray, grid: np.ndarray, scale: float) -> np.ndarray:
    """Quantile tables `(rows, 4096)` float32: row `r` at each bin midpoint
    `u = (i + 0.5) / 4096` holds `np.interp(u, cdf[r], grid) * scale`, where points on a
    flat stretch of the CDF keep only the first (so the inverse is defined).

    Args:
        cdf: `(rows, G)` float64, each row non-decreasing, sampled on `grid`.
        grid: `(G,)` float64, increasing, G >= 2.
        scale: factor on every quantile.

    Raises:
        ValueError: wrong dtype/shape, a grid of fewer than 2 increasing values, NaN in
            `cdf`.
    """

# Context sampler (native/src/sampler/). Use it through plurel_ray.store.sampler.Sampler,
# which resolves table and column names through each store's meta.json and maps
# StoreError, SamplerError and EmptySourceError to their plurel_ray.errors types. A
# panic while opening stores or filling a batch (a corruption the checks missed) is
# raised as StoreError naming the stores, never as pyo3's PanicException.

class Sampler:
    """Context batches (docs/contexts.md) over memory-mapped node stores.

    Args:
        store_dirs: the store directories; each is mapped and cross-validated.
        emb_dims: per store, the embedding width from meta.json to map text_emb.bin
            with, or None to ignore embeddings.
        sources: (store index, table id, target column id, leakage column ids) per source.
        batch_size: sequences per batch and rank.
        ctx_len: cells per sequence.
        max_bfs_width: database children followed per node at most.
        seed: seeds the epoch shuffles and every context (with epoch and global slot).
        rank, world_size: this rank's share of every global batch.
        max_f2p: parents per position in f2p_nbr_idxs; None = the most any node has.
        num_threads: threads of a dedicated rayon pool; None = the global pool.
        context_rules: "reference" or "strict" (docs/contexts.md), the rules the
            stores were written under; the caller checks that they agree.
    """

    def __init__(
        self,
        store_dirs: Sequence[str],
        emb_dims: Sequence[int | None],
        sources: Sequence[tuple[int, int, int, Sequence[int]]],
        *,
        batch_size: int,
        ctx_len: int = 1024,
        max_bfs_width: int = 128,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_f2p: int | None = None,
        num_threads: int | None = None,
        context_rules: str = "reference",
    ) -> None: ...
    @property
    def num_items(self) -> int: ...
    @property
    def batches_per_epoch(self) -> int: ...
    @property
    def max_f2p(self) -> int: ...
    @property
    def emb_dim(self) -> int | None: ...
    @property
    def context_rules(self) -> str:
        """The rules contexts are built with: "reference" or "strict"."""
    def epoch_of(self, index: int) -> int: ...
    def store_counts(self) -> list[dict[str, int]]:
        """Per store, the counts its arrays imply (meta.json "counts" keys)."""
    def batch(self, index: int, compact: bool = True) -> dict[str, np.ndarray | int]:
        """Batch `index` of this rank, counting across epochs; fields as documented in
        plurel_ray.store.sampler. The GIL is released while sequences are built."""
    def batch_of_items(
        self, items: Sequence[int], compact: bool = True
    ) -> dict[str, np.ndarray | int]:
        """The contexts of `items` (item numbers, at most batch_size), then padding; item
        i's context is drawn from (seed, i) alone, whatever batch it is in."""
    def item_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(source index, node id) of every item, uint32 arrays in item order."""
    def embedding_matrix(self) -> np.ndarray:
        """The merged float32 (vocab, dim) embedding matrix."""
    def vocabulary(self) -> list[str]:
        """The merged vocabulary, in global id order."""

# Node-store preprocessing (native/src/store/). The plan is plain data; the Python face is
# plurel_ray.store.preprocess, which builds it from a dataset's manifests.

class _PlanTable(TypedDict):  # stub-only helper types, down to `preprocess`
    name: str  # store table name, unique: "users", "<task>/train"
    vocab_name: str  # table name in the vocabulary (the task name for task tables)
    kind: str  # "db" or "task"
    path: str  # the table's Parquet file
    pkey: str | None
    time_col: str | None
    fkeys: list[tuple[str, str]]  # (column, parent store table name), in edge order
    stats_from: str | None  # an earlier table whose column statistics this one reuses

class _Plan(TypedDict):
    name: str  # dataset name, for messages
    val_timestamp: int  # seconds; rows at or before it (or without a time) are training rows
    rules: str  # "reference" or "strict": which rows statistics count, booleans (docs/contexts.md)
    tables: list[_PlanTable]  # in node order

class _Counts(TypedDict):
    nodes: int
    cells: int
    f2p_edges: int
    p2f_edges: int
    task_p2f_edges: int
    tables: int
    columns: int
    vocab: int
    max_f2p: int

class _Stats(TypedDict):
    mean: float
    std: float

class _TableReport(TypedDict):
    name: str
    node_offset: int
    num_nodes: int
    dangling_fkeys: int

class _ColumnReport(TypedDict):
    id: int
    table: str  # store name of the first table that has the column
    name: str
    sem_type: str  # "number", "text", "datetime" or "boolean"
    mean: float  # value = (x - mean) / std; (0, 1) for text and strict booleans
    std: float
    vocab_id: int  # of "<name> of <vocab name>"

class _Skipped(TypedDict):
    table: str
    name: str
    reason: str  # "binary", "all null", "unsupported type …"

class _FileReport(TypedDict):
    bytes: int
    crc32: int

class _PreprocessReport(TypedDict):
    counts: _Counts
    datetime: _Stats
    tables: list[_TableReport]
    columns: list[_ColumnReport]
    skipped_columns: list[_Skipped]
    warnings: list[str]
    files: dict[str, _FileReport]

def preprocess(plan: _Plan, out_dir: str) -> _PreprocessReport:
    """Read every table of `plan` and write the array files of a node store into
    `out_dir` (created if needed; meta.json is the caller's), as docs/store-format.md
    lays them out. Tables are read in parallel; the GIL is released throughout.

    One node per row, tables in plan order. Primary keys are not cells, foreign keys
    are edges, the time column is the node time and a datetime cell. Numbers are
    standardised per column, datetimes (seconds) with one global mean/std (0 or
    undefined std → 1). Under `rules` "strict": from training rows of tables without
    `stats_from` (sample std), booleans 0/1. Under "reference": numbers from every row
    of tables without `stats_from` (sample std), booleans likewise standardised per
    column (one that holds one value stays 0/1), datetimes from every row of every table
    (population std).
    Foreign-key values (integers, strings, integral floats, lists of them) map to
    parent rows through the parent's primary key; null gives no edge, a value no
    parent holds is counted in `dangling_fkeys`.

    Raises:
        PreprocessError: an unreadable or missing file, a missing key or time column, a
            key of a type keys cannot have, a duplicate primary key, a foreign key to an
            unknown table or one without a primary key, a column with two types across
            the splits of a task, more rows than u32 node ids; the message names the
            table, column or file. A panic while decoding a Parquet file (the parquet
            crate on a corrupted file) is this error too, naming the file, never
            pyo3's PanicException.
        StoreError: the store's folder or an array file could not be written.
    """
