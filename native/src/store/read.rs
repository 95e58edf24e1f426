//! Read one table's Parquet file into typed columns: keys, node times and cell values.

use std::collections::HashSet;
use std::fs::File;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::error::{fail, PreprocessError};
use super::keys::{self, KeyList, PkeyIndex};
use super::plan::PlanTable;
use super::values::{self, Values};
use crate::panic_guard;

// Rows per record batch: large enough that per-batch overhead vanishes, small enough
// that one batch of strings stays far below Arrow's 2 GiB offset limit.
const BATCH_ROWS: usize = 1 << 16;

/// A cell column: its name in the file and its values.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// A table as the store needs it.
#[derive(Debug)]
pub struct LoadedTable {
    pub rows: usize,
    /// Primary key value → row.
    pub pkey: Option<PkeyIndex>,
    /// Rows whose primary key is null: no foreign key reaches them.
    pub null_pkeys: u64,
    /// Node time per row (seconds, `NO_TIME` for none); `None` without a time column.
    pub time: Option<Vec<i64>>,
    /// One key list per foreign key, in plan order.
    pub fkeys: Vec<KeyList>,
    /// Cell columns in file order.
    pub columns: Vec<Column>,
    /// (column, reason) of columns that give no cells.
    pub skipped: Vec<(String, String)>,
}

/// Read `table.path` and type its columns. A panic while decoding (the parquet crate
/// on a corrupted file) is an error naming the file, like any other unreadable file.
pub fn load(table: &PlanTable) -> Result<LoadedTable, PreprocessError> {
    panic_guard::catch(|| load_file(table)).unwrap_or_else(|panic| {
        Err(PreprocessError::Dataset(format!(
            "table {:?}: cannot read {}: the Parquet reader failed ({panic}); the file is \
             corrupted: regenerate or re-download it",
            table.name,
            table.path.display()
        )))
    })
}

fn load_file(table: &PlanTable) -> Result<LoadedTable, PreprocessError> {
    let path = table.path.display();
    let cannot = |e: &dyn std::fmt::Display| {
        PreprocessError::Dataset(format!("table {:?}: cannot read {path}: {e}", table.name))
    };
    let file = File::open(&table.path).map_err(|e| cannot(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| cannot(&e))?
        .with_batch_size(BATCH_ROWS);
    let schema = reader.schema().clone();
    let batches = reader
        .build()
        .map_err(|e| cannot(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cannot(&e))?;
    from_batches(table, &schema, &batches)
}

/// Type the columns of record batches read from `table`'s file.
pub fn from_batches(
    table: &PlanTable,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<LoadedTable, PreprocessError> {
    let name = &table.name;
    let path = table.path.display();
    let chunks = |role: &str, column: &str| -> Result<(usize, Vec<ArrayRef>), PreprocessError> {
        match schema.index_of(column) {
            Ok(i) => Ok((i, batches.iter().map(|b| b.column(i).clone()).collect())),
            Err(_) => fail(format!(
                "table {name:?}: {role} column {column:?} is not in {path} (columns: {:?})",
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            )),
        }
    };
    let key_error = |role: &str, column: &str, e: String| {
        PreprocessError::Dataset(format!("table {name:?}: {role} {column:?}: {e}"))
    };
    let mut structural = HashSet::new();
    let (mut pkey, mut null_pkeys) = (None, 0);
    if let Some(col) = &table.pkey {
        let (i, data) = chunks("primary key", col)?;
        structural.insert(i);
        let dt = schema.field(i).data_type();
        let (index, nulls) = keys::extract(dt, &data, false)
            .and_then(|keys| PkeyIndex::build(&keys))
            .map_err(|e| key_error("primary key", col, e))?;
        (pkey, null_pkeys) = (Some(index), nulls);
    }
    let mut fkeys = Vec::new();
    for (col, _) in &table.fkeys {
        let (i, data) = chunks("foreign key", col)?;
        structural.insert(i);
        let dt = schema.field(i).data_type();
        fkeys.push(keys::extract(dt, &data, true).map_err(|e| key_error("foreign key", col, e))?);
    }
    let time = match &table.time_col {
        Some(col) => {
            let (i, data) = chunks("time", col)?;
            let dt = schema.field(i).data_type();
            Some(values::node_seconds(dt, &data).map_err(|e| key_error("time column", col, e))?)
        }
        None => None,
    };
    let mut seen = HashSet::new();
    let (mut columns, mut skipped) = (Vec::new(), Vec::new());
    for (i, field) in schema.fields().iter().enumerate() {
        if !seen.insert(field.name()) {
            return fail(format!(
                "table {name:?}: column {:?} appears twice in {path}",
                field.name()
            ));
        }
        if structural.contains(&i) {
            continue;
        }
        let data: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
        match values::convert(field.data_type(), &data) {
            Ok(values) => columns.push(Column {
                name: field.name().clone(),
                values,
            }),
            Err(reason) => skipped.push((field.name().clone(), reason)),
        }
    }
    Ok(LoadedTable {
        rows: batches.iter().map(RecordBatch::num_rows).sum(),
        pkey,
        null_pkeys,
        time,
        fkeys,
        columns,
        skipped,
    })
}
