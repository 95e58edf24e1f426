//! Write the store's array files (docs/store-format.md) into a directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::array_file::{write_array, Elem, FileInfo};

use super::cells::Cells;
use super::error::PreprocessError;
use super::graph::Csr;
use super::vocab::Vocab;

/// Every array of a store, in memory.
pub struct StoreArrays {
    pub node_table: Vec<u32>,
    pub node_time: Vec<i64>,
    pub cells: Cells,
    pub f2p: Csr,
    pub p2f: Csr,
    pub p2f_time: Vec<i64>,
    pub task_p2f: Csr,
    pub task_p2f_table: Vec<u32>,
    pub task_p2f_time: Vec<i64>,
    pub table_nodes: Vec<u64>,
    pub table_name: Vec<u32>,
    pub table_kind: Vec<u8>,
    pub column_name: Vec<u32>,
    pub column_table: Vec<u32>,
    pub vocab: Vocab,
}

struct Writer<'a> {
    dir: &'a Path,
    files: BTreeMap<String, FileInfo>,
}

impl Writer<'_> {
    fn put<T: Elem>(
        &mut self,
        name: &str,
        tag: &[u8; 4],
        data: &[T],
    ) -> Result<(), PreprocessError> {
        let path = self.dir.join(name);
        let info = write_array(&path, *tag, data).map_err(|e| PreprocessError::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.files.insert(name.to_owned(), info);
        Ok(())
    }
}

/// Write every array file into `dir` (created if needed); returns each file's size and
/// CRC-32 by name.
pub fn write_store(
    dir: &Path,
    s: &StoreArrays,
) -> Result<BTreeMap<String, FileInfo>, PreprocessError> {
    std::fs::create_dir_all(dir).map_err(|e| PreprocessError::Write {
        path: dir.to_path_buf(),
        reason: format!("cannot create it: {e}"),
    })?;
    let mut w = Writer {
        dir,
        files: BTreeMap::new(),
    };
    w.put("node_table.bin", b"NTAB", &s.node_table)?;
    w.put("node_time.bin", b"NTIM", &s.node_time)?;
    w.put("node_cells.bin", b"NCEL", &s.cells.offsets)?;
    w.put("cell_column.bin", b"CCOL", &s.cells.column)?;
    w.put("cell_type.bin", b"CTYP", &s.cells.sem)?;
    w.put("cell_value.bin", b"CVAL", &s.cells.value)?;
    w.put("cell_text.bin", b"CTXT", &s.cells.text)?;
    w.put("f2p_offsets.bin", b"FOFF", &s.f2p.offsets)?;
    w.put("f2p_nodes.bin", b"FNOD", &s.f2p.nodes)?;
    w.put("p2f_offsets.bin", b"POFF", &s.p2f.offsets)?;
    w.put("p2f_nodes.bin", b"PNOD", &s.p2f.nodes)?;
    w.put("p2f_time.bin", b"PTIM", &s.p2f_time)?;
    w.put("task_p2f_offsets.bin", b"TPOF", &s.task_p2f.offsets)?;
    w.put("task_p2f_nodes.bin", b"TPND", &s.task_p2f.nodes)?;
    w.put("task_p2f_table.bin", b"TPTB", &s.task_p2f_table)?;
    w.put("task_p2f_time.bin", b"TPTM", &s.task_p2f_time)?;
    w.put("table_nodes.bin", b"TNOD", &s.table_nodes)?;
    w.put("table_name.bin", b"TNAM", &s.table_name)?;
    w.put("table_kind.bin", b"TKND", &s.table_kind)?;
    w.put("column_name.bin", b"KNAM", &s.column_name)?;
    w.put("column_table.bin", b"KTAB", &s.column_table)?;
    w.put("vocab_offsets.bin", b"VOFF", &s.vocab.offsets)?;
    w.put("vocab_bytes.bin", b"VBYT", &s.vocab.bytes)?;
    Ok(w.files)
}
