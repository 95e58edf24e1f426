//! The node-store file format: magic, version and header validation.
//!
//! Every store file starts with the same 16-byte prefix (magic, version, reserved); array
//! files continue it into the 64-byte header of `array_file`. The whole layout is
//! documented in `docs/store-format.md`.
//!
//! | bytes  | field                                  |
//! |--------|----------------------------------------|
//! | 0..8   | magic `b"PLRLSTOR"`                    |
//! | 8..12  | format version, `u32` little-endian    |
//! | 12..16 | reserved, `u32` little-endian (zero)   |
//!
//! Nothing here panics on input: the header is validated before any byte of it is trusted.

use std::fmt;

/// The 8 bytes every store file starts with.
pub const STORE_MAGIC: [u8; 8] = *b"PLRLSTOR";

/// The store format version this build writes and reads.
pub const STORE_FORMAT_VERSION: u32 = 1;

/// Length of the prefix every store file starts with, in bytes.
pub const HEADER_LEN: usize = 16;

/// Why a header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer than `HEADER_LEN` bytes were given.
    TooShort { len: usize },
    /// The first 8 bytes are not `STORE_MAGIC`.
    BadMagic { found: [u8; 8] },
    /// The version field names a format this build cannot read.
    UnsupportedVersion { found: u32 },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "store header too short: got {len} bytes, need {HEADER_LEN} \
                 (file truncated or not a plurel-ray store)"
            ),
            Self::BadMagic { found } => write!(
                f,
                "bad store magic: expected {:?}, found {:?} (not a plurel-ray store file)",
                String::from_utf8_lossy(&STORE_MAGIC),
                String::from_utf8_lossy(found)
            ),
            Self::UnsupportedVersion { found } => write!(
                f,
                "unsupported store format version {found}: this build reads version \
                 {STORE_FORMAT_VERSION}; rebuild the store with this plurel-ray version"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// Validate a store header and return its format version.
///
/// Only the first `HEADER_LEN` bytes are inspected; trailing bytes are ignored.
pub fn check_header(bytes: &[u8]) -> Result<u32, FormatError> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(FormatError::TooShort { len: bytes.len() });
    };
    let (magic, rest) = header.split_at(8);
    let (version, _reserved) = rest.split_at(4);
    if magic != STORE_MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(magic);
        return Err(FormatError::BadMagic { found });
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(version);
    let version = u32::from_le_bytes(word);
    if version != STORE_FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    Ok(version)
}

/// Build a valid header for `version` (used by writers and tests).
pub fn encode_header(version: u32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(&STORE_MAGIC);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_current_version() {
        assert_eq!(check_header(&encode_header(STORE_FORMAT_VERSION)), Ok(1));
    }

    #[test]
    fn ignores_trailing_bytes() {
        let mut buf = encode_header(STORE_FORMAT_VERSION).to_vec();
        buf.extend_from_slice(b"payload");
        assert_eq!(check_header(&buf), Ok(STORE_FORMAT_VERSION));
    }

    #[test]
    fn rejects_short_input_without_panicking() {
        for len in 0..HEADER_LEN {
            let buf = &encode_header(STORE_FORMAT_VERSION)[..len];
            assert_eq!(check_header(buf), Err(FormatError::TooShort { len }));
        }
    }

    #[test]
    fn rejects_bad_magic() {
        let mut buf = encode_header(STORE_FORMAT_VERSION);
        buf[0] = b'X';
        let err = check_header(&buf).unwrap_err();
        assert_eq!(
            err,
            FormatError::BadMagic {
                found: *b"XLRLSTOR"
            }
        );
        assert!(err.to_string().contains("bad store magic"));
    }

    #[test]
    fn rejects_unsupported_version() {
        for version in [0, 2, u32::MAX] {
            let err = check_header(&encode_header(version)).unwrap_err();
            assert_eq!(err, FormatError::UnsupportedVersion { found: version });
            assert!(err.to_string().contains(&format!("version {version}")));
        }
    }

    #[test]
    fn version_is_little_endian() {
        let buf = encode_header(STORE_FORMAT_VERSION);
        assert_eq!(&buf[8..12], &[1, 0, 0, 0]);
        assert_eq!(&buf[12..16], &[0, 0, 0, 0]);
    }
}
