//! Checked NumPy arguments for the bindings: every dtype, dimension, contiguity and
//! aliasing problem becomes a ValueError that names the argument and the fix.

use numpy::ndarray::{Dimension, Ix1, Ix2};
use numpy::{
    dtype, Element, PyArray, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray,
    PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray, PyReadwriteArray2, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::activations::PARAMS_PER_LAYER;
use crate::aggregate::Agg;
use crate::mlp::{Layer, Mlp, MlpError};

/// An `MlpError` (or any message) as the ValueError Python sees.
pub fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `obj` as a C-contiguous `T` array of `D`'s rank, or a ValueError naming `name`.
fn checked<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyArray<T, D>>> {
    let py = obj.py();
    let arr = obj.cast::<PyUntypedArray>().map_err(|_| {
        let kind = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        value_error(format!("{name} must be a numpy array, got {kind}"))
    })?;
    if let Some(ndim) = D::NDIM {
        if arr.ndim() != ndim {
            return Err(value_error(format!(
                "{name} must be {ndim}-D, got shape {:?}",
                arr.shape()
            )));
        }
    }
    let (got, want) = (arr.dtype(), dtype::<T>(py));
    if !got.is_equiv_to(&want) {
        return Err(value_error(format!(
            "{name} must have dtype {want}, got {got} (convert with .astype(np.{want}))"
        )));
    }
    if !arr.is_c_contiguous() {
        return Err(value_error(format!(
            "{name} must be C-contiguous (pass np.ascontiguousarray({name}))"
        )));
    }
    Ok(obj.cast::<PyArray<T, D>>()?.clone())
}

/// A checked read-only view of `obj`.
pub fn readonly<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    checked::<T, D>(obj, name)?
        .try_readonly()
        .map_err(|e| value_error(format!("{name}: {e} (it overlaps an output argument)")))
}

/// A checked writable view of `obj` whose shape must be `shape`.
pub fn readwrite<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    shape: [usize; 2],
) -> PyResult<PyReadwriteArray<'py, T, Ix2>> {
    let arr = checked::<T, Ix2>(obj, name)?;
    if arr.shape() != shape {
        return Err(value_error(format!(
            "{name} must have shape ({}, {}), got {:?}",
            shape[0],
            shape[1],
            arr.shape()
        )));
    }
    arr.try_readwrite().map_err(|e| {
        value_error(format!(
            "{name}: {e}: it must be writeable and share no memory with another argument"
        ))
    })
}

/// Borrow `acc2` as the `(n, width)` logexp sums when `agg` is logexp (ignored otherwise).
pub fn logexp_sums<'py>(
    agg: Agg,
    acc2: Option<&Bound<'py, PyAny>>,
    shape: [usize; 2],
) -> PyResult<Option<PyReadwriteArray2<'py, f32>>> {
    match (agg, acc2) {
        (Agg::LogExp, Some(a)) => Ok(Some(readwrite::<f32>(a, "acc2", shape)?)),
        (Agg::LogExp, None) => Err(value_error(
            "agg 3 (logexp) needs acc2: float32 running sums shaped like acc, starting at 0",
        )),
        _ => Ok(None),
    }
}

/// Contiguous data of a checked array (cannot fail after `checked`; mapped anyway).
pub fn slice<'a, T: Element, D: Dimension>(
    arr: &'a PyReadonlyArray<'_, T, D>,
    name: &str,
) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|e| value_error(format!("{name}: {e}")))
}

/// Mutable contiguous data of a checked array.
pub fn slice_mut<'a, T: Element>(
    arr: &'a mut PyReadwriteArray<'_, T, Ix2>,
    name: &str,
) -> PyResult<&'a mut [T]> {
    arr.as_slice_mut()
        .map_err(|e| value_error(format!("{name}: {e}")))
}

/// A 1-D float32 or float64 array, or a sequence of Python floats, as f64 values.
pub fn floats(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<f64>> {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        if arr.dtype().is_equiv_to(&dtype::<f32>(obj.py())) {
            let arr = readonly::<f32, Ix1>(obj, name)?;
            return Ok(slice(&arr, name)?.iter().map(|&c| f64::from(c)).collect());
        }
        let arr = readonly::<f64, Ix1>(obj, name)?;
        return Ok(slice(&arr, name)?.to_vec());
    }
    obj.extract::<Vec<f64>>().map_err(|_| {
        value_error(format!(
            "{name} must be a 1-D float array or a list of floats"
        ))
    })
}

/// The borrowed arrays that describe one MLP (see `_native.pyi` for the layout).
pub struct MlpArrays<'py> {
    weights: Vec<PyReadonlyArray2<'py, f32>>,
    act_ids: PyReadonlyArray1<'py, u8>,
    act_params: PyReadonlyArray2<'py, f32>,
    clamps: Vec<f64>,
}

impl<'py> MlpArrays<'py> {
    /// Check and borrow `weights` (a list of 2-D float32 arrays), `act_ids` (uint8),
    /// `act_params` (float32, (len(weights) - 1, 21)) and `clamps` (floats).
    pub fn extract(
        weights: &Bound<'py, PyAny>,
        act_ids: &Bound<'py, PyAny>,
        act_params: &Bound<'py, PyAny>,
        clamps: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
        let weights = weights
            .try_iter()
            .map_err(|_| value_error("weights must be a list of 2-D float32 arrays"))?
            .enumerate()
            .map(|(l, w)| readonly::<f32, Ix2>(&w?, &format!("weights[{l}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let act_params = readonly::<f32, Ix2>(act_params, "act_params")?;
        let shape = act_params.shape();
        if shape != [weights.len().saturating_sub(1), PARAMS_PER_LAYER] {
            return Err(value_error(format!(
                "act_params must have shape (len(weights) - 1, {PARAMS_PER_LAYER}) = ({}, \
                 {PARAMS_PER_LAYER}), got {shape:?}",
                weights.len().saturating_sub(1)
            )));
        }
        let clamps = floats(clamps, "clamps")?;
        Ok(MlpArrays {
            weights,
            act_ids: readonly::<u8, Ix1>(act_ids, "act_ids")?,
            act_params,
            clamps,
        })
    }

    /// The validated MLP over the borrowed data.
    pub fn mlp(&self) -> PyResult<Mlp<'_>> {
        let layers = self
            .weights
            .iter()
            .enumerate()
            .map(|(l, w)| {
                let shape = w.shape();
                Ok(Layer {
                    n_in: shape[0],
                    n_out: shape[1],
                    weights: slice(w, &format!("weights[{l}]"))?,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let ids = slice(&self.act_ids, "act_ids")?;
        let params = slice(&self.act_params, "act_params")?;
        Mlp::new(layers, ids, params, &self.clamps).map_err(|e: MlpError| value_error(e))
    }
}
