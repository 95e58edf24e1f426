//! Lists as text: "[a, b, c]", nested lists alike, "null" for null elements.

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, OffsetSizeTrait};
use arrow_schema::DataType;

use super::values::mismatch;

/// Whether lists of `dt` can be rendered: numbers, booleans, strings and lists of them.
pub fn renderable(dt: &DataType) -> bool {
    match dt {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            renderable(item.data_type())
        }
        _ => {
            dt.is_integer()
                || dt.is_floating()
                || dt.is_null()
                || matches!(
                    dt,
                    DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
        }
    }
}

fn render_items(items: &dyn Array, out: &mut String) -> Result<(), String> {
    out.push('[');
    for i in 0..items.len() {
        if i > 0 {
            out.push_str(", ");
        }
        render(items, i, out)?;
    }
    out.push(']');
    Ok(())
}

fn render_list<O: OffsetSizeTrait>(
    array: &dyn Array,
    row: usize,
    out: &mut String,
) -> Result<(), String> {
    let list = array.as_list_opt::<O>().ok_or_else(|| mismatch(array))?;
    render_items(list.value(row).as_ref(), out)
}

macro_rules! show {
    ($array:expr, $row:expr, $out:expr, $t:ty) => {{
        let a = $array
            .as_primitive_opt::<$t>()
            .ok_or_else(|| mismatch($array))?;
        let _ = write!($out, "{}", a.value($row));
    }};
}

/// Append row `row` of `array` as text: "[a, b, c]" for lists, "null" for nulls.
pub fn render(array: &dyn Array, row: usize, out: &mut String) -> Result<(), String> {
    // A Null array has no validity buffer, so `is_null` alone would miss its rows.
    if array.is_null(row) || array.data_type().is_null() {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::List(_) => render_list::<i32>(array, row, out)?,
        DataType::LargeList(_) => render_list::<i64>(array, row, out)?,
        DataType::FixedSizeList(..) => {
            let list = array
                .as_fixed_size_list_opt()
                .ok_or_else(|| mismatch(array))?;
            render_items(list.value(row).as_ref(), out)?;
        }
        DataType::Boolean => {
            let a = array.as_boolean_opt().ok_or_else(|| mismatch(array))?;
            out.push_str(if a.value(row) { "true" } else { "false" });
        }
        DataType::Int8 => show!(array, row, out, Int8Type),
        DataType::Int16 => show!(array, row, out, Int16Type),
        DataType::Int32 => show!(array, row, out, Int32Type),
        DataType::Int64 => show!(array, row, out, Int64Type),
        DataType::UInt8 => show!(array, row, out, UInt8Type),
        DataType::UInt16 => show!(array, row, out, UInt16Type),
        DataType::UInt32 => show!(array, row, out, UInt32Type),
        DataType::UInt64 => show!(array, row, out, UInt64Type),
        DataType::Float16 => show!(array, row, out, Float16Type),
        DataType::Float32 => show!(array, row, out, Float32Type),
        DataType::Float64 => show!(array, row, out, Float64Type),
        DataType::Utf8 => out.push_str(
            array
                .as_string_opt::<i32>()
                .ok_or_else(|| mismatch(array))?
                .value(row),
        ),
        DataType::LargeUtf8 => out.push_str(
            array
                .as_string_opt::<i64>()
                .ok_or_else(|| mismatch(array))?
                .value(row),
        ),
        DataType::Utf8View => out.push_str(
            array
                .as_string_view_opt()
                .ok_or_else(|| mismatch(array))?
                .value(row),
        ),
        other => return Err(format!("unsupported list element type {other}")),
    }
    Ok(())
}
