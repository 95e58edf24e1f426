//! Python bindings, one module per concern: `kernels` (the fused random-MLP kernels),
//! `store` (format and preprocessing), `sampler` (the context sampler). `errors` maps
//! every concern's error enum to its Python exception; `npy` checks NumPy arguments.
//! `lib.rs` only registers what these modules define.

pub mod errors;
pub mod kernels;
pub mod npy;
pub mod sampler;
pub mod store;
