//! The sampler concern's error: a store on disk is unusable, a source has nothing to
//! sample, or the caller asked for something the stores cannot give. Python sees them
//! as `_native.StoreError`, `_native.EmptySourceError` and `_native.SamplerError`
//! (`bindings::errors`), re-raised as `plurel_ray.errors` types by
//! `plurel_ray/store/sampler.py`.

use std::fmt;
use std::path::PathBuf;

pub use crate::array_file::StoreError;

/// Why a sampler could not be built or could not produce a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplerError {
    Store(StoreError),
    /// Source `source` (table `table` of the store in `store`) has no row that holds
    /// its target column `column`: its task has no item in the chosen split.
    EmptySource {
        source: usize,
        table: u32,
        store: PathBuf,
        column: u32,
    },
    /// A bad argument: unknown id, no sources, too small `max_f2p`, batch index out of
    /// range, missing embeddings. The message names it and the fix.
    Invalid(String),
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "{e}"),
            Self::EmptySource {
                source,
                table,
                store,
                column,
            } => write!(
                f,
                "source {source}: no row of table {table} in {} holds column {column}: \
                 nothing to sample (leave the task out or choose a split with rows)",
                store.display()
            ),
            Self::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for SamplerError {}

impl From<StoreError> for SamplerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Shorthand for `Err(SamplerError::Invalid(..))`.
pub fn invalid<T>(msg: impl Into<String>) -> Result<T, SamplerError> {
    Err(SamplerError::Invalid(msg.into()))
}
