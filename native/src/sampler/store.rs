//! The arrays of one node store (docs/store-format.md) as borrowed slices, and the
//! memory-mapped store the sampler reads them from.
//!
//! The sampler works on a `StoreView` — a struct of slices — so the same code runs on
//! memory-mapped files in production and on plain `Vec`s in tests. A view is only
//! handed out by a store that passed `validate::check`, so code that reads a view may
//! index it with the ids it holds.

use std::path::{Path, PathBuf};

use crate::array_file::MappedArray;
use crate::sampler::error::StoreError;
use crate::sampler::validate::{self, StoreInfo};

/// Name and tag of the optional embedding file.
pub const TEXT_EMB_FILE: &str = "text_emb.bin";
const TEXT_EMB_TAG: [u8; 4] = *b"TEMB";

/// A store the sampler can read: validated once, then viewed as often as needed.
pub trait StoreSource: Send + Sync {
    /// The store's arrays.
    fn view(&self) -> StoreView<'_>;
    /// Counts and properties established by validation.
    fn info(&self) -> &StoreInfo;
    /// Where the store lives, for error messages.
    fn location(&self) -> &Path;
}

/// Declares every array of the format once: the view, the mapped store and (in tests)
/// the owned store are generated from this list, so they cannot drift apart.
macro_rules! store_arrays {
    ($($field:ident: $elem:ty = $file:literal, $tag:literal;)*) => {
        /// Borrowed arrays of one store; field names follow the file names.
        #[derive(Clone, Copy)]
        pub struct StoreView<'a> {
            $(pub $field: &'a [$elem],)*
            /// `text_emb.bin`, when the store has embeddings and the caller asked for them.
            pub text_emb: Option<&'a [f32]>,
        }

        struct MappedArrays {
            $($field: MappedArray<$elem>,)*
            text_emb: Option<MappedArray<f32>>,
        }

        impl MappedArrays {
            fn open(dir: &Path, with_emb: bool) -> Result<Self, StoreError> {
                Ok(Self {
                    $($field: MappedArray::open(&dir.join($file), *$tag)?,)*
                    text_emb: if with_emb {
                        Some(MappedArray::open(&dir.join(TEXT_EMB_FILE), TEXT_EMB_TAG)?)
                    } else {
                        None
                    },
                })
            }

            fn view(&self) -> StoreView<'_> {
                StoreView {
                    $($field: self.$field.as_slice(),)*
                    text_emb: self.text_emb.as_ref().map(|a| a.as_slice()),
                }
            }
        }

        /// A store held in `Vec`s, for tests: hand-made stores and corrupted copies.
        #[cfg(test)]
        #[derive(Clone, Default)]
        pub struct OwnedArrays {
            $(pub $field: Vec<$elem>,)*
            pub text_emb: Option<Vec<f32>>,
        }

        #[cfg(test)]
        impl OwnedArrays {
            pub fn view(&self) -> StoreView<'_> {
                StoreView {
                    $($field: &self.$field,)*
                    text_emb: self.text_emb.as_deref(),
                }
            }

            /// Write every array as a file of `dir` (which must exist).
            pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
                $(crate::array_file::write_array(&dir.join($file), *$tag, &self.$field)?;)*
                if let Some(emb) = &self.text_emb {
                    crate::array_file::write_array(&dir.join(TEXT_EMB_FILE), TEXT_EMB_TAG, emb)?;
                }
                Ok(())
            }
        }
    };
}

store_arrays! {
    node_table: u32 = "node_table.bin", b"NTAB";
    node_time: i64 = "node_time.bin", b"NTIM";
    node_cells: u64 = "node_cells.bin", b"NCEL";
    cell_column: u32 = "cell_column.bin", b"CCOL";
    cell_type: u8 = "cell_type.bin", b"CTYP";
    cell_value: f32 = "cell_value.bin", b"CVAL";
    cell_text: i32 = "cell_text.bin", b"CTXT";
    f2p_offsets: u64 = "f2p_offsets.bin", b"FOFF";
    f2p_nodes: u32 = "f2p_nodes.bin", b"FNOD";
    p2f_offsets: u64 = "p2f_offsets.bin", b"POFF";
    p2f_nodes: u32 = "p2f_nodes.bin", b"PNOD";
    p2f_time: i64 = "p2f_time.bin", b"PTIM";
    task_p2f_offsets: u64 = "task_p2f_offsets.bin", b"TPOF";
    task_p2f_nodes: u32 = "task_p2f_nodes.bin", b"TPND";
    task_p2f_table: u32 = "task_p2f_table.bin", b"TPTB";
    task_p2f_time: i64 = "task_p2f_time.bin", b"TPTM";
    table_nodes: u64 = "table_nodes.bin", b"TNOD";
    table_name: u32 = "table_name.bin", b"TNAM";
    table_kind: u8 = "table_kind.bin", b"TKND";
    column_name: u32 = "column_name.bin", b"KNAM";
    column_table: u32 = "column_table.bin", b"KTAB";
    vocab_offsets: u64 = "vocab_offsets.bin", b"VOFF";
    vocab_bytes: u8 = "vocab_bytes.bin", b"VBYT";
}

/// Converts a CSR offset that validation proved to be in range.
#[inline]
pub fn at(offset: u64) -> usize {
    offset as usize
}

impl StoreView<'_> {
    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.node_table.len()
    }

    /// Cell index range of `node`.
    #[inline]
    pub fn cells(&self, node: u32) -> std::ops::Range<usize> {
        let n = node as usize;
        at(self.node_cells[n])..at(self.node_cells[n + 1])
    }

    /// Parents of `node` (child → parent edges), in foreign-key order.
    #[inline]
    pub fn parents(&self, node: u32) -> &[u32] {
        let n = node as usize;
        &self.f2p_nodes[at(self.f2p_offsets[n])..at(self.f2p_offsets[n + 1])]
    }

    /// The cell of `node` in `column`, if the node holds one (cells are sorted by column).
    pub fn cell_of(&self, node: u32, column: u32) -> Option<usize> {
        let range = self.cells(node);
        let start = range.start;
        self.cell_column[range]
            .binary_search(&column)
            .ok()
            .map(|i| start + i)
    }

    /// The vocabulary string `id` (validated UTF-8).
    pub fn vocab_str(&self, id: usize) -> &str {
        let bytes = &self.vocab_bytes[at(self.vocab_offsets[id])..at(self.vocab_offsets[id + 1])];
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

/// A store directory mapped into memory and validated.
pub struct MappedStore {
    dir: PathBuf,
    arrays: MappedArrays,
    info: StoreInfo,
}

impl MappedStore {
    /// Map every file of `dir` and cross-validate the arrays. `emb_dim` is the
    /// embedding width from meta.json when the store has embeddings (then
    /// `text_emb.bin` must exist and hold vocab × dim values), or None to ignore them.
    pub fn open(dir: &Path, emb_dim: Option<usize>) -> Result<Self, StoreError> {
        let arrays = MappedArrays::open(dir, emb_dim.is_some())?;
        let info = validate::check(&arrays.view(), emb_dim).map_err(|e| StoreError {
            path: dir.join(e.file),
            reason: e.reason,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            arrays,
            info,
        })
    }
}

impl StoreSource for MappedStore {
    fn view(&self) -> StoreView<'_> {
        self.arrays.view()
    }

    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn location(&self) -> &Path {
        &self.dir
    }
}

/// An in-memory store that passed validation, for tests.
#[cfg(test)]
pub struct OwnedStore {
    pub arrays: OwnedArrays,
    info: StoreInfo,
    name: PathBuf,
}

#[cfg(test)]
impl OwnedStore {
    pub fn new(arrays: OwnedArrays, emb_dim: Option<usize>) -> Result<Self, validate::Invalid> {
        let info = validate::check(&arrays.view(), emb_dim)?;
        Ok(Self {
            arrays,
            info,
            name: PathBuf::from("<memory>"),
        })
    }
}

#[cfg(test)]
impl StoreSource for OwnedStore {
    fn view(&self) -> StoreView<'_> {
        self.arrays.view()
    }

    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn location(&self) -> &Path {
        &self.name
    }
}
