//! Bindings of the fused random-MLP kernels (`mlp`, `aggregate`, `init`, `noise`) and
//! of the SIMD level they run at. NumPy arguments are checked by `npy`; a bad argument
//! is a ValueError naming it.

use numpy::ndarray::{Ix1, Ix2};
use numpy::{PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::npy::{logexp_sums, readonly, readwrite, slice, slice_mut, value_error, MlpArrays};
use crate::aggregate::{self, Agg};
use crate::{init, mlp, noise, simd};

/// The SIMD level the kernels run at: "avx512", "avx2" or "baseline" (the CPU's
/// widest, capped by the environment variable PLUREL_RAY_SIMD).
#[pyfunction]
pub fn simd_level() -> PyResult<&'static str> {
    simd::configured()
        .map(simd::Level::name)
        .map_err(value_error)
}

/// Every SIMD level this CPU runs, slowest first ("baseline" always).
#[pyfunction]
pub fn simd_levels() -> Vec<&'static str> {
    simd::supported()
        .into_iter()
        .map(simd::Level::name)
        .collect()
}

/// Evaluate a random MLP on one scalar per row and fold its clipped output into `acc`
/// (and `acc2` for logexp) in place. Shapes and semantics: `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (x, weights, act_ids, act_params, clamps, term_clamp, agg, acc, acc2=None))]
#[allow(clippy::too_many_arguments)] // mirrors the documented Python signature
pub fn mlp_accumulate(
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
pub fn table_accumulate(
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
pub fn dense_accumulate(
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
pub fn mlp_forward<'py>(
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
pub fn init_layers<'py>(
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
pub fn add_noise(
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
pub fn quantile_tables<'py>(
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
