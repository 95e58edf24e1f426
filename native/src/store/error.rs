//! The one error preprocessing returns: a message naming the table, column or file and,
//! where there is one, the fix. Python sees it as ValueError.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessError(pub String);

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PreprocessError {}

/// `Err(PreprocessError(message))`.
pub fn fail<T>(message: impl Into<String>) -> Result<T, PreprocessError> {
    Err(PreprocessError(message.into()))
}
