//! The one place Rust errors become Python exceptions. Each concern has one error enum
//! and each enum one mapping here (`From<…> for PyErr`, so bindings use `?`):
//!
//! | Rust error (concern)                         | Python exception (`plurel_ray._native`) |
//! |----------------------------------------------|------------------------------------------|
//! | `StoreError`, `FormatError` (store files)    | `StoreError`                             |
//! | `PreprocessError::Dataset` (preprocessing)   | `PreprocessError`                        |
//! | `PreprocessError::Write` (preprocessing)     | `StoreError`                             |
//! | `SamplerError::EmptySource` (sampler)        | `EmptySourceError` (a `SamplerError`)    |
//! | `SamplerError::Invalid` (sampler)            | `SamplerError`                           |
//! | `MlpError` (kernels) and bad NumPy arguments | `ValueError`                             |
//!
//! All but `ValueError` derive from `NativeError` (itself a `ValueError`), so Python
//! wrappers catch them by type (`plurel_ray.store`), never by message text.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::format::FormatError;
use crate::mlp::MlpError;
use crate::panic_guard;
use crate::sampler::{SamplerError, StoreError};
use crate::store::PreprocessError;

/// The exception classes, named as Python sees them (the Rust error types of the same
/// names live in their concerns' modules).
pub mod py {
    use pyo3::exceptions::PyValueError;

    pyo3::create_exception!(
        plurel_ray._native,
        NativeError,
        PyValueError,
        "Base of the typed errors the native core raises (the message names the file or argument)."
    );
    pyo3::create_exception!(
        plurel_ray._native,
        StoreError,
        NativeError,
        "A node store file is missing, truncated, corrupted or inconsistent, or the store \
         could not be written (the message names the file)."
    );
    pyo3::create_exception!(
        plurel_ray._native,
        PreprocessError,
        NativeError,
        "A table, column or file of a database cannot become a node store (the message names it)."
    );
    pyo3::create_exception!(
        plurel_ray._native,
        SamplerError,
        NativeError,
        "A sampler argument the stores cannot satisfy (the message names it)."
    );
    pyo3::create_exception!(
        plurel_ray._native,
        EmptySourceError,
        SamplerError,
        "A source has no item in its split: nothing to sample (the message names the source)."
    );
}

impl From<StoreError> for PyErr {
    fn from(e: StoreError) -> Self {
        py::StoreError::new_err(e.to_string())
    }
}

impl From<FormatError> for PyErr {
    fn from(e: FormatError) -> Self {
        py::StoreError::new_err(e.to_string())
    }
}

impl From<PreprocessError> for PyErr {
    fn from(e: PreprocessError) -> Self {
        match e {
            PreprocessError::Dataset(_) => py::PreprocessError::new_err(e.to_string()),
            PreprocessError::Write { .. } => py::StoreError::new_err(e.to_string()),
        }
    }
}

impl From<SamplerError> for PyErr {
    fn from(e: SamplerError) -> Self {
        match e {
            SamplerError::Store(e) => e.into(),
            SamplerError::EmptySource { .. } => py::EmptySourceError::new_err(e.to_string()),
            SamplerError::Invalid(msg) => py::SamplerError::new_err(msg),
        }
    }
}

impl From<MlpError> for PyErr {
    fn from(e: MlpError) -> Self {
        PyValueError::new_err(e.to_string())
    }
}

/// A sampler argument the stores cannot satisfy, raised before the sampler runs.
pub fn sampler_argument(msg: impl Into<String>) -> PyErr {
    SamplerError::Invalid(msg.into()).into()
}

/// Run sampler work that reads the stores in `dirs`; a panic (a corrupted store file
/// the checks missed) becomes a `StoreError` naming the stores, never a
/// `PanicException` (`panic_guard`).
pub fn guard_stores<T>(
    dirs: &[PathBuf],
    work: impl FnOnce() -> Result<T, SamplerError>,
) -> Result<T, PyErr> {
    match panic_guard::catch(work) {
        Ok(result) => Ok(result?),
        Err(panic) => {
            let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Err(py::StoreError::new_err(format!(
                "{}: reading the store failed ({panic}); a store file is corrupted: rebuild \
                 the store with plurel_ray.store.preprocess",
                names.join(", ")
            )))
        }
    }
}
