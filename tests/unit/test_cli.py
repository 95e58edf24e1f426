"""The `plurel-ray` command, run for real: in-process via `main` and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import relbench

from plurel_ray import __version__
from plurel_ray.cli import main
from plurel_ray.config import Choices, Config, DatabaseParams

SQL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, age INTEGER, tier TEXT);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(id),
    amount REAL,
    created_at TIMESTAMP
);
"""


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config file for 3 tables of at most 100 rows and 3-5 columns."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    Config(
        database_params=DatabaseParams(
            num_tables_choices=Choices("range", [3, 3]),
            num_rows_entity_table_choices=Choices("range", [30, 50]),
            num_rows_activity_table_choices=Choices("range", [60, 100]),
            num_cols_choices=Choices("range", [3, 5]),
        )
    ).save(path)
    return path


def _run(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plurel_ray.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("plurel-ray: error:"), err
    for word in words:
        assert word in lines[0], (word, err)


def test_generate_writes_one_loadable_folder_per_seed(tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["generate", "--seed-offset", "3", "--num-dbs", "2", "--config", str(tiny_config),
                 "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "_generation.json", "_index.parquet", "plurel-3", "plurel-4"
    ]  # fmt: skip
    for seed in (3, 4):
        db = relbench.load_dataset(out / f"plurel-{seed}").get_db(upto_test_timestamp=False)
        assert len(db.table_dict) == 3
    index = pq.read_table(out / "_index.parquet").sort_by("seed").to_pylist()
    assert [(r["db_name"], r["status"], r["tables"]) for r in index] == [
        ("plurel-3", "generated", 3), ("plurel-4", "generated", 3)
    ]  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("databases: 2 (2 generated, 0 already complete, 0 failed)")
    assert "cells/s" in lines[1]
    assert str(out) in lines[2]


def test_console_entry_point_runs_as_subprocess(tiny_config, tmp_path):
    schema = tmp_path / "shop.sql"
    schema.write_text(SQL)
    out = tmp_path / "out"
    proc = _run("generate", "--seed-offset", 0, "--config", tiny_config, "--schema", schema,
                "--out", out, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("databases: 1 (1 generated")
    db = relbench.load_dataset(out / "plurel-0").get_db(upto_test_timestamp=False)
    assert set(db.table_dict) == {"customers", "orders"}
    assert db.table_dict["orders"].fkey_col_to_pkey_table == {"customer_id": "customers"}


def test_version_flag_prints_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"plurel-ray {__version__}"


def test_rerun_skips_complete_databases_and_redoes_partial_ones(tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["generate", "--seed-offset", "0", "--num-dbs", "2", "--config", str(tiny_config),
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    first = (out / "plurel-0" / "db").iterdir()
    before = {p.name: p.read_bytes() for p in first}
    # A folder without plurel.json and without an index row is what a write killed
    # half-way leaves on object stores.
    (out / "plurel-2" / "db").mkdir(parents=True)
    (out / "plurel-2" / "db" / "table_0.parquet").write_bytes(b"cut short")
    capsys.readouterr()

    assert main([*args[:4], "3", *args[5:]]) == 0
    assert capsys.readouterr().out.startswith("databases: 3 (1 generated, 2 already complete")
    assert {p.name: p.read_bytes() for p in (out / "plurel-0" / "db").iterdir()} == before
    relbench.load_dataset(out / "plurel-2")
    # the index decides what is done: the first run's rows stay as they were
    statuses = pq.read_table(out / "_index.parquet").sort_by("seed").column("status")
    assert statuses.to_pylist() == ["generated", "generated", "generated"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed-offset", "-1"], ["--seed-offset", ">= 0", "-1"]),
        (["--seed-offset", "x"], ["--seed-offset", "'x'"]),
        (["--seed-offset", "0", "--num-dbs", "0"], ["--num-dbs", ">= 1"]),
    ],
    ids=["negative-seed", "non-integer-seed", "zero-num-dbs"],
)
def test_bad_arguments_fail_in_one_line(tmp_path, capsys, args, words):
    code = main(["generate", *args, "--out", str(tmp_path / "out")])
    assert code == 2
    _assert_one_line_error(code, capsys.readouterr().err, *words)
    assert not (tmp_path / "out").exists()


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Case name -> (extra CLI arguments, words the error line must contain)."""
    (tmp / "malformed.yaml").write_text("database_params: [1, 2\n")
    Config().save(tmp / "valid.yaml")
    text = (tmp / "valid.yaml").read_text().replace("val_split: 0.8", "val_split: 2")
    (tmp / "invalid.yaml").write_text(text)
    (tmp / "bad.sql").write_text(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));"
    )
    return {
        "missing-config": (["--config", str(tmp / "nope.yaml")], ["nope.yaml", "not found"]),
        "malformed-yaml": (["--config", str(tmp / "malformed.yaml")], ["malformed YAML"]),
        "invalid-value": (["--config", str(tmp / "invalid.yaml")], ["val_split", "2"]),
        "missing-schema": (["--schema", str(tmp / "nope.sql")], ["nope.sql"]),
        "invalid-schema": (["--schema", str(tmp / "bad.sql")], ["bad.sql", "'b'"]),
    }


@pytest.mark.parametrize(
    "case", ["missing-config", "malformed-yaml", "invalid-value", "missing-schema",
             "invalid-schema"],
)  # fmt: skip
def test_user_errors_fail_in_one_line_before_generating(tmp_path, capsys, case):
    extra, words = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code = main(["generate", "--seed-offset", "0", *extra, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    _assert_one_line_error(code, captured.err, *words)
    assert captured.out == ""
    assert not out.exists()


def test_user_error_in_subprocess_has_no_traceback(tmp_path):
    proc = _run("generate", "--config", tmp_path / "nope.yaml", "--out", tmp_path)
    assert proc.returncode == 1
    _assert_one_line_error(proc.returncode, proc.stderr, "nope.yaml", "not found")


def test_bad_argument_in_subprocess_exits_2(tmp_path):
    proc = _run("generate", "--seed-offset", "-5", "--out", tmp_path)
    assert proc.returncode == 2
    _assert_one_line_error(proc.returncode, proc.stderr, "--seed-offset")


def test_interrupt_exits_130_in_one_line(tiny_config, tmp_path, capsys, monkeypatch):
    import plurel_ray.pipeline.seed_worker as seed_worker

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seed_worker, "generate_database", interrupted)
    code = main(["generate", "--seed-offset", "0", "--config", str(tiny_config),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 130
    _assert_one_line_error(code, capsys.readouterr().err, "interrupted")
    # no half-written folder, no index: only the record of the run's settings
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["_generation.json"]
