//! Cross-validation of a store's arrays: each file is already known to be intact
//! (`array_file` checked header, length and CRC); here the files are checked against
//! each other — lengths, CSR offsets, ids, sort orders — so that the sampler can follow
//! every id it reads without a bounds failure and every binary search sees sorted data.

use crate::sampler::store::{StoreView, TEXT_EMB_FILE};

/// Semantic type codes of `cell_type.bin`.
pub const TEXT: u8 = 1;
const MAX_SEM_TYPE: u8 = 3;
/// `table_kind.bin` codes.
pub const DB_TABLE: u8 = 0;
pub const TASK_TABLE: u8 = 1;
/// The timestamp that means "none" (`node_time.bin`, `p2f_time.bin`).
pub const NO_TIME: i64 = i64::MIN;

/// Counts of a validated store (the letters of docs/store-format.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreInfo {
    pub nodes: usize,
    pub cells: usize,
    pub f2p_edges: usize,
    pub p2f_edges: usize,
    pub task_p2f_edges: usize,
    pub tables: usize,
    pub columns: usize,
    pub vocab: usize,
    /// Most parents of any node.
    pub max_f2p: usize,
    /// Embedding width, when embeddings were requested and present.
    pub emb_dim: Option<usize>,
}

/// The first inconsistency found: the file at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub file: &'static str,
    pub reason: String,
}

type Check = Result<(), Invalid>;

fn fail<T>(file: &'static str, reason: String) -> Result<T, Invalid> {
    Err(Invalid { file, reason })
}

fn same_len(file: &'static str, len: usize, want: usize, what: &str) -> Check {
    if len != want {
        return fail(
            file,
            format!("has {len} elements, expected {want} ({what})"),
        );
    }
    Ok(())
}

/// CSR offsets of `rows` rows into an array of `target_len` elements: `rows + 1`
/// values, starting at 0, non-decreasing, ending at `target_len`.
fn offsets(file: &'static str, off: &[u64], rows: usize, target_len: usize, target: &str) -> Check {
    same_len(file, off.len(), rows + 1, "one offset per row, plus one")?;
    if off[0] != 0 {
        return fail(file, format!("starts at {} instead of 0", off[0]));
    }
    if let Some(i) = off.windows(2).position(|w| w[1] < w[0]) {
        return fail(
            file,
            format!("decreases after row {i}: {} > {}", off[i], off[i + 1]),
        );
    }
    let last = off[rows];
    if last != target_len as u64 {
        return fail(
            file,
            format!("ends at {last}, but {target} has {target_len} elements"),
        );
    }
    Ok(())
}

fn ids_below(file: &'static str, ids: &[u32], bound: usize, what: &str) -> Check {
    if let Some(i) = ids.iter().position(|&id| id as usize >= bound) {
        return fail(
            file,
            format!("element {i} is {}, but there are {bound} {what}", ids[i]),
        );
    }
    Ok(())
}

/// Check every relation between the arrays of `view`; with `emb_dim`, also that
/// `text_emb.bin` holds one row of that width per vocabulary string.
pub fn check(view: &StoreView, emb_dim: Option<usize>) -> Result<StoreInfo, Invalid> {
    let n = view.node_table.len();
    if n > i32::MAX as usize {
        return fail(
            "node_table.bin",
            format!("{n} nodes: the sampler emits int32 node ids"),
        );
    }
    same_len("node_time.bin", view.node_time.len(), n, "one per node")?;
    let c = view.cell_column.len();
    offsets("node_cells.bin", view.node_cells, n, c, "cell_column.bin")?;
    same_len("cell_type.bin", view.cell_type.len(), c, "one per cell")?;
    same_len("cell_value.bin", view.cell_value.len(), c, "one per cell")?;
    same_len("cell_text.bin", view.cell_text.len(), c, "one per cell")?;
    let e = view.f2p_nodes.len();
    offsets("f2p_offsets.bin", view.f2p_offsets, n, e, "f2p_nodes.bin")?;
    ids_below("f2p_nodes.bin", view.f2p_nodes, n, "nodes")?;
    let p = view.p2f_nodes.len();
    offsets("p2f_offsets.bin", view.p2f_offsets, n, p, "p2f_nodes.bin")?;
    same_len("p2f_time.bin", view.p2f_time.len(), p, "one per p2f edge")?;
    ids_below("p2f_nodes.bin", view.p2f_nodes, n, "nodes")?;
    let q = view.task_p2f_nodes.len();
    offsets(
        "task_p2f_offsets.bin",
        view.task_p2f_offsets,
        n,
        q,
        "task_p2f_nodes.bin",
    )?;
    same_len(
        "task_p2f_table.bin",
        view.task_p2f_table.len(),
        q,
        "one per task edge",
    )?;
    same_len(
        "task_p2f_time.bin",
        view.task_p2f_time.len(),
        q,
        "one per task edge",
    )?;
    ids_below("task_p2f_nodes.bin", view.task_p2f_nodes, n, "nodes")?;
    let t = view.table_name.len();
    same_len("table_kind.bin", view.table_kind.len(), t, "one per table")?;
    offsets("table_nodes.bin", view.table_nodes, t, n, "node_table.bin")?;
    let k = view.column_name.len();
    same_len(
        "column_table.bin",
        view.column_table.len(),
        k,
        "one per column",
    )?;
    ids_below("column_table.bin", view.column_table, t, "tables")?;
    if view.vocab_offsets.is_empty() {
        return fail(
            "vocab_offsets.bin",
            "is empty; expected vocab + 1 offsets".into(),
        );
    }
    let v = view.vocab_offsets.len() - 1;
    offsets(
        "vocab_offsets.bin",
        view.vocab_offsets,
        v,
        view.vocab_bytes.len(),
        "vocab_bytes.bin",
    )?;
    ids_below("table_name.bin", view.table_name, v, "vocabulary strings")?;
    ids_below("column_name.bin", view.column_name, v, "vocabulary strings")?;
    ids_below("cell_column.bin", view.cell_column, k, "columns")?;
    ids_below("task_p2f_table.bin", view.task_p2f_table, t, "tables")?;
    check_tables(view)?;
    check_cells(view, v)?;
    check_children(view)?;
    check_vocab(view)?;
    let max_f2p = view
        .f2p_offsets
        .windows(2)
        .map(|w| (w[1] - w[0]) as usize)
        .max();
    Ok(StoreInfo {
        nodes: n,
        cells: c,
        f2p_edges: e,
        p2f_edges: p,
        task_p2f_edges: q,
        tables: t,
        columns: k,
        vocab: v,
        max_f2p: max_f2p.unwrap_or(0),
        emb_dim: check_embeddings(view, v, emb_dim)?,
    })
}

/// Table kinds are known and every node lies in the range of its table.
fn check_tables(view: &StoreView) -> Check {
    if let Some(i) = view.table_kind.iter().position(|&k| k > TASK_TABLE) {
        return fail(
            "table_kind.bin",
            format!("table {i} has kind {}; known: 0, 1", view.table_kind[i]),
        );
    }
    for (table, range) in view.table_nodes.windows(2).enumerate() {
        let nodes = &view.node_table[range[0] as usize..range[1] as usize];
        if let Some(i) = nodes.iter().position(|&tab| tab as usize != table) {
            let node = range[0] as usize + i;
            return fail(
                "node_table.bin",
                format!(
                    "node {node} says table {}, but table_nodes.bin puts it in table {table}",
                    nodes[i]
                ),
            );
        }
    }
    Ok(())
}

/// Columns strictly ascending within a node, types known, text ids exactly on text cells.
fn check_cells(view: &StoreView, vocab: usize) -> Check {
    for node in 0..view.node_table.len() {
        let cols = &view.cell_column[view.cells(node as u32)];
        if let Some(i) = cols.windows(2).position(|w| w[1] <= w[0]) {
            return fail(
                "cell_column.bin",
                format!(
                    "node {node}: columns not strictly ascending ({} then {})",
                    cols[i],
                    cols[i + 1]
                ),
            );
        }
    }
    for (cell, (&ty, &text)) in view.cell_type.iter().zip(view.cell_text).enumerate() {
        if ty > MAX_SEM_TYPE {
            return fail(
                "cell_type.bin",
                format!("cell {cell} has type {ty}; known: 0..=3"),
            );
        }
        let ok = if ty == TEXT {
            text >= 0 && (text as usize) < vocab
        } else {
            text == -1
        };
        if !ok {
            return fail(
                "cell_text.bin",
                format!(
                    "cell {cell} (type {ty}) holds {text}: text cells need a vocabulary id \
                     below {vocab}, other cells -1"
                ),
            );
        }
    }
    Ok(())
}

/// p2f children are database rows sorted by (time, child) with their true timestamps;
/// task children are task rows sorted by (table, time) with their tables and times.
fn check_children(view: &StoreView) -> Check {
    for (i, (&child, &time)) in view.p2f_nodes.iter().zip(view.p2f_time).enumerate() {
        let child = child as usize;
        if view.node_time[child] != time {
            return fail(
                "p2f_time.bin",
                format!(
                    "edge {i} says {time}, its child {child} has {}",
                    view.node_time[child]
                ),
            );
        }
        if view.table_kind[view.node_table[child] as usize] != DB_TABLE {
            return fail(
                "p2f_nodes.bin",
                format!("edge {i} leads to node {child} of a task table"),
            );
        }
    }
    for (i, &child) in view.task_p2f_nodes.iter().enumerate() {
        let (child, table) = (child as usize, view.task_p2f_table[i]);
        if view.node_time[child] != view.task_p2f_time[i] || view.node_table[child] != table {
            return fail(
                "task_p2f_table.bin",
                format!("edge {i} does not match the table and time of its child {child}"),
            );
        }
        if view.table_kind[table as usize] != TASK_TABLE {
            return fail(
                "task_p2f_table.bin",
                format!("edge {i} leads to table {table}, not a task table"),
            );
        }
    }
    for node in 0..view.node_table.len() {
        let (lo, hi) = (
            view.p2f_offsets[node] as usize,
            view.p2f_offsets[node + 1] as usize,
        );
        if view.p2f_time[lo..hi].windows(2).any(|w| w[1] < w[0]) {
            return fail(
                "p2f_time.bin",
                format!("children of node {node} are not sorted by time"),
            );
        }
        let (lo, hi) = (
            view.task_p2f_offsets[node] as usize,
            view.task_p2f_offsets[node + 1] as usize,
        );
        let key = |i: usize| (view.task_p2f_table[i], view.task_p2f_time[i]);
        if (lo + 1..hi).any(|i| key(i) < key(i - 1)) {
            return fail(
                "task_p2f_table.bin",
                format!("task children of node {node} are not sorted by (table, time)"),
            );
        }
    }
    Ok(())
}

fn check_vocab(view: &StoreView) -> Check {
    for (id, w) in view.vocab_offsets.windows(2).enumerate() {
        if std::str::from_utf8(&view.vocab_bytes[w[0] as usize..w[1] as usize]).is_err() {
            return fail("vocab_bytes.bin", format!("string {id} is not valid UTF-8"));
        }
    }
    Ok(())
}

fn check_embeddings(
    view: &StoreView,
    vocab: usize,
    dim: Option<usize>,
) -> Result<Option<usize>, Invalid> {
    let Some(dim) = dim else { return Ok(None) };
    let Some(emb) = view.text_emb else {
        return fail(TEXT_EMB_FILE, "missing".into());
    };
    if dim == 0 || vocab.checked_mul(dim) != Some(emb.len()) {
        return fail(
            TEXT_EMB_FILE,
            format!(
                "holds {} values, expected {vocab} strings × dim {dim} (meta.json)",
                emb.len()
            ),
        );
    }
    Ok(Some(dim))
}
