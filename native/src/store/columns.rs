//! Column ids and the standardisation statistics of every column.
//!
//! A column is "<column> of <vocab name>": the splits of one task share their column ids.
//! Ids are given in table order, then file order. Numbers are standardised per column,
//! datetimes with one mean/std over every datetime cell; an undefined, zero or
//! non-finite std becomes 1. Which rows count depends on the rules:
//!
//! - `Strict`: training rows only — rows of tables that contribute (no `stats_from`)
//!   whose node time is none or at most the validation timestamp; sample std (ddof 1,
//!   as pandas); booleans stay 0/1.
//! - `Reference` (as the reference preprocessor): every row of the contributing tables
//!   for numbers and booleans (sample std), booleans standardised per column like
//!   numbers; datetimes over every row of every table, val/test label tables included,
//!   with the population std (ddof 0). A boolean column holding one value has no std;
//!   the reference divides by zero there (NaN values) — such a column stays 0/1, so
//!   `value > 0` stays the boolean in every case.

use std::collections::HashMap;

use super::error::{fail, PreprocessError};
use super::plan::Plan;
use super::read::LoadedTable;
use super::values::{SemType, Values, NO_TIME};
use crate::context_rules::ContextRules;

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
    /// The map applied to its values: column statistics for numbers (and booleans
    /// under the reference rules), the datetime statistics for datetimes, the identity
    /// (0, 1) for text and strict booleans.
    pub stats: Stats,
    /// Number, boolean and datetime cells the statistics saw.
    pub stats_values: u64,
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
                    stats_values: 0,
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

    /// The std with `ddof` delta degrees of freedom, when it is finite and positive.
    fn spread(&self, ddof: u64) -> Option<f64> {
        let std = (self.squares / (self.count as f64 - ddof as f64)).sqrt();
        (std.is_finite() && std > 0.0).then_some(std)
    }

    /// Mean and std; an undefined, zero or non-finite std becomes 1.
    fn stats(&self, ddof: u64) -> Stats {
        Stats {
            mean: self.mean(),
            std: self.spread(ddof).unwrap_or(1.0),
        }
    }
}

/// Which cells the statistics see, under one set of rules.
struct StatRows<'a> {
    contributes: &'a [bool],
    val_timestamp: i64,
    rules: ContextRules,
}

impl StatRows<'_> {
    /// Whether the statistics see cells of type `sem` of table `t`.
    fn table(&self, t: usize, sem: SemType) -> bool {
        match (self.rules, sem) {
            (ContextRules::Reference, SemType::Datetime) => true,
            (ContextRules::Strict, SemType::Boolean) | (_, SemType::Text) => false,
            _ => self.contributes[t],
        }
    }

    /// Whether the statistics see row `r` of a table with node times `time`.
    fn row(&self, time: Option<&Vec<i64>>, r: usize) -> bool {
        self.rules == ContextRules::Reference
            || time.is_none_or(|time| time[r] == NO_TIME || time[r] <= self.val_timestamp)
    }
}

/// Call `f(column id, sem, value)` for every cell the statistics see.
fn stat_values(
    loaded: &[LoadedTable],
    of_table: &[Vec<(u32, usize)>],
    rows: &StatRows,
    mut f: impl FnMut(u32, SemType, f64),
) {
    for (t, table) in loaded.iter().enumerate() {
        for &(id, i) in &of_table[t] {
            if let Values::Scalar { sem, values } = &table.columns[i].values {
                if !rows.table(t, *sem) {
                    continue;
                }
                for (r, &v) in values.iter().enumerate() {
                    if !v.is_nan() && rows.row(table.time.as_ref(), r) {
                        f(id, *sem, v);
                    }
                }
            }
        }
    }
}

/// Fill every column's statistics under `rules`; returns the datetime statistics.
pub fn standardise(
    columns: &mut [ColumnInfo],
    loaded: &[LoadedTable],
    of_table: &[Vec<(u32, usize)>],
    contributes: &[bool],
    val_timestamp: i64,
    rules: ContextRules,
) -> Stats {
    let rows = StatRows {
        contributes,
        val_timestamp,
        rules,
    };
    let mut sums = vec![Sums::default(); columns.len()];
    let mut datetime = Sums::default();
    stat_values(loaded, of_table, &rows, |id, sem, v| {
        columns[id as usize].stats_values += 1;
        let s = if sem == SemType::Datetime {
            &mut datetime
        } else {
            &mut sums[id as usize]
        };
        s.count += 1;
        s.sum += v;
    });
    let means: Vec<f64> = sums.iter().map(Sums::mean).collect();
    let datetime_mean = datetime.mean();
    stat_values(loaded, of_table, &rows, |id, sem, v| {
        let (s, mean) = if sem == SemType::Datetime {
            (&mut datetime, datetime_mean)
        } else {
            (&mut sums[id as usize], means[id as usize])
        };
        s.squares += (v - mean) * (v - mean);
    });
    let datetime = datetime.stats(match rules {
        ContextRules::Reference => 0,
        ContextRules::Strict => 1,
    });
    for (column, sums) in columns.iter_mut().zip(&sums) {
        column.stats = match column.sem {
            SemType::Number => sums.stats(1),
            SemType::Datetime => datetime,
            SemType::Boolean if rules == ContextRules::Reference => match sums.spread(1) {
                Some(std) => Stats {
                    mean: sums.mean(),
                    std,
                },
                None => IDENTITY,
            },
            SemType::Text | SemType::Boolean => IDENTITY,
        };
    }
    datetime
}
