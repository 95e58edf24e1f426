//! `plurel_ray._native`: the module's registration only. The logic lives in the concern
//! modules (`format`; `mlp`, `activations`, `aggregate`, `fastmath`, `init`, `noise` for
//! the fused MLP kernels; `store` preprocesses databases into node stores; `sampler`
//! reads node stores and builds context batches); their Python bindings live in
//! `bindings`, one module per concern, and every error reaches Python through
//! `bindings::errors`.

use pyo3::prelude::*;

pub mod activations;
pub mod aggregate;
pub mod array_file;
pub mod bindings;
pub mod context_rules;
pub mod fastmath;
pub mod format;
pub mod init;
pub mod mlp;
pub mod noise;
pub mod panic_guard;
pub mod sampler;
pub mod simd;
pub mod store;

/// Native core of plurel-ray: fused random-MLP kernels, the node store (format and
/// preprocess) and the context sampler.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::bindings::errors::py::{
        EmptySourceError, NativeError, PreprocessError, SamplerError, StoreError,
    };
    #[pymodule_export]
    use super::bindings::kernels::{
        add_noise, dense_accumulate, init_layers, mlp_accumulate, mlp_forward, quantile_tables,
        simd_level, simd_levels, table_accumulate,
    };
    #[pymodule_export]
    use super::bindings::sampler::PySampler;
    #[pymodule_export]
    use super::bindings::store::{check_header, format_info, preprocess};

    /// An unusable PLUREL_RAY_SIMD fails the import with a ValueError naming it,
    /// before any kernel runs.
    #[pymodule_init]
    fn init(_module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        super::simd::configured()
            .map(drop)
            .map_err(super::bindings::npy::value_error)
    }

    #[pymodule_export]
    const STORE_FORMAT_VERSION: u32 = super::format::STORE_FORMAT_VERSION;

    #[pymodule_export]
    const STORE_MAGIC: &[u8] = &super::format::STORE_MAGIC;

    #[pymodule_export]
    #[expect(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
