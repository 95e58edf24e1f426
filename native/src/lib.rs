//! Python bindings for `plurel_ray._native`. Bindings only: the logic lives in the
//! concern modules (`format`, later the store and the sampler).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pub mod format;

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

/// Native core of plurel-ray: node-store format (the store and the sampler arrive later).
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{check_header, format_info};

    #[pymodule_export]
    const STORE_FORMAT_VERSION: u32 = super::format::STORE_FORMAT_VERSION;

    #[pymodule_export]
    const STORE_MAGIC: &[u8] = &super::format::STORE_MAGIC;

    #[pymodule_export]
    #[expect(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
