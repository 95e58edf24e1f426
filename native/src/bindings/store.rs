//! Bindings of the node store: its format (`format`) and preprocessing a database into
//! a store (`store`).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::{format, panic_guard, store};

/// Validate a 16-byte store header and return its format version.
///
/// Raises `StoreError` naming what is wrong (too short, bad magic, unsupported version).
#[pyfunction]
pub fn check_header(data: &[u8]) -> PyResult<u32> {
    Ok(format::check_header(data)?)
}

/// Describe the store format this build reads and writes.
#[pyfunction]
pub fn format_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("magic", PyBytes::new(py, &format::STORE_MAGIC))?;
    info.set_item("version", format::STORE_FORMAT_VERSION)?;
    info.set_item("crate_version", env!("CARGO_PKG_VERSION"))?;
    Ok(info)
}

/// Preprocess a database into the array files of a node store in `out_dir`; returns
/// counts, statistics, tables, columns, skipped columns, warnings and files. The plan's
/// shape and the report: `_native.pyi`.
#[pyfunction]
pub fn preprocess<'py>(
    py: Python<'py>,
    plan: store::Plan,
    out_dir: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    // Reading a table catches its own panics and names the file (`store::read`); this
    // guard keeps any other panic from escaping as a PanicException.
    let summary = py.detach(|| {
        panic_guard::catch(|| store::preprocess(&plan, &out_dir)).unwrap_or_else(|panic| {
            Err(store::PreprocessError::Dataset(format!(
                "dataset {:?}: preprocessing into {} failed ({panic})",
                plan.name,
                out_dir.display()
            )))
        })
    })?;
    summary.into_pyobject(py)
}
