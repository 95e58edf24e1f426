//! Binding of the context sampler (`sampler`): `Sampler` over memory-mapped node stores.

use std::path::PathBuf;

use numpy::{Element, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::{guard_stores, sampler_argument};
use super::npy::value_error;
use crate::context_rules::ContextRules;
use crate::sampler::batch::{BatchSlices, EmbeddingSlices};
use crate::sampler::store::{MappedStore, StoreSource};
use crate::sampler::{self, Config, RowSplit, SourceSpec};

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
            sampler_argument(format!(
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
        _ => Err(sampler_argument(format!(
            "split kind must be 'rows' or 'time', got {kind:?}"
        ))),
    }
}

/// Context sampler over memory-mapped node stores. Semantics and batch fields:
/// `_native.pyi`; Python's face is `plurel_ray.store.sampler.Sampler`.
#[pyclass(frozen, name = "Sampler", module = "plurel_ray._native")]
pub struct PySampler {
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
        let rules = ContextRules::parse(context_rules).map_err(sampler_argument)?;
        if emb_dims.len() != store_dirs.len() {
            return Err(sampler_argument(format!(
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
            .map_err(|_| sampler_argument(format!("batch index {index} is negative")))?;
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
            .map_err(|_| sampler_argument(format!("batch index {index} is negative")))?;
        self.new_batch(py, compact, |out| self.inner.fill_batch(index, out))
    }

    /// The contexts of the given items, each seeded by (seed, item) alone.
    #[pyo3(signature = (items, compact=true))]
    fn batch_of_items<'py>(
        &self,
        py: Python<'py>,
        items: Vec<i64>,
        compact: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let items = items
            .into_iter()
            .map(|i| {
                u64::try_from(i).map_err(|_| sampler_argument(format!("item {i} is negative")))
            })
            .collect::<PyResult<Vec<u64>>>()?;
        self.new_batch(py, compact, |out| self.inner.fill_items(&items, out))
    }

    /// (source, node) of every item, as two uint32 arrays in item order.
    fn item_nodes<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>) {
        let (sources, nodes): (Vec<u32>, Vec<u32>) =
            self.inner.item_nodes().map(|(s, n)| (s as u32, n)).unzip();
        (
            PyArray1::from_vec(py, sources),
            PyArray1::from_vec(py, nodes),
        )
    }

    /// The merged embedding matrix, float32 `(vocab, dim)`.
    fn embedding_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let emb = self.inner.embeddings()?;
        PyArray1::from_slice(py, &emb.values).reshape([emb.values.len() / emb.dim, emb.dim])
    }

    /// The merged vocabulary, in global id order.
    fn vocabulary(&self) -> Vec<String> {
        self.inner.vocabulary()
    }
}

impl PySampler {
    /// A batch of fresh arrays (compact or full) that `fill` writes; returns it as the
    /// dict `_native.pyi` documents, with `true_batch_size` what `fill` returned.
    fn new_batch<'py, F>(
        &self,
        py: Python<'py>,
        compact: bool,
        fill: F,
    ) -> PyResult<Bound<'py, PyDict>>
    where
        F: for<'a> FnOnce(BatchSlices<'a>) -> Result<usize, sampler::SamplerError> + Send,
    {
        let shape = self.inner.shape(!compact)?;
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
            let fill = move || fill(out);
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
}
