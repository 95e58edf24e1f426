//! Key extraction, primary-key indexes and lookups.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    BinaryArray, DictionaryArray, Float64Array, Int64Array, ListArray, StringArray, UInt64Array,
};

use crate::store::keys::*;
use arrow_array::types::*;
use arrow_array::ArrayRef;

fn read(array: ArrayRef, allow_lists: bool) -> Result<KeyList, String> {
    extract(array.data_type(), std::slice::from_ref(&array), allow_lists)
}

pub fn int_keys(values: &[Option<i64>]) -> KeyList {
    read(Arc::new(Int64Array::from(values.to_vec())), false).unwrap()
}

pub fn list_keys(rows: &[Vec<i64>]) -> KeyList {
    let rows = rows
        .iter()
        .map(|r| Some(r.iter().map(|&v| Some(v)).collect::<Vec<_>>()));
    read(
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(rows)),
        true,
    )
    .unwrap()
}

fn rows(keys: &KeyList) -> Vec<Vec<Key<'_>>> {
    (0..keys.rows()).map(|r| keys.row(r).collect()).collect()
}

#[test]
fn ints_floats_and_nulls() {
    let keys = int_keys(&[Some(3), None, Some(-1)]);
    assert_eq!(rows(&keys), [vec![Key::Int(3)], vec![], vec![Key::Int(-1)]]);
    // pandas' nullable integer keys arrive as floats with NaN.
    let floats = Arc::new(Float64Array::from(vec![2.0, f64::NAN, 2.5, f64::INFINITY]));
    let keys = read(floats, false).unwrap();
    assert_eq!(rows(&keys), [vec![Key::Int(2)], vec![], vec![], vec![]]);
    assert_eq!(keys.unmatchable, 2);
    let big = read(Arc::new(UInt64Array::from(vec![u64::MAX, 7])), false).unwrap();
    assert_eq!(
        (rows(&big)[1].clone(), big.unmatchable),
        (vec![Key::Int(7)], 1)
    );
}

#[test]
fn strings_dictionaries_and_chunks() {
    let a: ArrayRef = Arc::new(StringArray::from(vec![Some("u1"), None]));
    let b: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::from_iter([
        Some("u2"),
        None,
        Some("u1"),
    ]));
    let keys = extract(a.data_type(), std::slice::from_ref(&a), false).unwrap();
    assert_eq!(rows(&keys), [vec![Key::Str("u1")], vec![]]);
    let keys = read(b, false).unwrap();
    assert_eq!(
        rows(&keys),
        [vec![Key::Str("u2")], vec![], vec![Key::Str("u1")]]
    );
    let twice = extract(a.data_type(), &[a.clone(), a.clone()], false).unwrap();
    assert_eq!(twice.rows(), 4);
    assert_eq!(rows(&twice)[2], [Key::Str("u1")]);
}

#[test]
fn lists_of_keys_with_null_lists_and_elements() {
    let mut builder = ListBuilder::new(StringBuilder::new());
    builder.values().append_value("a");
    builder.values().append_null();
    builder.values().append_value("b");
    builder.append(true);
    builder.append(false);
    builder.append(true);
    let keys = read(Arc::new(builder.finish()), true).unwrap();
    assert_eq!(
        rows(&keys),
        [vec![Key::Str("a"), Key::Str("b")], vec![], vec![]]
    );
    let err = read(Arc::new(one_int_list()), false).unwrap_err();
    assert!(err.contains("unsupported key type List"), "{err}");
}

fn one_int_list() -> ListArray {
    ListArray::from_iter_primitive::<Int64Type, _, _>([Some(vec![Some(1)])])
}

#[test]
fn rejects_key_types_that_cannot_be_keys() {
    let err = read(Arc::new(BinaryArray::from(vec![b"x".as_ref()])), true).unwrap_err();
    assert!(err.contains("unsupported key type Binary") && err.contains("integers or strings"));
}

#[test]
fn dense_keys_take_the_fast_path_and_others_hash() {
    let dense = int_keys(&[Some(0), Some(1), Some(2)]);
    let (index, missing) = PkeyIndex::build(&dense).unwrap();
    assert!(matches!(index, PkeyIndex::Dense(3)) && missing == 0);
    assert_eq!(index.lookup(Key::Int(2)), Some(2));
    assert_eq!(index.lookup(Key::Int(3)), None);
    assert_eq!(index.lookup(Key::Int(-1)), None);
    assert_eq!(index.lookup(Key::Str("1")), Some(1));
    let (index, missing) = PkeyIndex::build(&int_keys(&[Some(5), None, Some(1)])).unwrap();
    assert!(matches!(index, PkeyIndex::Int(_)) && missing == 1);
    assert_eq!(
        (index.lookup(Key::Int(1)), index.lookup(Key::Int(0))),
        (Some(2), None)
    );
}

#[test]
fn string_keys_match_strings_and_decimal_integers() {
    let keys = read(Arc::new(StringArray::from(vec!["a", "17"])), false).unwrap();
    let (index, _) = PkeyIndex::build(&keys).unwrap();
    assert_eq!(index.lookup(Key::Str("a")), Some(0));
    assert_eq!(index.lookup(Key::Int(17)), Some(1));
    assert_eq!(index.lookup(Key::Str("zz")), None);
}

#[test]
fn duplicate_primary_keys_are_named() {
    let err = PkeyIndex::build(&int_keys(&[Some(4), Some(9), Some(4)])).unwrap_err();
    assert!(err.contains("duplicate value 4 (rows 0 and 2)"), "{err}");
    let keys = read(Arc::new(StringArray::from(vec!["x", "x"])), false).unwrap();
    let err = PkeyIndex::build(&keys).unwrap_err();
    assert!(err.contains("duplicate value \"x\""), "{err}");
    let floats = read(Arc::new(Float64Array::from(vec![0.5])), false).unwrap();
    assert!(PkeyIndex::build(&floats)
        .unwrap_err()
        .contains("not integers or strings"));
}
