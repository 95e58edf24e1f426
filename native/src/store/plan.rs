//! What to preprocess, as plain data from Python: the tables in node order, each with
//! everything it needs (file, keys, time column, statistics source). No table is special.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::FromPyObject;

use super::error::{fail, PreprocessError};
use crate::context_rules::ContextRules;

/// A database and its task tables.
#[derive(Debug, Clone, FromPyObject)]
#[pyo3(from_item_all)]
pub struct Plan {
    /// The dataset name, for messages.
    pub name: String,
    /// Rows at or before this time (seconds since the epoch) are training rows.
    pub val_timestamp: i64,
    /// "reference" or "strict": which rows the statistics come from, and whether
    /// booleans are standardised (`ContextRules`).
    pub rules: String,
    /// Tables in node order.
    pub tables: Vec<PlanTable>,
}

/// One table of the store.
#[derive(Debug, Clone, FromPyObject)]
#[pyo3(from_item_all)]
pub struct PlanTable {
    /// Store table name, unique: "users", "<task>/train".
    pub name: String,
    /// Vocabulary name of the table (the task name for task tables); its columns are
    /// named "<column> of <vocab_name>", so the splits of one task share column ids.
    pub vocab_name: String,
    /// "db" or "task".
    pub kind: String,
    pub path: PathBuf,
    pub pkey: Option<String>,
    pub time_col: Option<String>,
    /// (column, parent store table name), in the order f2p edges are stored.
    pub fkeys: Vec<(String, String)>,
    /// An earlier table whose column statistics this one reuses (a task's val/test
    /// splits name its train split); such a table contributes no column statistics
    /// itself (nor datetime statistics, except under the reference rules).
    pub stats_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Db = 0,
    Task = 1,
}

/// The plan's names resolved to table indices.
#[derive(Debug)]
pub struct Resolved {
    pub rules: ContextRules,
    pub kinds: Vec<Kind>,
    /// Per table, the parent table index of each foreign key.
    pub parents: Vec<Vec<usize>>,
    /// Whether the table's training rows feed the column and datetime statistics.
    pub contributes: Vec<bool>,
}

impl Plan {
    /// Check names and references; every message names the table and the fix.
    pub fn resolve(&self) -> Result<Resolved, PreprocessError> {
        let mut index = HashMap::new();
        for (i, table) in self.tables.iter().enumerate() {
            if index.insert(table.name.as_str(), i).is_some() {
                return fail(format!(
                    "dataset {}: table {:?} appears twice in the plan",
                    self.name, table.name
                ));
            }
        }
        let rules = ContextRules::parse(&self.rules)
            .or_else(|why| fail(format!("dataset {}: {why}", self.name)))?;
        let mut resolved = Resolved {
            rules,
            kinds: Vec::new(),
            parents: Vec::new(),
            contributes: Vec::new(),
        };
        for (i, table) in self.tables.iter().enumerate() {
            resolved.kinds.push(match table.kind.as_str() {
                "db" => Kind::Db,
                "task" => Kind::Task,
                other => {
                    return fail(format!(
                        "table {:?}: kind must be \"db\" or \"task\", got {other:?}",
                        table.name
                    ))
                }
            });
            let mut parents = Vec::new();
            for (column, parent) in &table.fkeys {
                let Some(&p) = index.get(parent.as_str()) else {
                    return fail(format!(
                        "table {:?}: foreign key {column:?} refers to unknown table {parent:?} \
                         (not in the dataset manifest)",
                        table.name
                    ));
                };
                if self.tables[p].pkey.is_none() {
                    return fail(format!(
                        "table {:?}: foreign key {column:?} refers to table {parent:?}, \
                         which has no primary key",
                        table.name
                    ));
                }
                parents.push(p);
            }
            resolved.parents.push(parents);
            if let Some(source) = &table.stats_from {
                match index.get(source.as_str()) {
                    Some(&s) if s < i => {}
                    _ => {
                        return fail(format!(
                            "table {:?}: stats_from {source:?} must name an earlier table",
                            table.name
                        ))
                    }
                }
            }
            resolved.contributes.push(table.stats_from.is_none());
        }
        Ok(resolved)
    }
}
