//! What `preprocess` reports: counts, statistics, per-table and per-column facts, skipped
//! columns, warnings and the written files. Python turns it into `meta.json`.

use std::collections::BTreeMap;

use pyo3::IntoPyObject;

use super::columns::{ColumnInfo, Stats};
use super::graph::Csr;
use super::plan::Plan;
use super::read::LoadedTable;
use super::write::StoreArrays;
use crate::array_file::FileInfo;

#[derive(Debug, IntoPyObject)]
pub struct Summary {
    pub counts: Counts,
    pub datetime: StatsOut,
    pub tables: Vec<TableOut>,
    pub columns: Vec<ColumnOut>,
    pub skipped_columns: Vec<SkippedOut>,
    pub warnings: Vec<String>,
    pub files: BTreeMap<String, FileOut>,
}

impl Summary {
    /// The report of a written store.
    #[allow(clippy::too_many_arguments)] // every argument is a distinct part of the report
    pub(super) fn new(
        plan: &Plan,
        loaded: &[LoadedTable],
        s: &StoreArrays,
        columns: &[ColumnInfo],
        datetime: Stats,
        dangling: Vec<u64>,
        warnings: Vec<String>,
        files: BTreeMap<String, FileInfo>,
    ) -> Self {
        let len = |v: &Csr| v.nodes.len() as u64;
        Self {
            counts: Counts {
                nodes: s.node_table.len() as u64,
                cells: s.cells.column.len() as u64,
                f2p_edges: len(&s.f2p),
                p2f_edges: len(&s.p2f),
                task_p2f_edges: len(&s.task_p2f),
                tables: plan.tables.len() as u64,
                columns: columns.len() as u64,
                vocab: u64::from(s.vocab.len()),
                max_f2p: s.f2p.max_degree(),
            },
            datetime: StatsOut {
                mean: datetime.mean,
                std: datetime.std,
            },
            tables: plan
                .tables
                .iter()
                .enumerate()
                .map(|(t, spec)| TableOut {
                    name: spec.name.clone(),
                    node_offset: s.table_nodes[t],
                    num_nodes: s.table_nodes[t + 1] - s.table_nodes[t],
                    dangling_fkeys: dangling[t],
                })
                .collect(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(id, c)| ColumnOut {
                    id: id as u64,
                    table: plan.tables[c.table].name.clone(),
                    name: c.name.clone(),
                    sem_type: c.sem.name(),
                    mean: c.stats.mean,
                    std: c.stats.std,
                    vocab_id: u64::from(s.column_name[id]),
                })
                .collect(),
            skipped_columns: plan
                .tables
                .iter()
                .zip(loaded)
                .flat_map(|(spec, table)| {
                    table.skipped.iter().map(|(name, reason)| SkippedOut {
                        table: spec.name.clone(),
                        name: name.clone(),
                        reason: reason.clone(),
                    })
                })
                .collect(),
            warnings,
            files: files
                .into_iter()
                .map(|(name, f)| {
                    (
                        name,
                        FileOut {
                            bytes: f.bytes,
                            crc32: f.crc32,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, IntoPyObject)]
pub struct Counts {
    pub nodes: u64,
    pub cells: u64,
    pub f2p_edges: u64,
    pub p2f_edges: u64,
    pub task_p2f_edges: u64,
    pub tables: u64,
    pub columns: u64,
    pub vocab: u64,
    pub max_f2p: u64,
}

#[derive(Debug, IntoPyObject)]
pub struct StatsOut {
    pub mean: f64,
    pub std: f64,
}

#[derive(Debug, IntoPyObject)]
pub struct TableOut {
    pub name: String,
    pub node_offset: u64,
    pub num_nodes: u64,
    pub dangling_fkeys: u64,
}

#[derive(Debug, IntoPyObject)]
pub struct ColumnOut {
    pub id: u64,
    /// Store name of the column's first table.
    pub table: String,
    pub name: String,
    pub sem_type: &'static str,
    pub mean: f64,
    pub std: f64,
    pub vocab_id: u64,
}

#[derive(Debug, IntoPyObject)]
pub struct SkippedOut {
    pub table: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, IntoPyObject)]
pub struct FileOut {
    pub bytes: u64,
    pub crc32: u32,
}
