//! Key columns. A primary key maps its values (integers or strings) to rows; a foreign
//! key holds per row zero or more values (null → none, a list → several) that map to
//! parent rows through the parent's primary key. A value no parent row holds is a
//! dangling key: counted by the caller, never an error.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, OffsetSizeTrait};
use arrow_schema::DataType;

/// One key value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Int(i64),
    Str(&'a str),
}

/// A key slot as read: no value, a value no key can equal, or a key.
#[derive(Debug, Clone, Copy)]
enum Leaf<'a> {
    Null,
    Unmatchable,
    Key(Key<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyValues {
    Int(Vec<i64>),
    /// Concatenated strings and the end of each.
    Str {
        text: String,
        ends: Vec<usize>,
    },
}

/// The key values of every row of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    /// Row r holds values `offsets[r]..offsets[r + 1]`.
    offsets: Vec<usize>,
    values: KeyValues,
    /// Values that can equal no key: fractional or non-finite floats, unsigned integers
    /// above `i64::MAX`.
    pub unmatchable: u64,
}

impl KeyList {
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn row(&self, r: usize) -> impl Iterator<Item = Key<'_>> + '_ {
        (self.offsets[r]..self.offsets[r + 1]).map(move |j| match &self.values {
            KeyValues::Int(v) => Key::Int(v[j]),
            KeyValues::Str { text, ends } => {
                Key::Str(&text[if j == 0 { 0 } else { ends[j - 1] }..ends[j]])
            }
        })
    }

    fn push(&mut self, leaf: Leaf<'_>) -> Result<(), String> {
        match (leaf, &mut self.values) {
            (Leaf::Null, _) => {}
            (Leaf::Unmatchable, _) => self.unmatchable += 1,
            (Leaf::Key(Key::Int(v)), KeyValues::Int(ints)) => ints.push(v),
            (Leaf::Key(Key::Str(s)), KeyValues::Str { text, ends }) => {
                text.push_str(s);
                ends.push(text.len());
            }
            _ => return Err("mixes integer and string keys".into()),
        }
        Ok(())
    }

    fn end_row(&mut self) {
        let len = match &self.values {
            KeyValues::Int(v) => v.len(),
            KeyValues::Str { ends, .. } => ends.len(),
        };
        self.offsets.push(len);
    }
}

fn unsupported(dt: &DataType) -> String {
    format!("unsupported key type {dt}: keys must be integers or strings, or lists of them")
}

/// Whether a (list of) key type holds strings, or an error for a type keys cannot have.
fn holds_strings(dt: &DataType, allow_lists: bool) -> Result<bool, String> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(true),
        DataType::Dictionary(_, values) => holds_strings(values, false),
        DataType::List(item) | DataType::LargeList(item) if allow_lists => {
            holds_strings(item.data_type(), false)
        }
        _ if dt.is_integer() || matches!(dt, DataType::Float32 | DataType::Float64) => Ok(false),
        _ => Err(unsupported(dt)),
    }
}

fn float_key<'a>(v: f64) -> Leaf<'a> {
    // pandas writes nullable integer keys as floats with NaN for null.
    if v.is_nan() {
        Leaf::Null
    } else if v.fract() == 0.0 && (-9.2e18..9.2e18).contains(&v) {
        Leaf::Key(Key::Int(v as i64))
    } else {
        Leaf::Unmatchable
    }
}

/// The key in every slot of a primitive array, through `f`.
fn primitive<'a, T: ArrowPrimitiveType>(
    array: &'a ArrayRef,
    f: impl Fn(T::Native) -> Leaf<'a>,
) -> Result<Vec<Leaf<'a>>, String> {
    let a = array
        .as_primitive_opt::<T>()
        .ok_or_else(|| unsupported(array.data_type()))?;
    Ok(a.iter().map(|v| v.map_or(Leaf::Null, &f)).collect())
}

fn int<'a>(v: impl TryInto<i64>) -> Leaf<'a> {
    v.try_into()
        .map_or(Leaf::Unmatchable, |v| Leaf::Key(Key::Int(v)))
}

/// The key in every slot of a scalar (non-list) array.
fn leaves(array: &ArrayRef) -> Result<Vec<Leaf<'_>>, String> {
    match array.data_type() {
        DataType::Int8 => primitive::<Int8Type>(array, int),
        DataType::Int16 => primitive::<Int16Type>(array, int),
        DataType::Int32 => primitive::<Int32Type>(array, int),
        DataType::Int64 => primitive::<Int64Type>(array, int),
        DataType::UInt8 => primitive::<UInt8Type>(array, int),
        DataType::UInt16 => primitive::<UInt16Type>(array, int),
        DataType::UInt32 => primitive::<UInt32Type>(array, int),
        DataType::UInt64 => primitive::<UInt64Type>(array, int),
        DataType::Float32 => primitive::<Float32Type>(array, |v| float_key(f64::from(v))),
        DataType::Float64 => primitive::<Float64Type>(array, float_key),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = string_slices(array)?;
            Ok(strings
                .into_iter()
                .map(|s| s.map_or(Leaf::Null, |s| Leaf::Key(Key::Str(s))))
                .collect())
        }
        DataType::Dictionary(..) => {
            let dict = array
                .as_any_dictionary_opt()
                .ok_or_else(|| unsupported(array.data_type()))?;
            if dict.values().is_empty() {
                return Ok(vec![Leaf::Null; dict.len()]);
            }
            let values = leaves(dict.values())?;
            let keys = dict.normalized_keys();
            Ok((0..dict.len())
                .map(|r| {
                    if dict.is_null(r) {
                        Leaf::Null
                    } else {
                        values[keys[r]]
                    }
                })
                .collect())
        }
        other => Err(unsupported(other)),
    }
}

/// The rows of a string array, borrowed.
fn string_slices(array: &ArrayRef) -> Result<Vec<Option<&str>>, String> {
    if let Some(a) = array.as_string_opt::<i32>() {
        Ok(a.iter().collect())
    } else if let Some(a) = array.as_string_opt::<i64>() {
        Ok(a.iter().collect())
    } else if let Some(a) = array.as_string_view_opt() {
        Ok(a.iter().collect())
    } else {
        Err(unsupported(array.data_type()))
    }
}

fn push_list<O: OffsetSizeTrait>(chunk: &ArrayRef, out: &mut KeyList) -> Result<(), String> {
    let list = chunk
        .as_list_opt::<O>()
        .ok_or_else(|| unsupported(chunk.data_type()))?;
    let flat = leaves(list.values())?;
    let offsets = list.value_offsets();
    for row in 0..list.len() {
        if list.is_valid(row) {
            for &leaf in &flat[offsets[row].as_usize()..offsets[row + 1].as_usize()] {
                out.push(leaf)?;
            }
        }
        out.end_row();
    }
    Ok(())
}

/// Read a key column (its chunks, one per record batch). Lists are allowed for foreign
/// keys only.
pub fn extract(dt: &DataType, chunks: &[ArrayRef], allow_lists: bool) -> Result<KeyList, String> {
    let values = if holds_strings(dt, allow_lists)? {
        KeyValues::Str {
            text: String::new(),
            ends: Vec::new(),
        }
    } else {
        KeyValues::Int(Vec::new())
    };
    let mut out = KeyList {
        offsets: vec![0],
        values,
        unmatchable: 0,
    };
    for chunk in chunks {
        match dt {
            DataType::List(_) => push_list::<i32>(chunk, &mut out)?,
            DataType::LargeList(_) => push_list::<i64>(chunk, &mut out)?,
            _ => {
                for leaf in leaves(chunk)? {
                    out.push(leaf)?;
                    out.end_row();
                }
            }
        }
    }
    Ok(out)
}

/// Primary key value → row.
#[derive(Debug)]
pub enum PkeyIndex {
    /// The keys are 0..n in row order: value v is row v.
    Dense(u32),
    Int(HashMap<i64, u32>),
    Str(HashMap<String, u32>),
}

/// Why a primary key cannot index its rows.
fn duplicate(key: Key<'_>, first: u32, again: usize) -> String {
    let shown = match key {
        Key::Int(v) => v.to_string(),
        Key::Str(s) => format!("{s:?}"),
    };
    format!("duplicate value {shown} (rows {first} and {again}); primary keys must be unique")
}

impl PkeyIndex {
    /// Index a primary key column. Returns the index and the number of rows without a
    /// key (null), which no foreign key can reach.
    pub fn build(keys: &KeyList) -> Result<(Self, u64), String> {
        if keys.unmatchable > 0 {
            return Err(format!(
                "{} values are not integers or strings",
                keys.unmatchable
            ));
        }
        let rows = keys.rows();
        let n = u32::try_from(rows).map_err(|_| format!("{rows} rows exceed the u32 node ids"))?;
        if let KeyValues::Int(v) = &keys.values {
            if v.len() == rows && v.iter().enumerate().all(|(i, &k)| k == i as i64) {
                return Ok((Self::Dense(n), 0));
            }
        }
        let mut missing = 0;
        let mut index = match keys.values {
            KeyValues::Int(_) => Self::Int(HashMap::with_capacity(rows)),
            KeyValues::Str { .. } => Self::Str(HashMap::with_capacity(rows)),
        };
        for row in 0..rows {
            let mut values = keys.row(row);
            let Some(key) = values.next() else {
                missing += 1;
                continue;
            };
            let before = match (&mut index, key) {
                (Self::Int(map), Key::Int(v)) => map.insert(v, row as u32),
                (Self::Str(map), Key::Str(s)) => map.insert(s.to_owned(), row as u32),
                _ => None,
            };
            if let Some(first) = before {
                return Err(duplicate(key, first, row));
            }
        }
        Ok((index, missing))
    }

    /// The row holding `key`. An integer and a string key match when the string is the
    /// integer's decimal form.
    pub fn lookup(&self, key: Key<'_>) -> Option<u32> {
        match (self, key) {
            (Self::Dense(n), Key::Int(v)) => u32::try_from(v).ok().filter(|&v| v < *n),
            (Self::Int(map), Key::Int(v)) => map.get(&v).copied(),
            (Self::Dense(_) | Self::Int(_), Key::Str(s)) => {
                s.parse::<i64>().ok().and_then(|v| self.lookup(Key::Int(v)))
            }
            (Self::Str(map), Key::Str(s)) => map.get(s).copied(),
            (Self::Str(map), Key::Int(v)) => map.get(&v.to_string()).copied(),
        }
    }
}
