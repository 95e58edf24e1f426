//! Preprocess: a database's Parquet tables (and its task tables) become a node store
//! directory, as `docs/store-format.md` lays it out and `docs/contexts.md` describes it.
//!
//! `preprocess` reads the tables in parallel (`read`, `values`, `keys`), gives every cell
//! column an id and its training statistics (`columns`), builds the cells (`cells`), the
//! text vocabulary (`vocab`) and the edges (`graph`), and writes the array files
//! (`write`). Nothing a caller passes can panic it: every problem is a
//! `PreprocessError` naming the table, column or file.

use std::path::Path;

use rayon::prelude::*;

mod cells;
mod columns;
mod error;
mod graph;
mod keys;
mod plan;
mod read;
mod render;
mod summary;
mod values;
mod vocab;
mod write;

#[cfg(test)]
mod tests;

pub use error::PreprocessError;
pub use plan::{Plan, PlanTable};
pub use summary::Summary;

use error::fail;
use graph::{Child, Parent};
use plan::{Kind, Resolved};
use read::LoadedTable;
use values::{SemType, NO_TIME};
use vocab::Vocab;
use write::StoreArrays;

/// Preprocess `plan` into the array files of a store in `out_dir` (created if needed;
/// `meta.json` is the caller's). Returns what `meta.json` needs.
pub fn preprocess(plan: &Plan, out_dir: &Path) -> Result<Summary, PreprocessError> {
    let resolved = plan.resolve()?;
    // Parallel over tables; the first failing table in plan order names the error.
    let loaded: Vec<LoadedTable> = plan
        .tables
        .par_iter()
        .map(read::load)
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<_, _>>()?;
    let Nodes {
        table_nodes,
        node_table,
        node_time,
    } = nodes(plan, &loaded)?;

    let (mut columns, of_table) = columns::assign(plan, &loaded)?;
    let datetime = columns::standardise(
        &mut columns,
        &loaded,
        &of_table,
        &resolved.contributes,
        plan.val_timestamp,
        resolved.rules,
    );
    // Table names first, then column names; text values follow as cells are built.
    let mut vocab = Vocab::default();
    let table_name = plan
        .tables
        .iter()
        .map(|t| vocab.id(&t.vocab_name))
        .collect::<Result<Vec<_>, _>>()?;
    let column_name = columns
        .iter()
        .map(|c| {
            vocab.id(&format!(
                "{} of {}",
                c.name, plan.tables[c.table].vocab_name
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cells = cells::build(&loaded, &of_table, &columns, datetime, &mut vocab)?;

    let (f2p, dangling) = graph::f2p(&children(&loaded, &resolved, &table_nodes));
    let is_task = |c: u32| resolved.kinds[node_table[c as usize] as usize] == Kind::Task;
    let time_of = |c: u32| node_time[c as usize];
    let p2f = graph::reverse(&f2p, |c| !is_task(c), |c| (time_of(c), c));
    let task_p2f = graph::reverse(&f2p, is_task, |c| (node_table[c as usize], time_of(c), c));

    let arrays = StoreArrays {
        p2f_time: p2f.nodes.iter().map(|&c| time_of(c)).collect(),
        task_p2f_table: task_p2f
            .nodes
            .iter()
            .map(|&c| node_table[c as usize])
            .collect(),
        task_p2f_time: task_p2f.nodes.iter().map(|&c| time_of(c)).collect(),
        table_kind: resolved.kinds.iter().map(|&k| k as u8).collect(),
        column_table: columns.iter().map(|c| c.table as u32).collect(),
        node_table,
        node_time,
        cells,
        f2p,
        p2f,
        task_p2f,
        table_nodes,
        table_name,
        column_name,
        vocab,
    };
    let files = write::write_store(out_dir, &arrays)?;
    let warnings = warnings(plan, &loaded, &columns, &dangling);
    Ok(Summary::new(
        plan, &loaded, &arrays, &columns, datetime, dangling, warnings, files,
    ))
}

/// Per table its first node (and the total last), and every node's table and time.
struct Nodes {
    table_nodes: Vec<u64>,
    node_table: Vec<u32>,
    node_time: Vec<i64>,
}

fn nodes(plan: &Plan, loaded: &[LoadedTable]) -> Result<Nodes, PreprocessError> {
    let mut table_nodes = vec![0u64];
    for table in loaded {
        table_nodes.push(table_nodes[table_nodes.len() - 1] + table.rows as u64);
    }
    let nodes = table_nodes[loaded.len()];
    if nodes > u64::from(u32::MAX) {
        return fail(format!(
            "dataset {}: {nodes} rows exceed the {} nodes a store can hold (u32 node ids)",
            plan.name,
            u32::MAX
        ));
    }
    let mut node_table = Vec::with_capacity(nodes as usize);
    let mut node_time = Vec::with_capacity(nodes as usize);
    for (t, table) in loaded.iter().enumerate() {
        node_table.extend(std::iter::repeat_n(t as u32, table.rows));
        match &table.time {
            Some(time) => node_time.extend_from_slice(time),
            None => node_time.extend(std::iter::repeat_n(NO_TIME, table.rows)),
        }
    }
    Ok(Nodes {
        table_nodes,
        node_table,
        node_time,
    })
}

/// Every table's foreign keys with the parent they point into.
fn children<'a>(
    loaded: &'a [LoadedTable],
    resolved: &Resolved,
    table_nodes: &[u64],
) -> Vec<Child<'a>> {
    let parent = |p: usize| {
        // `resolve` checked that every parent has a primary key.
        let index = loaded[p].pkey.as_ref()?;
        let first_node = table_nodes[p] as u32;
        Some(Parent { first_node, index })
    };
    loaded
        .iter()
        .zip(&resolved.parents)
        .map(|(table, parents)| Child {
            rows: table.rows,
            fkeys: (table.fkeys.iter().zip(parents))
                .filter_map(|(keys, &p)| Some((keys, parent(p)?)))
                .collect(),
        })
        .collect()
}

/// What a user should know about a store that was written anyway.
fn warnings(
    plan: &Plan,
    loaded: &[LoadedTable],
    columns: &[columns::ColumnInfo],
    dangling: &[u64],
) -> Vec<String> {
    let mut out = Vec::new();
    for ((spec, table), &count) in plan.tables.iter().zip(loaded).zip(dangling) {
        if table.null_pkeys > 0 {
            out.push(format!(
                "table {:?}: {} rows have a null primary key; no foreign key reaches them",
                spec.name, table.null_pkeys
            ));
        }
        if count > 0 {
            out.push(format!(
                "table {:?}: {count} foreign-key values name no parent row (dangling; no edge)",
                spec.name
            ));
        }
    }
    for c in columns {
        if c.sem == SemType::Number && c.stats_values == 0 {
            out.push(format!(
                "column {:?} of table {:?}: no values the statistics count (training rows \
                 under the strict rules), left unstandardised",
                c.name, plan.tables[c.table].name
            ));
        }
    }
    out
}
