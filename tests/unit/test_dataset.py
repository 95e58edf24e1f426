"""SyntheticDataset: the original PluRel API as a RelBench Dataset, and its on-disk cache."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import relbench
from relbench.base import Database

import plurel_ray
from plurel_ray.config import Config
from plurel_ray.dataset import synthetic as dataset_module
from plurel_ray.dataset.relbench_io import read_dataset_info, write_dataset
from plurel_ray.dataset.synthetic import SyntheticDataset
from plurel_ray.errors import ConfigError
from plurel_ray.synth.database import GENERATOR_VERSION, generate_database


def _cached(config: Config, tmp_path) -> Config:
    return dataclasses.replace(config, cache_dir=str(tmp_path / "cache"))


def test_package_exports_the_public_api():
    assert set(plurel_ray.__all__) == {
        "SyntheticDataset", "Config", "DatabaseParams", "SCMParams", "DAGParams", "Choices",
        "generate_database", "write_dataset", "ConfigError", "SchemaError", "__version__",
        "from_pretrained", "open_database",
    }  # fmt: skip
    assert plurel_ray.SyntheticDataset is SyntheticDataset
    assert callable(plurel_ray.from_pretrained) and callable(plurel_ray.open_database)
    assert plurel_ray.write_dataset is write_dataset
    assert isinstance(plurel_ray.__version__, str)


def test_timestamps_are_known_without_generating_and_match_the_timeline(small_config):
    ds = SyntheticDataset(seed=0, config=small_config)
    assert ds._generated is None
    timeline = generate_database(0, small_config).timeline
    assert (ds.val_timestamp, ds.test_timestamp) == (
        timeline.val_timestamp,
        timeline.test_timestamp,
    )
    assert ds.val_timestamp < ds.test_timestamp
    assert SyntheticDataset(0).config == Config()


def test_make_db_returns_a_relbench_database_of_the_generated_tables(small_config):
    ds = SyntheticDataset(seed=0, config=small_config)
    db = ds.make_db()
    generated = generate_database(0, small_config)
    assert isinstance(db, Database)
    assert list(db.table_dict) == [s.name for s in generated.schema.tables]
    for spec in generated.schema.tables:
        table = db.table_dict[spec.name]
        assert (table.pkey_col, table.time_col) == (spec.pkey, spec.time_col)
        assert table.fkey_col_to_pkey_table == dict(spec.fkeys)
        pd.testing.assert_frame_equal(table.df, generated.tables[spec.name])


def test_make_db_gives_fresh_frames_from_one_generation(small_config):
    ds = SyntheticDataset(seed=0, config=small_config)
    first = ds.make_db()
    name = next(iter(first.table_dict))
    first.table_dict[name].df.iloc[0, 0] = -1
    assert ds.make_db().table_dict[name].df.iloc[0, 0] == 0
    assert ds.generate() is ds.generate()


def test_get_db_cuts_time_tables_at_the_test_timestamp(small_config):
    ds = SyntheticDataset(seed=0, config=small_config)
    full, cut = ds.get_db(upto_test_timestamp=False), ds.get_db()
    for name, table in cut.table_dict.items():
        if table.time_col is None:
            assert len(table) == len(full.table_dict[name])
        else:
            assert (table.df[table.time_col] <= ds.test_timestamp).all()
            assert len(table) < len(full.table_dict[name])


def test_bad_seed_is_a_config_error():
    with pytest.raises(ConfigError, match="seed"):
        SyntheticDataset(seed=-1)


def test_write_makes_a_relbench_folder(small_config, tmp_path):
    path = SyntheticDataset(seed=2, config=small_config).write(tmp_path / "ds")
    assert relbench.load_dataset(path).get_db()
    assert read_dataset_info(path)["seed"] == 2
    assert read_dataset_info(path)["autocomplete_tasks"] and not (path / "tasks").exists()
    tasks = SyntheticDataset(seed=2, config=small_config).write(tmp_path / "t", write_tasks=True)
    assert relbench.load_dataset(tasks).get_task_names()


def test_cache_is_written_once_and_read_by_a_new_instance(small_config, tmp_path, monkeypatch):
    config = _cached(small_config, tmp_path)
    first = SyntheticDataset(seed=0, config=config)
    folder = first.cache_path
    assert folder.parent.name == f"{config.content_hash()[:12]}-g{GENERATOR_VERSION}"
    assert folder.name == "seed-0"
    expected = first.make_db()
    assert read_dataset_info(folder)["config_hash"] == config.content_hash()

    def no_generation(*args, **kwargs):
        raise AssertionError("generated although the database is cached")

    monkeypatch.setattr(dataset_module, "generate_database", no_generation)
    second = SyntheticDataset(seed=0, config=config)
    db = second.make_db()
    for name, table in expected.table_dict.items():
        pd.testing.assert_frame_equal(db.table_dict[name].df, table.df)
    assert second.generate().timeline == first.generate().timeline
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seed-0"]


def test_cache_key_changes_with_config_seed_and_schema_file(small_config, tmp_path):
    config = _cached(small_config, tmp_path)
    other = dataclasses.replace(config, val_split=0.7)
    assert (
        SyntheticDataset(0, other).cache_path.parent
        != SyntheticDataset(0, config).cache_path.parent
    )
    assert SyntheticDataset(1, config).cache_path != SyntheticDataset(0, config).cache_path
    sql = tmp_path / "schema.sql"
    sql.write_text("CREATE TABLE a (id INT PRIMARY KEY, x INT);")
    with_sql = dataclasses.replace(config, schema_file=str(sql))
    before = SyntheticDataset(0, with_sql).cache_path
    sql.write_text("CREATE TABLE a (id INT PRIMARY KEY, x INT, y INT);")
    assert SyntheticDataset(0, with_sql).cache_path != before


def test_cache_written_by_a_racing_writer_is_kept(small_config, tmp_path, monkeypatch):
    config = _cached(small_config, tmp_path)
    folder = SyntheticDataset(seed=0, config=config).cache_path

    def generate_while_another_process_caches(seed, cfg):
        db = generate_database(seed, cfg)
        write_dataset(db, folder, cfg)
        (folder / "winner").write_text("")
        return db

    monkeypatch.setattr(dataset_module, "generate_database", generate_while_another_process_caches)
    db = SyntheticDataset(seed=0, config=config).make_db()
    assert (folder / "winner").exists()
    assert len(db.table_dict) == 3
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seed-0"]
