//! The two ways a sampler can fail: a store on disk is unusable, or the caller asked
//! for something the stores cannot give. Python sees them as `StoreError` and
//! `SamplerError` (`plurel_ray.errors`), mapped by `plurel_ray/store/sampler.py`.

use std::fmt;
use std::path::PathBuf;

use crate::array_file::OpenError;
use crate::sampler::store::TEXT_EMB_FILE;

/// A store file is missing, truncated, corrupted, of another version, or inconsistent
/// with the other files. `path` names the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Embeddings are added to a finished store by a separate step.
        let fix = if self.path.ends_with(TEXT_EMB_FILE) {
            "re-run plurel_ray.store.embed on the store"
        } else {
            "rebuild the store with plurel_ray.store.preprocess"
        };
        write!(f, "{}: {} ({fix})", self.path.display(), self.reason)
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        Self {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// Why a sampler could not be built or could not produce a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplerError {
    Store(StoreError),
    /// A bad argument: unknown id, empty source, too small `max_f2p`, batch index out
    /// of range, missing embeddings. The message names it and the fix.
    Invalid(String),
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "{e}"),
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
