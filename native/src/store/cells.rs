//! The cells of every node: non-null values of its cell columns, ordered by column id,
//! standardised, with text values as vocabulary ids.

use super::columns::{ColumnInfo, Stats};
use super::error::PreprocessError;
use super::read::LoadedTable;
use super::values::{SemType, Values, NO_TEXT};
use super::vocab::Vocab;

/// The cell arrays of the store (`node_cells`, `cell_*`).
#[derive(Debug, Default)]
pub struct Cells {
    pub offsets: Vec<u64>,
    pub column: Vec<u32>,
    pub sem: Vec<u8>,
    pub value: Vec<f32>,
    pub text: Vec<i32>,
}

impl Cells {
    fn push(&mut self, column: u32, sem: SemType, value: f32, text: i32) {
        self.column.push(column);
        self.sem.push(sem as u8);
        self.value.push(value);
        self.text.push(text);
    }
}

/// Build the cells of every table's rows, in node order. Text values enter `vocab` in
/// the order their cells are written.
pub fn build(
    loaded: &[LoadedTable],
    of_table: &[Vec<(u32, usize)>],
    columns: &[ColumnInfo],
    datetime: Stats,
    vocab: &mut Vocab,
) -> Result<Cells, PreprocessError> {
    let mut cells = Cells {
        offsets: vec![0],
        ..Cells::default()
    };
    for (table, mine) in loaded.iter().zip(of_table) {
        // Per text column, local string id → vocabulary id (-1 until first seen).
        let mut text_ids: Vec<Vec<i32>> = mine
            .iter()
            .map(|&(_, i)| match &table.columns[i].values {
                Values::Text { strings, .. } => vec![-1; strings.len()],
                Values::Scalar { .. } => Vec::new(),
            })
            .collect();
        for r in 0..table.rows {
            for (slot, &(id, i)) in mine.iter().enumerate() {
                match &table.columns[i].values {
                    Values::Scalar { sem, values } => {
                        let v = values[r];
                        if v.is_nan() {
                            continue;
                        }
                        let Stats { mean, std } = match sem {
                            SemType::Datetime => datetime,
                            _ => columns[id as usize].stats,
                        };
                        cells.push(id, *sem, ((v - mean) / std) as f32, -1);
                    }
                    Values::Text { ids, strings } => {
                        let local = ids[r];
                        if local == NO_TEXT {
                            continue;
                        }
                        let global = &mut text_ids[slot][local as usize];
                        if *global < 0 {
                            *global = vocab.id(&strings[local as usize])? as i32;
                        }
                        cells.push(id, SemType::Text, 0.0, *global);
                    }
                }
            }
            cells.offsets.push(cells.column.len() as u64);
        }
    }
    Ok(cells)
}
