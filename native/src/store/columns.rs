//! Column ids and the standardisation statistics of every column.
//!
//! A column is "<column> of <vocab name>": the splits of one task share their column ids.
//! Ids are given in table order, then file order. Statistics come from training rows
//! only: rows of tables that contribute (no `stats_from`) whose node time is none or at
//! most the validation timestamp. Numbers are standardised per column, datetimes with one
//! mean/std over every datetime cell; the std is the sample std (ddof 1, as pandas), and
//! an undefined, zero or non-finite std becomes 1.

use std::collections::HashMap;

use super::error::{fail, PreprocessError};
use super::plan::Plan;
use super::read::LoadedTable;
use super::values::{SemType, Values, NO_TIME};

/// Mean and std of a standardisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub std: f64,
}

/// One column of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// The first table that has it.
    pub table: usize,
    pub name: String,
    pub sem: SemType,
    /// The map applied to its values: column statistics for numbers, the datetime
    /// statistics for datetimes, the identity (0, 1) for booleans and text.
    pub stats: Stats,
    /// Number and datetime cells of training rows the statistics saw.
    pub training_values: u64,
}

/// Columns and, per table, (column id, index in its `columns`) ascending by id.
pub type Assignment = (Vec<ColumnInfo>, Vec<Vec<(u32, usize)>>);

const IDENTITY: Stats = Stats {
    mean: 0.0,
    std: 1.0,
};

/// Give every cell column an id.
pub fn assign(plan: &Plan, loaded: &[LoadedTable]) -> Result<Assignment, PreprocessError> {
    let mut ids: HashMap<(&str, &str), u32> = HashMap::new();
    let mut columns: Vec<ColumnInfo> = Vec::new();
    let mut of_table = Vec::new();
    for (t, (spec, table)) in plan.tables.iter().zip(loaded).enumerate() {
        let mut mine = Vec::new();
        for (i, column) in table.columns.iter().enumerate() {
            let sem = column.values.sem();
            let key = (spec.vocab_name.as_str(), column.name.as_str());
            let id = *ids.entry(key).or_insert_with(|| {
                columns.push(ColumnInfo {
                    table: t,
                    name: column.name.clone(),
                    sem,
                    stats: IDENTITY,
                    training_values: 0,
                });
                columns.len() as u32 - 1
            });
            let first = &columns[id as usize];
            if first.sem != sem {
                return fail(format!(
                    "column {:?} of {:?} is {} in table {:?} but {} in table {:?}; the tables \
                     of one task must give a column one type",
                    column.name,
                    spec.vocab_name,
                    first.sem.name(),
                    plan.tables[first.table].name,
                    sem.name(),
                    spec.name,
                ));
            }
            mine.push((id, i));
        }
        mine.sort_unstable();
        of_table.push(mine);
    }
    Ok((columns, of_table))
}

/// Running sums of one statistic, filled in two passes (mean first, then squares).
#[derive(Default, Clone, Copy)]
struct Sums {
    count: u64,
    sum: f64,
    squares: f64,
}

impl Sums {
    fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    fn stats(&self) -> Stats {
        let var = self.squares / (self.count as f64 - 1.0);
        let std = var.sqrt();
        Stats {
            mean: self.mean(),
            std: if std.is_finite() && std > 0.0 {
                std
            } else {
                1.0
            },
        }
    }
}

/// Call `f(column id, value)` for every number and datetime cell of a training row.
fn training_values(
    loaded: &[LoadedTable],
    of_table: &[Vec<(u32, usize)>],
    contributes: &[bool],
    val_timestamp: i64,
    mut f: impl FnMut(u32, SemType, f64),
) {
    for (t, table) in loaded.iter().enumerate().filter(|(t, _)| contributes[*t]) {
        let train = |r: usize| {
            table
                .time
                .as_ref()
                .is_none_or(|time| time[r] == NO_TIME || time[r] <= val_timestamp)
        };
        for &(id, i) in &of_table[t] {
            if let Values::Scalar {
                sem: sem @ (SemType::Number | SemType::Datetime),
                values,
            } = &table.columns[i].values
            {
                for (r, &v) in values.iter().enumerate() {
                    if !v.is_nan() && train(r) {
                        f(id, *sem, v);
                    }
                }
            }
        }
    }
}

/// Fill every column's statistics; returns the datetime statistics.
pub fn standardise(
    columns: &mut [ColumnInfo],
    loaded: &[LoadedTable],
    of_table: &[Vec<(u32, usize)>],
    contributes: &[bool],
    val_timestamp: i64,
) -> Stats {
    let mut sums = vec![Sums::default(); columns.len()];
    let mut datetime = Sums::default();
    training_values(
        loaded,
        of_table,
        contributes,
        val_timestamp,
        |id, sem, v| {
            columns[id as usize].training_values += 1;
            let s = if sem == SemType::Datetime {
                &mut datetime
            } else {
                &mut sums[id as usize]
            };
            s.count += 1;
            s.sum += v;
        },
    );
    let means: Vec<f64> = sums.iter().map(Sums::mean).collect();
    let datetime_mean = datetime.mean();
    training_values(
        loaded,
        of_table,
        contributes,
        val_timestamp,
        |id, sem, v| {
            let (s, mean) = if sem == SemType::Datetime {
                (&mut datetime, datetime_mean)
            } else {
                (&mut sums[id as usize], means[id as usize])
            };
            s.squares += (v - mean) * (v - mean);
        },
    );
    let datetime = datetime.stats();
    for (column, sums) in columns.iter_mut().zip(&sums) {
        column.stats = match column.sem {
            SemType::Number => sums.stats(),
            SemType::Datetime => datetime,
            SemType::Text | SemType::Boolean => IDENTITY,
        };
    }
    datetime
}
