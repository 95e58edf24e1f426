//! The preprocessing concern's error. Python sees `Dataset` as
//! `_native.PreprocessError` (re-raised as `plurel_ray.errors.DatasetError` naming the
//! folder) and `Write` as `_native.StoreError` (`bindings::errors`).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreprocessError {
    /// A table, column or key of the database cannot become a store (an unreadable or
    /// corrupted Parquet file, a missing column, a bad plan). The message names the
    /// table, column or file and, where there is one, the fix.
    Dataset(String),
    /// The store's folder or one of its array files could not be written (disk full,
    /// no permission); `path` names it.
    Write { path: PathBuf, reason: String },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dataset(msg) => f.write_str(msg),
            Self::Write { path, reason } => write!(
                f,
                "{}: cannot write the store ({reason}); free space or choose another \
                 output folder",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PreprocessError {}

/// `Err(PreprocessError::Dataset(message))`.
pub fn fail<T>(message: impl Into<String>) -> Result<T, PreprocessError> {
    Err(PreprocessError::Dataset(message.into()))
}
