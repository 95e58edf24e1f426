//! Column ids, statistics under both rules and cell assembly on hand-made tables.

use std::path::PathBuf;

use crate::context_rules::ContextRules::{Reference, Strict};
use crate::store::cells;
use crate::store::columns::{assign, standardise, Stats};
use crate::store::plan::{Plan, PlanTable};
use crate::store::read::{Column, LoadedTable};
use crate::store::values::{SemType, Values, NO_TEXT, NO_TIME};
use crate::store::vocab::Vocab;

fn spec(name: &str, vocab_name: &str) -> PlanTable {
    PlanTable {
        name: name.into(),
        vocab_name: vocab_name.into(),
        kind: "task".into(),
        path: PathBuf::from(format!("{name}.parquet")),
        pkey: None,
        time_col: None,
        fkeys: vec![],
        stats_from: None,
    }
}

fn number(name: &str, values: &[f64]) -> Column {
    Column {
        name: name.into(),
        values: Values::Scalar {
            sem: SemType::Number,
            values: values.to_vec(),
        },
    }
}

fn table(time: Option<Vec<i64>>, columns: Vec<Column>) -> LoadedTable {
    let rows = match &columns[0].values {
        Values::Scalar { values, .. } => values.len(),
        Values::Text { ids, .. } => ids.len(),
    };
    LoadedTable {
        rows,
        pkey: None,
        null_pkeys: 0,
        time,
        fkeys: vec![],
        columns,
        skipped: vec![],
    }
}

fn plan(tables: Vec<PlanTable>) -> Plan {
    Plan {
        name: "db".into(),
        val_timestamp: 10,
        rules: "strict".into(),
        tables,
    }
}

#[test]
fn task_splits_share_column_ids_in_id_order() {
    let p = plan(vec![
        spec("t/train", "t"),
        spec("t/val", "t"),
        spec("u", "u"),
    ]);
    let loaded = vec![
        table(None, vec![number("a", &[1.0]), number("b", &[1.0])]),
        table(None, vec![number("b", &[1.0]), number("a", &[1.0])]),
        table(None, vec![number("a", &[1.0])]),
    ];
    let (columns, of_table) = assign(&p, &loaded).unwrap();
    let names: Vec<_> = columns.iter().map(|c| (c.name.as_str(), c.table)).collect();
    assert_eq!(names, [("a", 0), ("b", 0), ("a", 2)]);
    assert_eq!(
        of_table,
        [vec![(0, 0), (1, 1)], vec![(0, 1), (1, 0)], vec![(2, 0)]]
    );
}

#[test]
fn a_column_with_two_types_is_an_error_naming_both_tables() {
    let p = plan(vec![spec("t/train", "t"), spec("t/test", "t")]);
    let text = Column {
        name: "a".into(),
        values: Values::Text {
            ids: vec![0],
            strings: vec!["x".into()],
        },
    };
    let loaded = vec![
        table(None, vec![number("a", &[1.0])]),
        table(None, vec![text]),
    ];
    let err = assign(&p, &loaded).unwrap_err().to_string();
    assert!(
        err.contains("number in table \"t/train\" but text in table \"t/test\""),
        "{err}"
    );
}

#[test]
fn strict_statistics_come_from_training_rows_only() {
    let p = plan(vec![spec("t/train", "t"), spec("t/val", "t")]);
    let time = vec![0, 10, 20, NO_TIME];
    let dt = Column {
        name: "at".into(),
        values: Values::Scalar {
            sem: SemType::Datetime,
            values: vec![0.0, 10.0, 20.0, f64::NAN],
        },
    };
    let loaded = vec![
        table(Some(time), vec![number("x", &[1.0, 2.0, 100.0, 3.0]), dt]),
        // A split with stats_from contributes nothing, whatever its times.
        table(None, vec![number("x", &[1e9])]),
    ];
    let (mut columns, of_table) = assign(&p, &loaded).unwrap();
    let datetime = standardise(&mut columns, &loaded, &of_table, &[true, false], 10, Strict);
    assert_eq!(
        columns[0].stats,
        Stats {
            mean: 2.0,
            std: 1.0
        }
    );
    assert_eq!(columns[0].stats_values, 3);
    assert_eq!(
        datetime,
        Stats {
            mean: 5.0,
            std: 50f64.sqrt()
        }
    );
    assert_eq!(columns[1].stats, datetime);
    // One value has no sample std: it becomes 1, as does a constant column's.
    let loaded = vec![
        table(None, vec![number("x", &[4.0])]),
        table(None, vec![number("x", &[4.0])]),
    ];
    let (mut columns, of_table) = assign(&p, &loaded).unwrap();
    let datetime = standardise(&mut columns, &loaded, &of_table, &[true, true], 10, Strict);
    assert_eq!(
        (columns[0].stats, datetime),
        (
            Stats {
                mean: 4.0,
                std: 1.0
            },
            Stats {
                mean: 0.0,
                std: 1.0
            }
        )
    );
}

#[test]
fn cells_are_standardised_ordered_by_column_and_text_enters_the_vocab_in_order() {
    let p = plan(vec![spec("u", "u")]);
    let words = Values::Text {
        ids: vec![1, NO_TEXT, 0],
        strings: vec!["b".into(), "a".into()],
    };
    let flag = Values::Scalar {
        sem: SemType::Boolean,
        values: vec![1.0, 0.0, f64::NAN],
    };
    let loaded = vec![table(
        None,
        vec![
            number("x", &[1.0, f64::NAN, 3.0]),
            Column {
                name: "w".into(),
                values: words,
            },
            Column {
                name: "f".into(),
                values: flag,
            },
        ],
    )];
    let (mut columns, of_table) = assign(&p, &loaded).unwrap();
    let datetime = standardise(&mut columns, &loaded, &of_table, &[true], 10, Strict);
    let mut vocab = Vocab::default();
    vocab.id("u").unwrap();
    let cells = cells::build(&loaded, &of_table, &columns, datetime, &mut vocab).unwrap();
    assert_eq!(cells.offsets, [0, 3, 4, 6]);
    assert_eq!(cells.column, [0, 1, 2, 2, 0, 1]);
    assert_eq!(cells.sem, [0, 1, 3, 3, 0, 1]);
    let s = 2f64.sqrt();
    assert_eq!(
        cells.value,
        [(-1.0 / s) as f32, 0.0, 1.0, 0.0, (1.0 / s) as f32, 0.0]
    );
    assert_eq!(cells.text, [-1, 1, -1, -1, -1, 2]);
    assert_eq!((vocab.get(1), vocab.get(2)), ("a", "b"));
}

#[test]
fn reference_statistics_count_every_row_and_standardise_booleans() {
    let p = plan(vec![spec("t/train", "t"), spec("t/val", "t")]);
    let dt = |values: &[f64]| Column {
        name: "at".into(),
        values: Values::Scalar {
            sem: SemType::Datetime,
            values: values.to_vec(),
        },
    };
    let flag = |values: &[f64]| Column {
        name: "f".into(),
        values: Values::Scalar {
            sem: SemType::Boolean,
            values: values.to_vec(),
        },
    };
    let loaded = vec![
        table(
            Some(vec![0, 10, 20, NO_TIME]),
            vec![
                number("x", &[1.0, 2.0, 100.0, 3.0]),
                dt(&[0.0, 10.0, 20.0, f64::NAN]),
                flag(&[1.0, 0.0, 0.0, 1.0]),
            ],
        ),
        // stats_from: no column statistics, but its datetimes count (every table's do).
        table(None, vec![number("x", &[1e9]), dt(&[30.0]), flag(&[1.0])]),
    ];
    let (mut columns, of_table) = assign(&p, &loaded).unwrap();
    let datetime = standardise(
        &mut columns,
        &loaded,
        &of_table,
        &[true, false],
        10,
        Reference,
    );
    // x: all four rows, 1, 2, 100, 3 (the row at 20 is past val_timestamp 10).
    let squares: f64 = [1.0f64, 2.0, 100.0, 3.0]
        .iter()
        .map(|v| (v - 26.5).powi(2))
        .sum();
    assert_eq!(
        columns[0].stats,
        Stats {
            mean: 26.5,
            std: (squares / 3.0).sqrt()
        }
    );
    assert_eq!(columns[0].stats_values, 4);
    // Datetimes 0, 10, 20 (train) and 30 (val): mean 15, population std sqrt(125).
    assert_eq!(
        datetime,
        Stats {
            mean: 15.0,
            std: 125f64.sqrt()
        }
    );
    // Booleans 1, 0, 0, 1: mean 0.5, sample std sqrt(1/3).
    assert_eq!(
        columns[2].stats,
        Stats {
            mean: 0.5,
            std: (1.0f64 / 3.0).sqrt()
        }
    );
    // Strict leaves booleans 0/1 and counts training rows only.
    let (mut strict, of_table) = assign(&p, &loaded).unwrap();
    standardise(&mut strict, &loaded, &of_table, &[true, false], 10, Strict);
    assert_eq!(
        strict[2].stats,
        Stats {
            mean: 0.0,
            std: 1.0
        }
    );
    assert_eq!(strict[0].stats.mean, 2.0);
    // A boolean column of one value has no std: it stays 0/1 (value > 0 is the boolean).
    let loaded = vec![table(None, vec![flag(&[1.0, 1.0])])];
    let p = plan(vec![spec("u", "u")]);
    let (mut columns, of_table) = assign(&p, &loaded).unwrap();
    standardise(&mut columns, &loaded, &of_table, &[true], 10, Reference);
    assert_eq!(
        columns[0].stats,
        Stats {
            mean: 0.0,
            std: 1.0
        }
    );
}
