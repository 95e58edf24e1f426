//! Semantic typing: an Arrow column becomes number, boolean, datetime or text values,
//! one per row, with "no cell" for nulls, NaN and ±inf.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::{DataType, TimeUnit};

use super::render::{render, renderable};

/// `Text` id of a row without a cell.
pub const NO_TEXT: u32 = u32::MAX;
/// Node time of a row without a timestamp (sorts first).
pub const NO_TIME: i64 = i64::MIN;

/// On-disk semantic type codes (`cell_type.bin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemType {
    Number = 0,
    Text = 1,
    Datetime = 2,
    Boolean = 3,
}

impl SemType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Text => "text",
            Self::Datetime => "datetime",
            Self::Boolean => "boolean",
        }
    }
}

/// One column's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers, datetimes (seconds since the epoch) or booleans (0/1); NaN = no cell.
    Scalar { sem: SemType, values: Vec<f64> },
    /// Index into `strings` (distinct values, first-appearance order), or `NO_TEXT`.
    Text { ids: Vec<u32>, strings: Vec<String> },
}

impl Values {
    pub fn sem(&self) -> SemType {
        match self {
            Self::Scalar { sem, .. } => *sem,
            Self::Text { .. } => SemType::Text,
        }
    }
}

pub(super) fn mismatch(array: &dyn Array) -> String {
    format!("array does not match its type {}", array.data_type())
}

fn per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

fn scalar<T: ArrowPrimitiveType>(
    chunks: &[ArrayRef],
    sem: SemType,
    f: impl Fn(T::Native) -> f64,
) -> Result<Values, String> {
    let mut values = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for chunk in chunks {
        let array = chunk
            .as_primitive_opt::<T>()
            .ok_or_else(|| mismatch(chunk))?;
        values.extend(array.iter().map(|v| match v.map(&f) {
            Some(x) if x.is_finite() => x,
            _ => f64::NAN,
        }));
    }
    Ok(Values::Scalar { sem, values })
}

/// `value / scale` of a primitive column, as `sem` values.
macro_rules! scaled {
    ($chunks:expr, $t:ty, $sem:expr, $scale:expr) => {
        scalar::<$t>($chunks, $sem, |v| v as f64 / $scale)
    };
}

/// Dates and timestamps in seconds since the epoch, whatever the unit. A zone does not
/// change the instant Arrow stores, so it is ignored.
fn datetimes(dt: &DataType, chunks: &[ArrayRef]) -> Result<Values, String> {
    use SemType::Datetime;
    match dt {
        DataType::Date32 => scalar::<Date32Type>(chunks, Datetime, |d| f64::from(d) * 86_400.0),
        DataType::Date64 => scaled!(chunks, Date64Type, Datetime, 1e3),
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled!(chunks, TimestampSecondType, Datetime, 1.0)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled!(chunks, TimestampMillisecondType, Datetime, 1e3)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled!(chunks, TimestampMicrosecondType, Datetime, 1e6)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled!(chunks, TimestampNanosecondType, Datetime, 1e9)
        }
        other => Err(format!("unsupported type {other}")),
    }
}

/// Durations as numbers of seconds.
fn durations(unit: &TimeUnit, chunks: &[ArrayRef]) -> Result<Values, String> {
    use SemType::Number;
    match unit {
        TimeUnit::Second => scaled!(chunks, DurationSecondType, Number, 1.0),
        TimeUnit::Millisecond => scaled!(chunks, DurationMillisecondType, Number, 1e3),
        TimeUnit::Microsecond => scaled!(chunks, DurationMicrosecondType, Number, 1e6),
        TimeUnit::Nanosecond => scaled!(chunks, DurationNanosecondType, Number, 1e9),
    }
}

/// Convert a column (its chunks, one per record batch) to values, or say why it is
/// skipped: "binary", "all null", "unsupported type …".
pub fn convert(dt: &DataType, chunks: &[ArrayRef]) -> Result<Values, String> {
    use SemType::Number;
    match dt {
        DataType::Boolean => {
            let mut values = Vec::new();
            for chunk in chunks {
                let array = chunk.as_boolean_opt().ok_or_else(|| mismatch(chunk))?;
                values.extend(array.iter().map(|v| v.map_or(f64::NAN, f64::from)));
            }
            Ok(Values::Scalar {
                sem: SemType::Boolean,
                values,
            })
        }
        DataType::Int8 => scaled!(chunks, Int8Type, Number, 1.0),
        DataType::Int16 => scaled!(chunks, Int16Type, Number, 1.0),
        DataType::Int32 => scaled!(chunks, Int32Type, Number, 1.0),
        DataType::Int64 => scaled!(chunks, Int64Type, Number, 1.0),
        DataType::UInt8 => scaled!(chunks, UInt8Type, Number, 1.0),
        DataType::UInt16 => scaled!(chunks, UInt16Type, Number, 1.0),
        DataType::UInt32 => scaled!(chunks, UInt32Type, Number, 1.0),
        DataType::UInt64 => scaled!(chunks, UInt64Type, Number, 1.0),
        DataType::Float16 => scalar::<Float16Type>(chunks, Number, |v| v.to_f64()),
        DataType::Float32 => scaled!(chunks, Float32Type, Number, 1.0),
        DataType::Float64 => scaled!(chunks, Float64Type, Number, 1.0),
        DataType::Decimal32(_, s) => {
            scaled!(chunks, Decimal32Type, Number, 10f64.powi(*s as i32))
        }
        DataType::Decimal64(_, s) => {
            scaled!(chunks, Decimal64Type, Number, 10f64.powi(*s as i32))
        }
        DataType::Decimal128(_, s) => {
            scaled!(chunks, Decimal128Type, Number, 10f64.powi(*s as i32))
        }
        DataType::Decimal256(_, s) => {
            let scale = 10f64.powi(*s as i32);
            scalar::<Decimal256Type>(chunks, Number, |v| {
                v.to_i128().map_or(f64::NAN, |v| v as f64 / scale)
            })
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => datetimes(dt, chunks),
        DataType::Duration(unit) => durations(unit, chunks),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let mut text = TextBuilder::default();
            for chunk in chunks {
                for_each_str(chunk, |s| text.push(s))?;
            }
            Ok(text.finish())
        }
        DataType::Dictionary(_, value_type) => dictionary(value_type, chunks),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            if !renderable(item.data_type()) {
                return Err(format!(
                    "unsupported list element type {}",
                    item.data_type()
                ));
            }
            let mut text = TextBuilder::default();
            let mut line = String::new();
            for chunk in chunks {
                for row in 0..chunk.len() {
                    if chunk.is_null(row) {
                        text.push(None);
                    } else {
                        line.clear();
                        render(chunk.as_ref(), row, &mut line)?;
                        text.push(Some(&line));
                    }
                }
            }
            Ok(text.finish())
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Err("binary".into()),
        DataType::Null => Err("all null".into()),
        other => Err(format!("unsupported type {other}")),
    }
}

/// Node timestamps of a time column, whole seconds (floored), `NO_TIME` for nulls.
pub fn node_seconds(dt: &DataType, chunks: &[ArrayRef]) -> Result<Vec<i64>, String> {
    fn floored<T: ArrowPrimitiveType>(
        chunks: &[ArrayRef],
        f: impl Fn(T::Native) -> i64,
    ) -> Result<Vec<i64>, String> {
        let mut out = Vec::new();
        for chunk in chunks {
            let array = chunk
                .as_primitive_opt::<T>()
                .ok_or_else(|| mismatch(chunk))?;
            out.extend(array.iter().map(|v| v.map_or(NO_TIME, &f)));
        }
        Ok(out)
    }
    match dt {
        DataType::Date32 => floored::<Date32Type>(chunks, |d| i64::from(d) * 86_400),
        DataType::Date64 => floored::<Date64Type>(chunks, |ms| ms.div_euclid(1_000)),
        DataType::Timestamp(unit, _) => {
            let per = per_second(unit);
            match unit {
                TimeUnit::Second => floored::<TimestampSecondType>(chunks, |v| v),
                TimeUnit::Millisecond => {
                    floored::<TimestampMillisecondType>(chunks, |v| v.div_euclid(per))
                }
                TimeUnit::Microsecond => {
                    floored::<TimestampMicrosecondType>(chunks, |v| v.div_euclid(per))
                }
                TimeUnit::Nanosecond => {
                    floored::<TimestampNanosecondType>(chunks, |v| v.div_euclid(per))
                }
            }
        }
        other => Err(format!(
            "a time column must be a date or timestamp, got {other}"
        )),
    }
}

/// Distinct strings of a column, in first-appearance order.
#[derive(Default)]
struct TextBuilder {
    index: HashMap<String, u32>,
    ids: Vec<u32>,
}

impl TextBuilder {
    fn push(&mut self, value: Option<&str>) {
        let id = match value {
            None => NO_TEXT,
            Some(s) => match self.index.get(s) {
                Some(&id) => id,
                None => {
                    let id = self.index.len() as u32;
                    self.index.insert(s.to_owned(), id);
                    id
                }
            },
        };
        self.ids.push(id);
    }

    fn finish(self) -> Values {
        let mut strings = vec![String::new(); self.index.len()];
        for (s, id) in self.index {
            strings[id as usize] = s;
        }
        Values::Text {
            ids: self.ids,
            strings,
        }
    }
}

/// Call `f` with every row of a string array (`None` for nulls).
fn for_each_str(array: &ArrayRef, mut f: impl FnMut(Option<&str>)) -> Result<(), String> {
    if let Some(a) = array.as_string_opt::<i32>() {
        a.iter().for_each(f);
    } else if let Some(a) = array.as_string_opt::<i64>() {
        a.iter().for_each(f);
    } else if let Some(a) = array.as_string_view_opt() {
        a.iter().for_each(&mut f);
    } else {
        return Err(mismatch(array));
    }
    Ok(())
}

/// A dictionary column: convert each chunk's dictionary, then look every row up in it.
fn dictionary(value_type: &DataType, chunks: &[ArrayRef]) -> Result<Values, String> {
    let mut scalars: Option<(SemType, Vec<f64>)> = None;
    let mut text = TextBuilder::default();
    for chunk in chunks {
        let dict = chunk
            .as_any_dictionary_opt()
            .ok_or_else(|| mismatch(chunk))?;
        // `normalized_keys` needs a non-empty dictionary; an empty one has only nulls.
        let keys = if dict.values().is_empty() {
            vec![]
        } else {
            dict.normalized_keys()
        };
        let present = |row: usize| !dict.is_null(row) && row < keys.len();
        match convert(value_type, std::slice::from_ref(dict.values()))? {
            Values::Scalar { sem, values } => {
                let out = &mut scalars.get_or_insert_with(|| (sem, Vec::new())).1;
                out.extend((0..dict.len()).map(|r| {
                    if present(r) {
                        values[keys[r]]
                    } else {
                        f64::NAN
                    }
                }));
            }
            Values::Text { ids, strings } => {
                for row in 0..dict.len() {
                    let id = if present(row) {
                        ids[keys[row]]
                    } else {
                        NO_TEXT
                    };
                    text.push(strings.get(id as usize).map(String::as_str));
                }
            }
        }
    }
    match scalars {
        Some((sem, values)) => Ok(Values::Scalar { sem, values }),
        None => Ok(text.finish()),
    }
}
