"""Our manifest.yaml readers (plurel_ray/dataset/manifests.py) against relbench's own: the
same fields from every manifest the tests write, the same manifests refused (as one-line
DatasetErrors naming the file), and a remove_columns the store cannot use refused too."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from byod_database import SHOP_TASKS, STAMPS, write_shop_sqlite
from realdata import write_realdata_folder
from realshaped import write_all
from relbench.manifest import DatasetManifest, TaskManifest

from plurel_ray.dataset.manifests import read_dataset_manifest, read_task_manifest
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.dataset.sql_import import import_database
from plurel_ray.dataset.task_writer import add_tasks
from plurel_ray.errors import DatasetError
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.synth.database import generate_database


@pytest.fixture(scope="module")
def dataset_folders(small_config, tmp_path_factory) -> list[Path]:
    """Every kind of dataset folder the tests build: RelBench-shaped test data, generated
    databases with task folders, and an imported (BYOD) database with added tasks."""
    root = tmp_path_factory.mktemp("folders")
    folders = [write_realdata_folder(root / "realdata"), *write_all(root / "realshaped").values()]
    for seed in (0, 1):
        db = generate_database(seed, small_config)
        folders.append(write_dataset(db, root / f"plurel-{seed}", small_config, write_tasks=True))
    shop = root / "shop"
    import_database(write_shop_sqlite(root / "shop.sqlite"), shop, **STAMPS)
    (root / "tasks.yaml").write_text(yaml.safe_dump(SHOP_TASKS))
    add_tasks(shop, root / "tasks.yaml")
    return [*folders, shop]


def test_every_manifest_the_tests_write_reads_as_relbench_reads_it(dataset_folders):
    task_kinds = set()
    for folder in dataset_folders:
        ours, data = read_dataset_manifest(folder / "manifest.yaml")
        theirs = DatasetManifest.load(folder / "manifest.yaml")
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs), folder
        assert data == (folder / "manifest.yaml").read_bytes()
        tasks = sorted((folder / "tasks").glob("*/manifest.yaml"))
        assert tasks, f"{folder} has no task folders to compare"
        for path in tasks:
            ours, theirs = read_task_manifest(path), TaskManifest.load(path)
            assert dataclasses.asdict(ours) == dataclasses.asdict(theirs), path
            task_kinds.add((ours.kind, bool(ours.remove_columns)))
    # Forecast and autocomplete tasks, with and without columns removed, were compared.
    assert {("forecast", True), ("autocomplete", True), ("autocomplete", False)} <= task_kinds


# Fields relbench's loader fills with defaults, keys it ignores, and values it keeps as the
# YAML gives them (an unquoted date, fkeys as a list of pairs, explicit nulls).
DATASET_ODDITIES = """
name: odd
val_timestamp: 2020-01-01
test_timestamp: 2020-06-01 12:00:00
tables:
  users: {}
  orders: {pkey: null, fkeys: [[user_id, users]]}
unknown_key: ignored
"""
TASK_ODDITIES = """
name: t
kind: autocomplete
task_type: regression
entity_table: users
metrics: [mae]
num_eval_timestamps: 3
eval_k: 10
"""


def test_defaults_and_oddities_read_as_relbench_reads_them(tmp_path):
    (tmp_path / "dataset.yaml").write_text(DATASET_ODDITIES)
    (tmp_path / "task.yaml").write_text(TASK_ODDITIES)
    ours, _ = read_dataset_manifest(tmp_path / "dataset.yaml")
    theirs = DatasetManifest.load(tmp_path / "dataset.yaml")
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert ours.tables["orders"].fkeys == {"user_id": "users"}
    task = tmp_path / "task.yaml"
    ours, theirs = read_task_manifest(task), TaskManifest.load(task)
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("dataset", "val_timestamp: 2020-01-01\ntest_timestamp: 2020-06-01\n"),  # no name
        ("dataset", "name: d\nval_timestamp: 2020-01-01\n"),  # no test_timestamp
        ("dataset", "name: d\nval_timestamp: 1\ntest_timestamp: 2\ntables: null\n"),
        ("dataset", "name: d\nval_timestamp: 1\ntest_timestamp: 2\ntables: [users]\n"),
        ("dataset", "name: d\nval_timestamp: 1\ntest_timestamp: 2\ntables: {users: [id]}\n"),
        ("dataset", "name: d\nval_timestamp: 1\ntest_timestamp: 2\ntables: {u: {fkeys: x}}\n"),
        ("dataset", "name: d\nval_timestamp: 1\ntest_timestamp: 2\ntables: {u: {fkeys: 3}}\n"),
        ("task", "name: t\ntask_type: regression\n"),  # no kind
        ("task", "kind: autocomplete\ntask_type: regression\n"),  # no name
    ],
)
def test_what_relbench_refuses_is_a_one_line_dataset_error_naming_the_file(tmp_path, kind, text):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    relbench_load, ours = {
        "dataset": (DatasetManifest.load, read_dataset_manifest),
        "task": (TaskManifest.load, read_task_manifest),
    }[kind]
    with pytest.raises((KeyError, TypeError, AttributeError, ValueError)):
        relbench_load(path)
    with pytest.raises(DatasetError) as err:
        ours(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["null", "users", "[users]", "[[users, a, b]]", "[[users, 1]]"])
def test_a_task_whose_remove_columns_are_not_pairs_is_refused_naming_the_file(
    dataset_folders, tmp_path, value
):
    # relbench loads these and its task API fails later; preprocess failed with a TypeError.
    folder = next(f for f in dataset_folders if f.name == "plurel-0")
    copy = shutil.copytree(folder, tmp_path / "copy")
    path = sorted((copy / "tasks").glob("*/manifest.yaml"))[0]
    path.write_text(path.read_text() + f"remove_columns: {value}\n")
    with pytest.raises(DatasetError, match="remove_columns is not a list of") as err:
        preprocess(copy, tmp_path / "stores")
    assert str(path) in str(err.value)
    assert not (tmp_path / "stores").exists() or not list((tmp_path / "stores").iterdir())
