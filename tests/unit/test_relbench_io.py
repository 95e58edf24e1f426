"""RelBench-3 dataset folders: round trip through relbench, tasks, atomic writes, provenance.

The `folder` fixture is written with write_tasks=True, so that RelBench's `load_task`
reads its tasks; tests/unit/test_derived_tasks.py covers the default (derived tasks)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import relbench
from relbench.base import TaskType
from relbench.base.task_base import label_sort_cols, sort_labels
from relbench.manifest import KIND_AUTOCOMPLETE, DatasetManifest, TableSpec, TaskManifest

from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.dataset import relbench_io
from plurel_ray.dataset.relbench_io import (
    content_hash,
    read_dataset_info,
    read_tables,
    write_dataset,
)
from plurel_ray.errors import DatasetError
from plurel_ray.synth.database import GENERATOR_VERSION, generate_database

SQL = """
CREATE TABLE customers (
    id INT PRIMARY KEY,
    status VARCHAR(10) CHECK (status IN ('gold', 'silver', 'bronze')),
    age INT
);
CREATE TABLE orders (customer_id INT REFERENCES customers(id), amount DOUBLE PRECISION);
"""


@pytest.fixture(scope="module")
def db(small_config):
    return generate_database(0, small_config)


@pytest.fixture(scope="module")
def folder(db, small_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "plurel-0"
    return write_dataset(db, out, small_config, write_tasks=True)


def _feature_columns(db) -> dict[str, str]:
    """Expected task name -> entity table."""
    out = {}
    for spec in db.schema.tables:
        keys = {spec.pkey, spec.time_col, *(c for c, _ in spec.fkeys)}
        for col in db.tables[spec.name].columns:
            if col not in keys:
                out[f"{spec.name}-{col}"] = spec.name
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _paths(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))}


def test_relbench_loads_manifest_keys_and_tables_as_generated(db, folder):
    ds = relbench.load_dataset(folder)
    assert ds.val_timestamp == db.timeline.val_timestamp
    assert ds.test_timestamp == db.timeline.test_timestamp
    assert list(ds.manifest.tables) == [s.name for s in db.schema.tables]
    for spec in db.schema.tables:
        table = ds.manifest.tables[spec.name]
        assert (table.pkey, table.time_col, table.fkeys) == (
            spec.pkey, spec.time_col, dict(spec.fkeys),
        )  # fmt: skip
    full = ds.get_db(upto_test_timestamp=False)
    for name, df in db.tables.items():
        pd.testing.assert_frame_equal(full.table_dict[name].df, df)
    assert any(s.time_col is not None for s in db.schema.tables)
    assert any(s.time_col is None for s in db.schema.tables)


def test_every_feature_column_is_a_task_with_disjoint_nonempty_splits(db, folder):
    ds = relbench.load_dataset(folder)
    expected = _feature_columns(db)
    assert ds.get_task_names() == sorted(expected)
    for name, table in expected.items():
        task = ds.load_task(name)
        target = db.tables[table][task.target_col]
        assert task.remove_columns == []
        if pd.api.types.is_bool_dtype(target):
            assert task.task_type == TaskType.BINARY_CLASSIFICATION
        else:
            assert task.task_type == TaskType.REGRESSION
            assert math.isfinite(task.nmae_std) and task.nmae_std >= 0
        splits = {s: task.get_table(s, mask_input_cols=False).df for s in ("train", "val", "test")}
        entities = {s: set(df[task.entity_col]) for s, df in splits.items()}
        for s, df in splits.items():
            assert len(df) > 0, (name, s)
            assert df[task.target_col].notna().all()
            pd.testing.assert_frame_equal(df, sort_labels(df.copy(), label_sort_cols(task)))
        assert not entities["train"] & entities["val"]
        assert not entities["val"] & entities["test"]
        assert not entities["train"] & entities["test"]
        # Together the splits hold exactly the rows whose target is present.
        union = set().union(*entities.values())
        assert union == set(np.flatnonzero(target.notna().to_numpy()))
        if task.time_col is not None:
            assert (splits["train"][task.time_col] <= ds.val_timestamp).all()
            assert (splits["val"][task.time_col] > ds.val_timestamp).all()
            assert (splits["val"][task.time_col] <= ds.test_timestamp).all()
            assert (splits["test"][task.time_col] > ds.test_timestamp).all()
        else:
            # Split by position: every train row precedes every val row precedes test.
            assert max(entities["train"]) < min(entities["val"])
            assert max(entities["val"]) < min(entities["test"])


def test_string_columns_are_multiclass_and_keyless_tables_use_row_positions(tmp_path):
    sql = tmp_path / "shop.sql"
    sql.write_text(SQL)
    config = Config.from_dict({
        "schema_file": str(sql),
        "database_params": {
            "num_rows_entity_table_choices": {"kind": "range", "value": [40, 60]},
            "num_rows_activity_table_choices": {"kind": "range", "value": [80, 120]},
        },
    })  # fmt: skip
    db = generate_database(1, config)
    folder = write_dataset(db, tmp_path / "shop", config, write_tasks=True)
    ds = relbench.load_dataset(folder)
    assert read_dataset_info(folder)["schema_source"] == str(sql)
    status = ds.load_task("customers-status")
    assert status.task_type == TaskType.MULTICLASS_CLASSIFICATION
    assert set(status.get_table("train").df["status"]) <= {"gold", "silver", "bronze"}
    amount = ds.load_task("orders-amount")
    assert amount.entity_col == "primary_key"
    test = amount.get_table("test", mask_input_cols=False).df
    orders = db.tables["orders"]
    assert len(test) > 0
    np.testing.assert_array_equal(
        test["amount"].to_numpy(), orders["amount"].to_numpy()[test["primary_key"].to_numpy()]
    )


def test_plurel_json_records_seed_config_versions_and_content_hash(db, folder, small_config):
    info = read_dataset_info(folder)
    assert info["seed"] == 0
    assert Config.from_dict(info["config"]) == small_config
    assert info["config_hash"] == small_config.content_hash()
    assert info["generator_version"] == GENERATOR_VERSION
    assert info["schema_source"] == "random"
    assert set(info["versions"]) >= {"plurel_ray", "numpy", "pyarrow", "relbench"}
    assert info["rows"] == {name: len(df) for name, df in db.tables.items()}
    assert info["num_cells"] == db.num_cells
    files = {p.stem: p.read_bytes() for p in (folder / "db").glob("*.parquet")}
    assert info["content_hash"] == content_hash(files)
    assert (folder / "README.md").read_text().startswith("# plurel-0")


def test_read_tables_returns_frames_in_manifest_order_and_detects_corruption(db, folder, tmp_path):
    tables = read_tables(folder, verify=True)
    assert list(tables) == list(db.tables)
    for name, df in db.tables.items():
        pd.testing.assert_frame_equal(tables[name], df)
    copy = tmp_path / "copy"
    for rel, data in _files(folder).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    first = next((copy / "db").glob("*.parquet"))
    first.write_bytes(first.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DatasetError, match="content_hash"):
        read_tables(copy, verify=True)


def test_read_dataset_info_names_a_folder_without_plurel_json(tmp_path):
    with pytest.raises(DatasetError, match=r"not a plurel-ray dataset folder \(no plurel.json\)"):
        read_dataset_info(tmp_path)


def test_same_seed_written_twice_gives_identical_bytes(small_config, tmp_path):
    a = write_dataset(generate_database(3, small_config), tmp_path / "a", small_config)
    b = write_dataset(generate_database(3, small_config), tmp_path / "b", small_config)
    assert _files(a) == _files(b)
    assert any(rel.startswith("db/") for rel in _files(a))


def test_existing_folder_is_refused_and_untouched_without_overwrite(db, small_config, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(DatasetError, match="--overwrite") as err:
        write_dataset(db, out, small_config)
    assert str(out) in str(err.value)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_writing_the_same_database_again_leaves_the_folder_as_it_is(db, small_config, tmp_path):
    out = write_dataset(db, tmp_path / "ds", small_config)
    before = {rel: p.stat().st_mtime_ns for rel, p in _paths(out).items()}
    again = generate_database(db.seed, small_config)  # as a rerun of a script would
    assert write_dataset(again, tmp_path / "ds", small_config) == out
    assert {rel: p.stat().st_mtime_ns for rel, p in _paths(out).items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_writing_another_database_over_a_folder_is_refused(db, small_config, tmp_path):
    out = write_dataset(db, tmp_path / "ds", small_config)
    with pytest.raises(DatasetError, match="already exists with another seed, content_hash"):
        write_dataset(generate_database(db.seed + 1, small_config), out, small_config, "plurel-0")
    with pytest.raises(DatasetError, match="already exists with another name; pass overwrite"):
        write_dataset(db, out, small_config, name="other")
    other = Config.from_dict({**small_config.to_dict(), "val_split": 0.5})
    with pytest.raises(DatasetError, match="already exists with another config_hash"):
        write_dataset(db, out, other)
    table = next((out / "db").glob("*.parquet"))
    table.write_bytes(table.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DatasetError, match="do not match the content_hash"):
        write_dataset(db, out, small_config)
    write_dataset(db, out, small_config, overwrite=True)
    assert write_dataset(db, out, small_config) == out


def test_overwrite_replaces_the_folder_and_leaves_no_siblings(db, small_config, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("old")
    write_dataset(db, out, small_config, overwrite=True)
    assert not (out / "mine.txt").exists()
    assert read_dataset_info(out)["seed"] == db.seed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_failure_mid_write_leaves_no_partial_folder(
    db, small_config, tmp_path, monkeypatch, overwrite
):
    out = tmp_path / "ds"
    if overwrite:
        out.mkdir()
        (out / "mine.txt").write_text("old")

    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # The README is written last, after the tables, tasks and plurel.json.
    monkeypatch.setattr(relbench_io, "_readme", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dataset(db, out, small_config, overwrite=overwrite)
    if overwrite:
        assert [p.name for p in out.iterdir()] == ["mine.txt"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    else:
        assert list(tmp_path.iterdir()) == []


# Up to four tables of two or three columns: entity tables without a time column, some
# with foreign keys, and an activity table with one, in well under a second per seed.
LOAD_CONFIG = Config(
    database_params=DatabaseParams(
        num_tables_choices=Choices("range", [3, 4]),
        num_rows_entity_table_choices=Choices("range", [40, 60]),
        num_rows_activity_table_choices=Choices("range", [80, 120]),
        num_cols_choices=Choices("range", [2, 3]),
    )
)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_every_task_loads_from_files_and_timed_tasks_regenerate_the_written_labels(seed, tmp_path):
    db = generate_database(seed, LOAD_CONFIG)
    specs = {s.name: s for s in db.schema.tables}
    assert any(s.time_col is None and s.fkeys for s in specs.values())
    ds = relbench.load_dataset(write_dataset(db, tmp_path / "ds", LOAD_CONFIG, write_tasks=True))
    for name in ds.get_task_names():
        hosted = ds.load_task(name)
        labels = {
            s: hosted.get_table(s, mask_input_cols=False).df for s in ("train", "val", "test")
        }
        assert all(len(df) > 0 for df in labels.values()), name
        if specs[hosted.entity_table].time_col is None:
            # See the next test: RelBench has no split rule for these, so the manifest
            # tells the reader where their splits come from.
            manifest = TaskManifest.load(ds.dataset_dir / "tasks" / name / "manifest.yaml")
            assert "split by position" in manifest.description
            assert "label files are authoritative" in manifest.description
            continue
        regenerated = ds.load_task(name, regenerate=True)
        for split, df in labels.items():
            pd.testing.assert_frame_equal(
                regenerated.get_table(split, mask_input_cols=False).df, df
            )


@pytest.mark.parametrize("task_type", ["regression", "binary_classification"])
def test_relbench_3_cannot_regenerate_autocomplete_labels_of_a_table_without_time_column(
    task_type, tmp_path
):
    """A minimal reproduction of the RelBench 3.0.2 limitation the previous test works
    around, with no plurel-ray code: `AutoCompleteTask.make_table` formats the entity
    table's time column into its SQL, so a table without one becomes `entity_table.None`.
    Regression tasks fail in `load_task` (it takes the train split's std), others in
    `get_table`. Loading the written labels works. When this test fails, RelBench has
    learnt to regenerate such tasks: check that it reproduces our positional splits."""
    items = pd.DataFrame({"id": np.arange(6), "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                          "flag": [True, False] * 3})  # fmt: skip
    events = pd.DataFrame({"item": [0, 5], "time": pd.to_datetime(["2020-01-01", "2020-03-01"])})
    (tmp_path / "db").mkdir()
    items.to_parquet(tmp_path / "db" / "items.parquet", index=False)
    events.to_parquet(tmp_path / "db" / "events.parquet", index=False)
    DatasetManifest(
        name="repro", val_timestamp="2020-01-15", test_timestamp="2020-02-15",
        tables={"items": TableSpec(pkey="id"),
                "events": TableSpec(time_col="time", fkeys={"item": "items"})},
    ).save(tmp_path / "manifest.yaml")  # fmt: skip
    target = "x" if task_type == "regression" else "flag"
    name = f"items-{target}"
    task_dir = tmp_path / "tasks" / name
    task = TaskManifest(name=name, kind=KIND_AUTOCOMPLETE, task_type=task_type,
                        entity_table="items", target_col=target)  # fmt: skip
    task.save(task_dir / "manifest.yaml")
    for split, rows in {"train": slice(0, 4), "val": slice(4, 5), "test": slice(5, 6)}.items():
        items[["id", target]][rows].reset_index(drop=True).to_parquet(
            task_dir / f"{split}.parquet", index=False
        )
    ds = relbench.load_dataset(tmp_path)
    written = ds.load_task(name).get_table("val", mask_input_cols=False).df
    pd.testing.assert_frame_equal(written, items[["id", target]][4:5].reset_index(drop=True))
    with pytest.raises(duckdb.BinderException, match='column named "None"'):
        ds.load_task(name, regenerate=True).get_table("train")
