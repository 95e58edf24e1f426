//! Python bindings for `plurel_ray._native`. Bindings only: the logic lives in the
//! concern modules (`format`; `mlp`, `activations`, `aggregate`, `fastmath` for the
//! fused MLP kernels; `npy` checks NumPy arguments; `store` preprocesses databases into
//! node stores; `sampler` reads node stores and builds context batches).

use std::path::PathBuf;

use numpy::ndarray::{Ix1, Ix2};
use numpy::{
    Element, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pub mod activations;
pub mod aggregate;
pub mod array_file;
pub mod context_rules;
pub mod fastmath;
pub mod format;
pub mod init;
pub mod mlp;
pub mod noise;
pub mod npy;
pub mod panic_guard;
pub mod sampler;
pub mod simd;
pub mod store;

use aggregate::Agg;
use context_rules::ContextRules;
use npy::{logexp_sums, readonly, readwrite, slice, slice_mut, value_error, MlpArrays};
use sampler::batch::{BatchSlices, EmbeddingSlices};
use sampler::store::{MappedStore, StoreSource};
use sampler::{Config, RowSplit, SamplerError, SourceSpec};

pyo3::create_exception!(
    plurel_ray._native,
    NativeStoreError,
    PyValueError,
    "A node store file is missing, truncated, corrupted or inconsistent (the message names it)."
);
pyo3::create_exception!(
    plurel_ray._native,
    NativeSamplerError,
    PyValueError,
    "A sampler argument the stores cannot satisfy (the message names it)."
);

fn sampler_error(e: SamplerError) -> PyErr {
    match e {
        SamplerError::Store(e) => NativeStoreError::new_err(e.to_string()),
        SamplerError::Invalid(msg) => NativeSamplerError::new_err(msg),
    }
}

/// Run sampler work that reads the stores in `dirs`; a panic (a corrupted store file
/// the checks missed) becomes a NativeStoreError naming the stores, never a
/// PanicException (`panic_guard`).
fn guard_stores<T>(
    dirs: &[PathBuf],
    work: impl FnOnce() -> Result<T, SamplerError>,
) -> PyResult<T> {
    match panic_guard::catch(work) {
        Ok(result) => result.map_err(sampler_error),
        Err(panic) => {
            let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Err(NativeStoreError::new_err(format!(
                "{}: reading the store failed ({panic}); a store file is corrupted: rebuild \
                 the store with plurel_ray.store.preprocess",
                names.join(", ")
            )))
        }
    }
}

/// The SIMD level the kernels run at: "avx512", "avx2" or "baseline" (the CPU's
/// widest, capped by the environment variable PLUREL_RAY_SIMD).
#[pyfunction]
fn simd_level() -> PyResult<&'static str> {
    simd::configured()
        .map(simd::Level::name)
        .map_err(value_error)
}

/// Every SIMD level this CPU runs, slowest first ("baseline" always).
#[pyfunction]
fn simd_levels() -> Vec<&'static str> {
    simd::supported()
        .into_iter()
        .map(simd::Level::name)
        .collect()
}

/// Validate a 16-byte store header and return its format version.
///
/// Raises ValueError naming what is wrong (too short, bad magic, unsupported version).
#[pyfunction]
fn check_header(data: &[u8]) -> PyResult<u32> {
    format::check_header(data).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Describe the store format this build reads and writes.
#[pyfunction]
fn format_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("magic", PyBytes::new(py, &format::STORE_MAGIC))?;
    info.set_item("version", format::STORE_FORMAT_VERSION)?;
    info.set_item("crate_version", env!("CARGO_PKG_VERSION"))?;
    Ok(info)
}

/// Evaluate a random MLP on one scalar per row and fold its clipped output into `acc`
/// (and `acc2` for logexp) in place. Shapes and semantics: `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (x, weights, act_ids, act_params, clamps, term_clamp, agg, acc, acc2=None))]
#[allow(clippy::too_many_arguments)] // mirrors the documented Python signature
fn mlp_accumulate(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    weights: &Bound<'_, PyAny>,
    act_ids: &Bound<'_, PyAny>,
    act_params: &Bound<'_, PyAny>,
    clamps: &Bound<'_, PyAny>,
    term_clamp: f64,
    agg: i64,
    acc: &Bound<'_, PyAny>,
    acc2: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let agg = Agg::from_id(agg).map_err(value_error)?;
    let x = readonly::<f32, Ix1>(x, "x")?;
    let arrays = MlpArrays::extract(weights, act_ids, act_params, clamps)?;
    let mlp = arrays.mlp()?;
    let shape = [x.len(), mlp.n_out()];
    let mut acc = readwrite::<f32>(acc, "acc", shape)?;
    let mut acc2 = logexp_sums(agg, acc2, shape)?;
    let xs = slice(&x, "x")?;
    let accs = slice_mut(&mut acc, "acc")?;
    let acc2s = match acc2.as_mut() {
        Some(a) => Some(slice_mut(a, "acc2")?),
        None => None,
    };
    py.detach(|| mlp::accumulate(xs, &mlp, term_clamp, agg, accs, acc2s))
        .map_err(value_error)
}

/// Fold `table[idx[i]]` into row `i` of `acc` (and `acc2` for logexp) in place.
#[pyfunction]
#[pyo3(signature = (table, idx, agg, acc, acc2=None))]
fn table_accumulate(
    py: Python<'_>,
    table: &Bound<'_, PyAny>,
    idx: &Bound<'_, PyAny>,
    agg: i64,
    acc: &Bound<'_, PyAny>,
    acc2: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let agg = Agg::from_id(agg).map_err(value_error)?;
    let table = readonly::<f32, Ix2>(table, "table")?;
    let idx = readonly::<i64, Ix1>(idx, "idx")?;
    let width = table.shape()[1];
    let shape = [idx.len(), width];
    let mut acc = readwrite::<f32>(acc, "acc", shape)?;
    let mut acc2 = logexp_sums(agg, acc2, shape)?;
    let (rows, ids) = (slice(&table, "table")?, slice(&idx, "idx")?);
    let accs = slice_mut(&mut acc, "acc")?;
    let acc2s = match acc2.as_mut() {
        Some(a) => Some(slice_mut(a, "acc2")?),
        None => None,
    };
    py.detach(|| aggregate::table_accumulate(rows, width, ids, agg, accs, acc2s))
        .map_err(value_error)
}

/// Fold a dense `(n, width)` float32 `term` into `acc` (and `acc2` for logexp) in
/// place, as `table_accumulate` does with gathered rows.
#[pyfunction]
#[pyo3(signature = (term, agg, acc, acc2=None))]
fn dense_accumulate(
    py: Python<'_>,
    term: &Bound<'_, PyAny>,
    agg: i64,
    acc: &Bound<'_, PyAny>,
    acc2: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let agg = Agg::from_id(agg).map_err(value_error)?;
    let term = readonly::<f32, Ix2>(term, "term")?;
    let shape = [term.shape()[0], term.shape()[1]];
    let mut acc = readwrite::<f32>(acc, "acc", shape)?;
    let mut acc2 = logexp_sums(agg, acc2, shape)?;
    let rows = slice(&term, "term")?;
    let accs = slice_mut(&mut acc, "acc")?;
    let acc2s = match acc2.as_mut() {
        Some(a) => Some(slice_mut(a, "acc2")?),
        None => None,
    };
    py.detach(|| aggregate::dense_accumulate(rows, shape[1], agg, accs, acc2s))
        .map_err(value_error)
}

/// Evaluate a random MLP on the rows of a 2-D float32 `h`; returns a new
/// `(n, out)` float32 array. Shapes and semantics: `_native.pyi`.
#[pyfunction]
fn mlp_forward<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    act_ids: &Bound<'py, PyAny>,
    act_params: &Bound<'py, PyAny>,
    clamps: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let h = readonly::<f32, Ix2>(h, "h")?;
    let arrays = MlpArrays::extract(weights, act_ids, act_params, clamps)?;
    let mlp = arrays.mlp()?;
    let (n, n_in) = (h.shape()[0], h.shape()[1]);
    if n_in != mlp.n_in() {
        return Err(value_error(format!(
            "h has {n_in} columns but weights[0] has {} input rows",
            mlp.n_in()
        )));
    }
    let out = PyArray2::<f32>::zeros(py, [n, mlp.n_out()], false);
    let mut view = out.try_readwrite().map_err(value_error)?;
    let (input, dst) = (slice(&h, "h")?, slice_mut(&mut view, "out")?);
    py.detach(|| mlp::forward(input, &mlp, dst))
        .map_err(value_error)?;
    drop(view);
    Ok(out)
}

/// Draw the weights of `len(gain)` equally shaped layers; returns float32
/// `(count, fan_in * fan_out)`. Shapes and semantics: `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (seed, tables, table_offset, gain, keep_below, sparse, fan_in, fan_out))]
#[allow(clippy::too_many_arguments)] // mirrors the documented Python signature
fn init_layers<'py>(
    py: Python<'py>,
    seed: u64,
    tables: &Bound<'py, PyAny>,
    table_offset: &Bound<'py, PyAny>,
    gain: &Bound<'py, PyAny>,
    keep_below: &Bound<'py, PyAny>,
    sparse: &Bound<'py, PyAny>,
    fan_in: usize,
    fan_out: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let tables = readonly::<f32, Ix1>(tables, "tables")?;
    let table_offset = readonly::<u32, Ix1>(table_offset, "table_offset")?;
    let gain = readonly::<f32, Ix1>(gain, "gain")?;
    let keep_below = readonly::<u32, Ix1>(keep_below, "keep_below")?;
    let sparse = readonly::<bool, Ix1>(sparse, "sparse")?;
    let spec = init::LayerSpec {
        table_offset: slice(&table_offset, "table_offset")?,
        gain: slice(&gain, "gain")?,
        keep_below: slice(&keep_below, "keep_below")?,
        sparse: slice(&sparse, "sparse")?,
    };
    let out = PyArray2::<f32>::zeros(py, [spec.gain.len(), fan_in * fan_out], false);
    let mut view = out.try_readwrite().map_err(value_error)?;
    let (tables, dst) = (slice(&tables, "tables")?, slice_mut(&mut view, "out")?);
    py.detach(|| init::fill_layers(seed, tables, &spec, fan_in, fan_out, dst))
        .map_err(value_error)?;
    drop(view);
    Ok(out)
}

/// Add node noise drawn from a 4096-entry quantile `table` to `h` in place and clamp
/// to ±`clamp`. Shapes and semantics: `_native.pyi`.
#[pyfunction]
fn add_noise(
    py: Python<'_>,
    table: &Bound<'_, PyAny>,
    seed: u64,
    h: &Bound<'_, PyAny>,
    clamp: f32,
) -> PyResult<()> {
    let table = readonly::<f32, Ix1>(table, "table")?;
    let shape = h.cast::<numpy::PyUntypedArray>()?.shape().to_vec();
    let shape: [usize; 2] = shape
        .try_into()
        .map_err(|_| value_error("h must be a 2-D float32 array"))?;
    let mut h = readwrite::<f32>(h, "h", shape)?;
    let (table, dst) = (slice(&table, "table")?, slice_mut(&mut h, "h")?);
    py.detach(|| noise::add_noise(table, seed, dst, clamp))
        .map_err(value_error)
}

/// Quantile tables `(rows, 4096)` float32 from CDFs `(rows, G)` float64 sampled on
/// `grid`, times `scale`. Shapes and semantics: `_native.pyi`.
#[pyfunction]
fn quantile_tables<'py>(
    py: Python<'py>,
    cdf: &Bound<'py, PyAny>,
    grid: &Bound<'py, PyAny>,
    scale: f64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let cdf = readonly::<f64, Ix2>(cdf, "cdf")?;
    let grid = readonly::<f64, Ix1>(grid, "grid")?;
    let rows = cdf.shape()[0];
    let out = PyArray2::<f32>::zeros(py, [rows, noise::NOISE_TABLE_LEN], false);
    let mut view = out.try_readwrite().map_err(value_error)?;
    let (cdf, grid, dst) = (
        slice(&cdf, "cdf")?,
        slice(&grid, "grid")?,
        slice_mut(&mut view, "out")?,
    );
    py.detach(|| noise::quantile_tables(cdf, grid, scale, dst))
        .map_err(value_error)?;
    drop(view);
    Ok(out)
}

/// A new zeroed array of `shape`, borrowed for writing.
fn fresh<'py, T: Element>(
    py: Python<'py>,
    shape: &[usize],
) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    PyArrayDyn::<T>::zeros(py, shape, false)
        .try_readwrite()
        .map_err(value_error)
}

/// A source as Python passes it: (store, table, target column, leakage columns, split),
/// the split being `("rows", start, end)` or `("time", after, up_to)` (None: open) or None.
type SourceTuple = (
    usize,
    u32,
    u32,
    Vec<u32>,
    Option<(String, Option<i64>, Option<i64>)>,
);

fn row_split((kind, a, b): (String, Option<i64>, Option<i64>)) -> PyResult<RowSplit> {
    let position = |v: Option<i64>| {
        v.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
            NativeSamplerError::new_err(format!(
                "split rows need two bounds in [0, 2^32), got {a:?}, {b:?}"
            ))
        })
    };
    match kind.as_str() {
        "rows" => Ok(RowSplit::Positions {
            start: position(a)?,
            end: position(b)?,
        }),
        "time" => Ok(RowSplit::Times { after: a, up_to: b }),
        _ => Err(NativeSamplerError::new_err(format!(
            "split kind must be 'rows' or 'time', got {kind:?}"
        ))),
    }
}

/// Context sampler over memory-mapped node stores. Semantics and batch fields:
/// `_native.pyi`; Python's face is `plurel_ray.store.sampler.Sampler`.
#[pyclass(frozen, name = "Sampler", module = "plurel_ray._native")]
struct PySampler {
    inner: sampler::Sampler<MappedStore>,
    /// The store folders, named when reading them fails.
    store_dirs: Vec<PathBuf>,
    /// A dedicated rayon pool when `num_threads` was given, else the global one.
    pool: Option<rayon::ThreadPool>,
}

#[pymethods]
impl PySampler {
    #[new]
    #[pyo3(signature = (
        store_dirs, emb_dims, sources, *, batch_size, ctx_len=1024, max_bfs_width=128,
        seed=0, rank=0, world_size=1, max_f2p=None, num_threads=None,
        context_rules="reference"
    ))]
    #[allow(clippy::too_many_arguments)] // mirrors the documented Python signature
    fn new(
        py: Python<'_>,
        store_dirs: Vec<PathBuf>,
        emb_dims: Vec<Option<usize>>,
        sources: Vec<SourceTuple>,
        batch_size: usize,
        ctx_len: usize,
        max_bfs_width: usize,
        seed: u64,
        rank: usize,
        world_size: usize,
        max_f2p: Option<usize>,
        num_threads: Option<usize>,
        context_rules: &str,
    ) -> PyResult<Self> {
        let rules = ContextRules::parse(context_rules).map_err(NativeSamplerError::new_err)?;
        if emb_dims.len() != store_dirs.len() {
            return Err(NativeSamplerError::new_err(format!(
                "emb_dims has {} entries for {} stores",
                emb_dims.len(),
                store_dirs.len()
            )));
        }
        let specs = sources
            .into_iter()
            .map(|(store, table, target, leakage, split)| {
                Ok(SourceSpec {
                    store,
                    table,
                    target,
                    leakage,
                    split: split.map(row_split).transpose()?,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let config = Config {
            batch_size,
            ctx_len,
            max_bfs_width,
            seed,
            rank,
            world_size,
            max_f2p,
            rules,
        };
        let inner = py.detach(|| {
            guard_stores(&store_dirs, || {
                let stores = store_dirs
                    .iter()
                    .zip(&emb_dims)
                    .map(|(dir, &dim)| MappedStore::open(dir, dim))
                    .collect::<Result<Vec<_>, _>>()?;
                sampler::Sampler::new(stores, &specs, config)
            })
        })?;
        let pool = match num_threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(value_error)?,
            ),
            None => None,
        };
        Ok(Self {
            inner,
            store_dirs,
            pool,
        })
    }

    #[getter]
    fn num_items(&self) -> u64 {
        self.inner.num_items()
    }

    #[getter]
    fn batches_per_epoch(&self) -> u64 {
        self.inner.batches_per_epoch()
    }

    #[getter]
    fn max_f2p(&self) -> usize {
        self.inner.max_f2p()
    }

    /// The rules contexts are built with ("reference" or "strict").
    #[getter]
    fn context_rules(&self) -> &'static str {
        self.inner.rules().name()
    }

    #[getter]
    fn emb_dim(&self) -> Option<usize> {
        self.inner.embeddings().ok().map(|e| e.dim)
    }

    fn epoch_of(&self, index: i64) -> PyResult<u64> {
        let index = u64::try_from(index)
            .map_err(|_| NativeSamplerError::new_err(format!("batch index {index} is negative")))?;
        Ok(self.inner.epoch_of(index))
    }

    /// Per store, the counts its arrays imply (for the cross-check with meta.json).
    fn store_counts<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .stores()
            .iter()
            .map(|s| {
                let i = s.info();
                let d = PyDict::new(py);
                for (k, v) in [
                    ("nodes", i.nodes),
                    ("cells", i.cells),
                    ("f2p_edges", i.f2p_edges),
                    ("p2f_edges", i.p2f_edges),
                    ("task_p2f_edges", i.task_p2f_edges),
                    ("tables", i.tables),
                    ("columns", i.columns),
                    ("vocab", i.vocab),
                    ("max_f2p", i.max_f2p),
                ] {
                    d.set_item(k, v)?;
                }
                Ok(d)
            })
            .collect()
    }

    #[pyo3(signature = (index, compact=true))]
    fn batch<'py>(
        &self,
        py: Python<'py>,
        index: i64,
        compact: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let index = u64::try_from(index)
            .map_err(|_| NativeSamplerError::new_err(format!("batch index {index} is negative")))?;
        let shape = self.inner.shape(!compact).map_err(sampler_error)?;
        let (cells, with_f2p) = (
            [shape.batch, shape.len],
            [shape.batch, shape.len, shape.f2p],
        );
        let emb_shape = [shape.batch, shape.len, shape.dim];
        let mut i32s = [
            fresh::<i32>(py, &cells)?,
            fresh::<i32>(py, &with_f2p)?,
            fresh::<i32>(py, &cells)?,
            fresh::<i32>(py, &cells)?,
            fresh::<i32>(py, &cells)?,
            fresh::<i32>(py, &cells)?,
        ];
        let mut f32s = [
            fresh::<f32>(py, &cells)?,
            fresh::<f32>(py, &cells)?,
            fresh::<f32>(py, &cells)?,
        ];
        let mut bools = [
            fresh::<bool>(py, &cells)?,
            fresh::<bool>(py, &cells)?,
            fresh::<bool>(py, &cells)?,
            fresh::<bool>(py, &cells)?,
        ];
        let mut times = fresh::<i64>(py, &cells)?;
        let mut embs = if compact {
            None
        } else {
            Some([fresh::<u16>(py, &emb_shape)?, fresh::<u16>(py, &emb_shape)?])
        };
        let real = {
            let [node, f2p, table, col, class, sem] = i32s.each_mut().map(|a| a.as_slice_mut());
            let [num, date, boolean] = f32s.each_mut().map(|a| a.as_slice_mut());
            let [masks, targets, task, padding] = bools.each_mut().map(|a| a.as_slice_mut());
            let embeddings = match embs.as_mut() {
                Some([c, t]) => Some(EmbeddingSlices {
                    col_name_values: c.as_slice_mut().map_err(value_error)?,
                    text_values: t.as_slice_mut().map_err(value_error)?,
                }),
                None => None,
            };
            let out = BatchSlices {
                node_idxs: node.map_err(value_error)?,
                f2p_nbr_idxs: f2p.map_err(value_error)?,
                table_name_idxs: table.map_err(value_error)?,
                col_name_idxs: col.map_err(value_error)?,
                class_value_idxs: class.map_err(value_error)?,
                sem_types: sem.map_err(value_error)?,
                number_values: num.map_err(value_error)?,
                datetime_values: date.map_err(value_error)?,
                boolean_values: boolean.map_err(value_error)?,
                masks: masks.map_err(value_error)?,
                is_targets: targets.map_err(value_error)?,
                is_task_nodes: task.map_err(value_error)?,
                is_padding: padding.map_err(value_error)?,
                timestamps: times.as_slice_mut().map_err(value_error)?,
                embeddings,
            };
            let fill = || self.inner.fill_batch(index, out);
            py.detach(|| {
                guard_stores(&self.store_dirs, || match &self.pool {
                    Some(pool) => pool.install(fill),
                    None => fill(),
                })
            })?
        };
        let dict = PyDict::new(py);
        let names_i32 = [
            "node_idxs",
            "f2p_nbr_idxs",
            "table_name_idxs",
            "col_name_idxs",
            "class_value_idxs",
            "sem_types",
        ];
        for (name, a) in names_i32.iter().zip(&i32s) {
            dict.set_item(name, &***a)?;
        }
        for (name, a) in ["number_values", "datetime_values", "boolean_values"]
            .iter()
            .zip(&f32s)
        {
            dict.set_item(name, &***a)?;
        }
        for (name, a) in ["masks", "is_targets", "is_task_nodes", "is_padding"]
            .iter()
            .zip(&bools)
        {
            dict.set_item(name, &***a)?;
        }
        dict.set_item("timestamps", &**times)?;
        if let Some([c, t]) = &embs {
            dict.set_item("col_name_values", &***c)?;
            dict.set_item("text_values", &***t)?;
        }
        dict.set_item("true_batch_size", real)?;
        Ok(dict)
    }

    /// The merged embedding matrix, float32 `(vocab, dim)`.
    fn embedding_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let emb = self.inner.embeddings().map_err(sampler_error)?;
        PyArray1::from_slice(py, &emb.values).reshape([emb.values.len() / emb.dim, emb.dim])
    }

    /// The merged vocabulary, in global id order.
    fn vocabulary(&self) -> Vec<String> {
        self.inner.vocabulary()
    }
}

/// Preprocess a database into the array files of a node store in `out_dir`; returns
/// counts, statistics, tables, columns, skipped columns, warnings and files. The plan's
/// shape and the report: `_native.pyi`.
#[pyfunction]
fn preprocess<'py>(
    py: Python<'py>,
    plan: store::Plan,
    out_dir: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    // Reading a table catches its own panics and names the file (`store::read`); this
    // guard keeps any other panic from escaping as a PanicException.
    let summary = py
        .detach(|| {
            panic_guard::catch(|| store::preprocess(&plan, &out_dir)).unwrap_or_else(|panic| {
                Err(store::PreprocessError(format!(
                    "dataset {:?}: preprocessing into {} failed ({panic})",
                    plan.name,
                    out_dir.display()
                )))
            })
        })
        .map_err(value_error)?;
    summary.into_pyobject(py)
}

/// Native core of plurel-ray: fused random-MLP kernels, the node store (format and
/// preprocess) and the context sampler.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{
        add_noise, check_header, dense_accumulate, format_info, init_layers, mlp_accumulate,
        mlp_forward, preprocess, quantile_tables, simd_level, simd_levels, table_accumulate,
        NativeSamplerError, NativeStoreError, PySampler,
    };

    /// An unusable PLUREL_RAY_SIMD fails the import with a ValueError naming it,
    /// before any kernel runs.
    #[pymodule_init]
    fn init(_module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        super::simd::configured()
            .map(drop)
            .map_err(super::value_error)
    }

    #[pymodule_export]
    const STORE_FORMAT_VERSION: u32 = super::format::STORE_FORMAT_VERSION;

    #[pymodule_export]
    const STORE_MAGIC: &[u8] = &super::format::STORE_MAGIC;

    #[pymodule_export]
    #[expect(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
