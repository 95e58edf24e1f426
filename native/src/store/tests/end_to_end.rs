//! Parquet files in, array files out: a small database with string and integer keys,
//! a dangling and a null foreign key, and a task with two splits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::*;
use parquet::arrow::ArrowWriter;

use crate::array_file::{Elem, MappedArray};
use crate::store::{preprocess, Plan, PlanTable, PreprocessError};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plurel-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let path = dir.join(format!("{}.parquet", name.replace('/', "_")));
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

fn table(
    name: &str,
    kind: &str,
    path: PathBuf,
    pkey: Option<&str>,
    time: Option<&str>,
    fkeys: &[(&str, &str)],
) -> PlanTable {
    PlanTable {
        name: name.into(),
        vocab_name: name.split('/').next().unwrap().into(),
        kind: kind.into(),
        path,
        pkey: pkey.map(Into::into),
        time_col: time.map(Into::into),
        fkeys: fkeys
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect(),
        stats_from: None,
    }
}

fn ms(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values))
}

/// orgs (string keys) ← users (int keys 10, 20, 30) ← churn/train, churn/test.
fn database(dir: &Path) -> Plan {
    let orgs = write(
        dir,
        "orgs",
        vec![
            (
                "org",
                Arc::new(StringArray::from(vec!["o1", "o2"])) as ArrayRef,
            ),
            ("label", Arc::new(StringArray::from(vec!["big", "small"]))),
        ],
    );
    let users = write(
        dir,
        "users",
        vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![10, 20, 30])) as ArrayRef,
            ),
            (
                "org_id",
                Arc::new(StringArray::from(vec![Some("o2"), None, Some("o9")])),
            ),
            (
                "age",
                Arc::new(Int32Array::from(vec![Some(20), Some(40), None])),
            ),
            ("signup", ms(vec![Some(5_000), None, Some(1_000)])),
            (
                "photo",
                Arc::new(BinaryArray::from(vec![b"a".as_ref(), b"b", b"c"])),
            ),
        ],
    );
    let train = write(
        dir,
        "churn/train",
        vec![
            (
                "user",
                Arc::new(Int64Array::from(vec![10, 10, 30])) as ArrayRef,
            ),
            ("at", ms(vec![Some(3_000), Some(2_000), Some(2_000)])),
            (
                "churn",
                Arc::new(BooleanArray::from(vec![true, false, true])),
            ),
        ],
    );
    let test = write(
        dir,
        "churn/test",
        vec![
            ("user", Arc::new(Int64Array::from(vec![20])) as ArrayRef),
            ("at", ms(vec![Some(90_000)])),
            ("churn", Arc::new(BooleanArray::from(vec![false]))),
        ],
    );
    let mut test = table(
        "churn/test",
        "task",
        test,
        None,
        Some("at"),
        &[("user", "users")],
    );
    test.stats_from = Some("churn/train".into());
    Plan {
        name: "toy".into(),
        val_timestamp: 10,
        rules: "strict".into(),
        tables: vec![
            table("orgs", "db", orgs, Some("org"), None, &[]),
            table(
                "users",
                "db",
                users,
                Some("id"),
                Some("signup"),
                &[("org_id", "orgs")],
            ),
            table(
                "churn/train",
                "task",
                train,
                None,
                Some("at"),
                &[("user", "users")],
            ),
            test,
        ],
    }
}

fn read<T: Elem>(dir: &Path, file: &str, tag: &[u8; 4]) -> Vec<T> {
    MappedArray::<T>::open(&dir.join(file), *tag)
        .unwrap()
        .as_slice()
        .to_vec()
}

#[test]
fn preprocesses_a_small_database() {
    let tmp = TempDir::new("e2e");
    let plan = database(&tmp.0);
    let out = tmp.0.join("store");
    let s = preprocess(&plan, &out).unwrap();
    let c = &s.counts;
    assert_eq!(
        (
            c.nodes,
            c.tables,
            c.f2p_edges,
            c.p2f_edges,
            c.task_p2f_edges
        ),
        (9, 4, 5, 1, 4)
    );
    assert_eq!((c.columns, c.max_f2p), (5, 1));
    let dangling: Vec<u64> = s.tables.iter().map(|t| t.dangling_fkeys).collect();
    assert_eq!(dangling, [0, 1, 0, 0]);
    assert_eq!(s.skipped_columns.len(), 1);
    assert_eq!(
        (
            s.skipped_columns[0].name.as_str(),
            s.skipped_columns[0].reason.as_str()
        ),
        ("photo", "binary")
    );
    assert_eq!(s.files.len(), 23);

    assert_eq!(
        read::<u64>(&out, "table_nodes.bin", b"TNOD"),
        [0, 2, 5, 8, 9]
    );
    assert_eq!(read::<u8>(&out, "table_kind.bin", b"TKND"), [0, 0, 1, 1]);
    let none = i64::MIN;
    assert_eq!(
        read::<i64>(&out, "node_time.bin", b"NTIM"),
        [none, none, 5, none, 1, 3, 2, 2, 90]
    );
    assert_eq!(
        read::<u64>(&out, "f2p_offsets.bin", b"FOFF"),
        [0, 0, 0, 1, 1, 1, 2, 3, 4, 5]
    );
    assert_eq!(read::<u32>(&out, "f2p_nodes.bin", b"FNOD"), [1, 2, 2, 4, 3]);
    // orgs o2 ← users 10; users 10 ← task rows at 2 s (node 6) then 3 s (node 5).
    assert_eq!(read::<u32>(&out, "p2f_nodes.bin", b"PNOD"), [2]);
    assert_eq!(
        read::<u64>(&out, "task_p2f_offsets.bin", b"TPOF"),
        [0, 0, 0, 2, 3, 4, 4, 4, 4, 4]
    );
    assert_eq!(
        read::<u32>(&out, "task_p2f_nodes.bin", b"TPND"),
        [6, 5, 8, 7]
    );
    assert_eq!(
        read::<u32>(&out, "task_p2f_table.bin", b"TPTB"),
        [2, 2, 3, 2]
    );
    assert_eq!(
        read::<i64>(&out, "task_p2f_time.bin", b"TPTM"),
        [2, 3, 90, 2]
    );

    let vocab_offsets = read::<u64>(&out, "vocab_offsets.bin", b"VOFF");
    let bytes = read::<u8>(&out, "vocab_bytes.bin", b"VBYT");
    let words: Vec<&str> = vocab_offsets
        .windows(2)
        .map(|w| std::str::from_utf8(&bytes[w[0] as usize..w[1] as usize]).unwrap())
        .collect();
    // Table names, then column names, then text values.
    let expected = [
        "orgs",
        "users",
        "churn",
        "label of orgs",
        "age of users",
        "signup of users",
        "at of churn",
        "churn of churn",
        "big",
        "small",
    ];
    assert_eq!(words, expected);
    assert_eq!(read::<u32>(&out, "table_name.bin", b"TNAM"), [0, 1, 2, 2]);
    assert_eq!(
        read::<u32>(&out, "column_table.bin", b"KTAB"),
        [0, 1, 1, 2, 2]
    );
    // Training statistics: ages 20, 40 → mean 30; datetimes are users' 5 s and 1 s and
    // the train split's 3, 2, 2 s (the test split's 90 s is not training).
    let age = &s.columns[1];
    assert_eq!(
        (age.name.as_str(), age.sem_type, age.mean),
        ("age", "number", 30.0)
    );
    assert_eq!(s.datetime.mean, 2.6);
}

fn error_of(plan: &Plan, dir: &Path) -> String {
    preprocess(plan, &dir.join("store"))
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_table_column_or_file() {
    let tmp = TempDir::new("errors");
    let good = database(&tmp.0);

    let mut plan = good.clone();
    plan.tables[1].path = tmp.0.join("missing.parquet");
    let err = error_of(&plan, &tmp.0);
    assert!(
        err.contains("table \"users\": cannot read") && err.contains("missing.parquet"),
        "{err}"
    );

    let mut plan = good.clone();
    plan.tables[1].fkeys[0].1 = "teams".into();
    let err = error_of(&plan, &tmp.0);
    assert!(err.contains("refers to unknown table \"teams\""), "{err}");

    let mut plan = good.clone();
    plan.tables[1].fkeys[0].0 = "team_id".into();
    let err = error_of(&plan, &tmp.0);
    assert!(
        err.contains("foreign key column \"team_id\" is not in"),
        "{err}"
    );

    let mut plan = good.clone();
    plan.tables[2].pkey = Some("user".into());
    let err = error_of(&plan, &tmp.0);
    assert!(
        err.contains("table \"churn/train\": primary key \"user\": duplicate value 10"),
        "{err}"
    );

    let mut plan = good;
    plan.tables[1].pkey = Some("photo".into());
    let err = error_of(&plan, &tmp.0);
    assert!(
        err.contains("primary key \"photo\": unsupported key type Binary"),
        "{err}"
    );
}

#[test]
fn an_unwritable_store_is_a_write_error_and_a_bad_table_a_dataset_error() {
    let tmp = TempDir::new("write-error");
    let plan = database(&tmp.0);
    // A file where the store's folder should go: the folder cannot be created.
    let blocked = tmp.0.join("blocked");
    std::fs::write(&blocked, b"a file").unwrap();
    let err = preprocess(&plan, &blocked.join("store")).unwrap_err();
    assert!(
        matches!(&err, PreprocessError::Write { path, .. } if path.ends_with("store")),
        "{err}"
    );
    let mut bad = plan;
    bad.tables[1].path = tmp.0.join("missing.parquet");
    let err = preprocess(&bad, &tmp.0.join("store")).unwrap_err();
    assert!(matches!(err, PreprocessError::Dataset(_)), "{err}");
}
