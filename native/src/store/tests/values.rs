//! Semantic typing of every Arrow type a table can hold.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::*;
use arrow_array::*;
use arrow_schema::{DataType, TimeUnit};

use crate::store::values::*;

fn convert_one(array: ArrayRef) -> Result<Values, String> {
    convert(array.data_type(), std::slice::from_ref(&array))
}

fn scalars(values: Values) -> (SemType, Vec<Option<f64>>) {
    match values {
        Values::Scalar { sem, values } => (
            sem,
            values
                .into_iter()
                .map(|v| (!v.is_nan()).then_some(v))
                .collect(),
        ),
        Values::Text { .. } => panic!("expected scalars"),
    }
}

fn texts(values: Values) -> Vec<Option<String>> {
    match values {
        Values::Text { ids, strings } => ids
            .into_iter()
            .map(|id| (id != NO_TEXT).then(|| strings[id as usize].clone()))
            .collect(),
        Values::Scalar { .. } => panic!("expected text"),
    }
}

#[test]
fn numbers_drop_nulls_nan_and_infinities() {
    let floats = Float64Array::from(vec![
        Some(1.5),
        None,
        Some(f64::NAN),
        Some(f64::NEG_INFINITY),
    ]);
    let (sem, v) = scalars(convert_one(Arc::new(floats)).unwrap());
    assert_eq!(
        (sem, v),
        (SemType::Number, vec![Some(1.5), None, None, None])
    );
    let ints = Int32Array::from(vec![Some(-3), None]);
    assert_eq!(
        scalars(convert_one(Arc::new(ints)).unwrap()).1,
        [Some(-3.0), None]
    );
    let dec = Decimal128Array::from(vec![12345])
        .with_precision_and_scale(10, 2)
        .unwrap();
    assert_eq!(
        scalars(convert_one(Arc::new(dec)).unwrap()).1,
        [Some(123.45)]
    );
    let dur = DurationMillisecondArray::from(vec![1500]);
    assert_eq!(
        scalars(convert_one(Arc::new(dur)).unwrap()),
        (SemType::Number, vec![Some(1.5)])
    );
}

#[test]
fn booleans_are_zero_or_one() {
    let b = BooleanArray::from(vec![Some(true), None, Some(false)]);
    let (sem, v) = scalars(convert_one(Arc::new(b)).unwrap());
    assert_eq!(
        (sem, v),
        (SemType::Boolean, vec![Some(1.0), None, Some(0.0)])
    );
}

#[test]
fn datetimes_are_seconds_in_any_unit_and_zone() {
    let ms = TimestampMillisecondArray::from(vec![Some(1_500), None]).with_timezone("Europe/Paris");
    assert_eq!(
        scalars(convert_one(Arc::new(ms)).unwrap()),
        (SemType::Datetime, vec![Some(1.5), None])
    );
    let ns = TimestampNanosecondArray::from(vec![86_400_000_000_000]);
    assert_eq!(
        scalars(convert_one(Arc::new(ns)).unwrap()).1,
        [Some(86_400.0)]
    );
    let days = Date32Array::from(vec![2]);
    assert_eq!(
        scalars(convert_one(Arc::new(days)).unwrap()).1,
        [Some(172_800.0)]
    );
}

#[test]
fn node_seconds_floor_and_mark_nulls() {
    let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
        Some(-1),
        Some(1_999),
        None,
    ]));
    let dt = DataType::Timestamp(TimeUnit::Millisecond, None);
    assert_eq!(node_seconds(&dt, &[ms]).unwrap(), [-1, 1, NO_TIME]);
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let err = node_seconds(&DataType::Int64, &[ints]).unwrap_err();
    assert!(err.contains("must be a date or timestamp"), "{err}");
}

#[test]
fn text_ids_follow_first_appearance_across_chunks() {
    let a: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), None, Some("a")]));
    let b: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("c")]));
    let Values::Text { ids, strings } = convert(&DataType::Utf8, &[a, b]).unwrap() else {
        panic!("expected text")
    };
    assert_eq!(
        (ids, strings),
        (
            vec![0, NO_TEXT, 1, 1, 2],
            vec!["b".into(), "a".into(), "c".into()]
        )
    );
    let view = StringViewArray::from(vec!["x"]);
    assert_eq!(
        texts(convert_one(Arc::new(view)).unwrap()),
        [Some("x".into())]
    );
}

#[test]
fn dictionaries_of_strings_and_numbers() {
    let dict = DictionaryArray::<Int8Type>::from_iter([Some("lo"), None, Some("hi"), Some("lo")]);
    let t = texts(convert_one(Arc::new(dict)).unwrap());
    assert_eq!(
        t,
        [
            Some("lo".into()),
            None,
            Some("hi".into()),
            Some("lo".into())
        ]
    );
    let keys = Int8Array::from(vec![Some(1), None]);
    let values: ArrayRef = Arc::new(Float64Array::from(vec![0.5, 2.0]));
    let dict = DictionaryArray::<Int8Type>::try_new(keys, values).unwrap();
    assert_eq!(
        scalars(convert_one(Arc::new(dict)).unwrap()).1,
        [Some(2.0), None]
    );
}

#[test]
fn lists_render_as_text() {
    let mut builder = ListBuilder::new(StringBuilder::new());
    builder.values().append_value("a");
    builder.values().append_null();
    builder.values().append_value("c");
    builder.append(true);
    builder.append(false);
    builder.append(true);
    let t = texts(convert_one(Arc::new(builder.finish())).unwrap());
    assert_eq!(t, [Some("[a, null, c]".into()), None, Some("[]".into())]);
    let ints = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(vec![Some(1), Some(2)])]);
    assert_eq!(
        texts(convert_one(Arc::new(ints)).unwrap()),
        [Some("[1, 2]".into())]
    );
}

#[test]
fn unsupported_columns_say_why() {
    let binary = BinaryArray::from(vec![b"x".as_ref()]);
    assert_eq!(convert_one(Arc::new(binary)).unwrap_err(), "binary");
    assert_eq!(
        convert_one(Arc::new(NullArray::new(2))).unwrap_err(),
        "all null"
    );
    let time = Time32SecondArray::from(vec![1]);
    assert_eq!(
        convert_one(Arc::new(time)).unwrap_err(),
        "unsupported type Time32(s)"
    );
}
