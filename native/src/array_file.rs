//! Typed array files of the node store: a 64-byte header, then a little-endian payload.
//!
//! | bytes  | field                                                  |
//! |--------|--------------------------------------------------------|
//! | 0..16  | the `format` prefix: magic, version, reserved          |
//! | 16..20 | array tag, 4 ASCII bytes                               |
//! | 20     | element type code (`Elem::CODE`)                      |
//! | 21..24 | reserved, zero                                         |
//! | 24..32 | element count, `u64`                                   |
//! | 32..40 | payload length in bytes, `u64`                         |
//! | 40..44 | CRC-32 (IEEE) of the payload, `u32`                    |
//! | 44..64 | reserved, zero                                         |
//!
//! `validate` checks every field, the exact file length and the CRC before a payload byte
//! is handed out; `MappedArray` memory-maps a file and only exists once it validated.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use memmap2::Mmap;

use crate::format::{self, FormatError, STORE_FORMAT_VERSION, STORE_MAGIC};
use crate::sampler::store::TEXT_EMB_FILE;

/// Length of an array file header in bytes; the payload starts here (64-byte aligned).
pub const ARRAY_HEADER_LEN: usize = 64;

/// An element type an array file can hold, with its on-disk code.
pub trait Elem: Pod {
    const CODE: u8;
    const NAME: &'static str;
}

macro_rules! elem {
    ($t:ty, $code:expr) => {
        impl Elem for $t {
            const CODE: u8 = $code;
            const NAME: &'static str = stringify!($t);
        }
    };
}
elem!(u8, 1);
elem!(u32, 2);
elem!(i32, 3);
elem!(u64, 4);
elem!(i64, 5);
elem!(f32, 6);

/// Why an array file was rejected. Messages name the problem; callers add the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayError {
    Prefix(FormatError),
    TooShort {
        len: usize,
    },
    WrongTag {
        expected: [u8; 4],
        found: [u8; 4],
    },
    WrongElem {
        expected: &'static str,
        found: u8,
    },
    LengthMismatch {
        count: u64,
        payload: u64,
        file: usize,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for ArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix(e) => write!(f, "{e}"),
            Self::TooShort { len } => write!(
                f,
                "file truncated: {len} bytes, shorter than the {ARRAY_HEADER_LEN}-byte header"
            ),
            Self::WrongTag { expected, found } => write!(
                f,
                "wrong array tag: expected {:?}, found {:?} (file renamed or swapped?)",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(found)
            ),
            Self::WrongElem { expected, found } => {
                write!(
                    f,
                    "wrong element type: expected {expected}, found code {found}"
                )
            }
            Self::LengthMismatch {
                count,
                payload,
                file,
            } => write!(
                f,
                "size mismatch: header says {count} elements in {payload} payload bytes, \
                 file has {file} bytes (file truncated or corrupted)"
            ),
            Self::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch: header CRC-32 {stored:#010x}, payload {computed:#010x} \
                 (file corrupted)"
            ),
        }
    }
}

impl std::error::Error for ArrayError {}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Build the header of an array of `count` elements of `T` whose payload has `crc`.
pub fn encode_array_header<T: Elem>(tag: [u8; 4], count: u64, crc: u32) -> [u8; ARRAY_HEADER_LEN] {
    let mut out = [0u8; ARRAY_HEADER_LEN];
    out[..8].copy_from_slice(&STORE_MAGIC);
    out[8..12].copy_from_slice(&STORE_FORMAT_VERSION.to_le_bytes());
    out[16..20].copy_from_slice(&tag);
    out[20] = T::CODE;
    out[24..32].copy_from_slice(&count.to_le_bytes());
    let payload = count * std::mem::size_of::<T>() as u64;
    out[32..40].copy_from_slice(&payload.to_le_bytes());
    out[40..44].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Check a whole array file held in `bytes` and return its payload as `T`s.
pub fn validate<T: Elem>(bytes: &[u8], tag: [u8; 4]) -> Result<&[T], ArrayError> {
    format::check_header(bytes).map_err(ArrayError::Prefix)?;
    if bytes.len() < ARRAY_HEADER_LEN {
        return Err(ArrayError::TooShort { len: bytes.len() });
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&bytes[16..20]);
    if found != tag {
        return Err(ArrayError::WrongTag {
            expected: tag,
            found,
        });
    }
    if bytes[20] != T::CODE {
        return Err(ArrayError::WrongElem {
            expected: T::NAME,
            found: bytes[20],
        });
    }
    let (count, payload) = (le_u64(bytes, 24), le_u64(bytes, 32));
    let size = std::mem::size_of::<T>() as u64;
    let consistent = count.checked_mul(size) == Some(payload)
        && payload.checked_add(ARRAY_HEADER_LEN as u64) == Some(bytes.len() as u64);
    if !consistent {
        return Err(ArrayError::LengthMismatch {
            count,
            payload,
            file: bytes.len(),
        });
    }
    let body = &bytes[ARRAY_HEADER_LEN..];
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[40..44]);
    let stored = u32::from_le_bytes(word);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(ArrayError::Checksum { stored, computed });
    }
    // The payload starts 64 bytes into a page-aligned map (or a Vec of u8 in tests, where
    // an unaligned buffer is reported rather than trusted).
    bytemuck::try_cast_slice(body).map_err(|_| ArrayError::TooShort { len: bytes.len() })
}

/// Size and checksum of a written file, for `meta.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub bytes: u64,
    pub crc32: u32,
}

/// Write `data` as an array file at `path` (the whole store directory is made atomic by
/// its writer, so a plain create is enough here).
pub fn write_array<T: Elem>(path: &Path, tag: [u8; 4], data: &[T]) -> io::Result<FileInfo> {
    let body: &[u8] = bytemuck::cast_slice(data);
    let crc32 = crc32fast::hash(body);
    let mut file = io::BufWriter::new(File::create(path)?);
    file.write_all(&encode_array_header::<T>(tag, data.len() as u64, crc32))?;
    file.write_all(body)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(FileInfo {
        bytes: (ARRAY_HEADER_LEN + body.len()) as u64,
        crc32,
    })
}

/// A validated, memory-mapped array file.
pub struct MappedArray<T: Elem> {
    map: Mmap,
    len: usize,
    _elem: PhantomData<T>,
}

/// The store-file concern's error: a store file is missing, truncated, corrupted, of
/// another format version, or inconsistent with the other files of its store. `path`
/// names the file at fault; the message says how to rebuild it. Python sees it as
/// `_native.StoreError` (`bindings::errors`), re-raised as `plurel_ray.errors.StoreError`.
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

impl std::error::Error for StoreError {}

impl<T: Elem> MappedArray<T> {
    /// Map and validate `path`. The store must not be modified while it is mapped: store
    /// directories are written once, into a temporary directory renamed into place.
    pub fn open(path: &Path, tag: [u8; 4]) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        // SAFETY: the map is read-only and store files are immutable once renamed into
        // place (see above); every byte is validated below before it is used.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| fail(format!("cannot map: {e}")))?;
        let len = validate::<T>(&map, tag)
            .map_err(|e| fail(e.to_string()))?
            .len();
        Ok(Self {
            map,
            len,
            _elem: PhantomData,
        })
    }

    pub fn as_slice(&self) -> &[T] {
        // Validated in `open`: the payload length and alignment fit `len` elements.
        bytemuck::cast_slice(
            &self.map[ARRAY_HEADER_LEN..ARRAY_HEADER_LEN + self.len * size_of::<T>()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 8-byte aligned copy of `bytes`, as a memory map would give.
    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        words
    }

    fn file_of(data: &[u32]) -> Vec<u8> {
        let body: &[u8] = bytemuck::cast_slice(data);
        let mut out =
            encode_array_header::<u32>(*b"TEST", data.len() as u64, crc32fast::hash(body)).to_vec();
        out.extend_from_slice(body);
        out
    }

    fn check(bytes: &[u8]) -> Result<Vec<u32>, ArrayError> {
        let words = aligned(bytes);
        let view = &bytemuck::cast_slice::<u64, u8>(&words)[..bytes.len()];
        validate::<u32>(view, *b"TEST").map(|s| s.to_vec())
    }

    #[test]
    fn round_trips() {
        assert_eq!(check(&file_of(&[1, 2, 3])), Ok(vec![1, 2, 3]));
        assert_eq!(check(&file_of(&[])), Ok(vec![]));
    }

    #[test]
    fn rejects_every_truncation() {
        let bytes = file_of(&[7, 8, 9]);
        for len in 0..bytes.len() {
            assert!(check(&bytes[..len]).is_err(), "length {len} accepted");
        }
    }

    #[test]
    fn rejects_any_flipped_payload_byte() {
        let bytes = file_of(&[7, 8, 9]);
        for at in ARRAY_HEADER_LEN..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(matches!(check(&bad), Err(ArrayError::Checksum { .. })));
        }
    }

    #[test]
    fn rejects_wrong_tag_element_and_count() {
        let bytes = file_of(&[1]);
        let mut tag = bytes.clone();
        tag[16] = b'X';
        assert!(matches!(check(&tag), Err(ArrayError::WrongTag { .. })));
        let mut elem = bytes.clone();
        elem[20] = f32::CODE;
        assert!(matches!(check(&elem), Err(ArrayError::WrongElem { .. })));
        let mut count = bytes.clone();
        count[24] = 2;
        assert!(matches!(
            check(&count),
            Err(ArrayError::LengthMismatch { .. })
        ));
        let mut huge = bytes;
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            check(&huge),
            Err(ArrayError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn writes_and_maps_a_file() {
        let dir = std::env::temp_dir().join(format!("plurel-array-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        let info = write_array(&path, *b"TEST", &[5i64, -6, 7]).unwrap();
        assert_eq!(info.bytes, 64 + 24);
        let mapped = MappedArray::<i64>::open(&path, *b"TEST").unwrap();
        assert_eq!(mapped.as_slice(), &[5, -6, 7]);
        let err = MappedArray::<u32>::open(&path, *b"TEST").err().unwrap();
        assert!(err.to_string().contains("x.bin") && err.to_string().contains("element type"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
