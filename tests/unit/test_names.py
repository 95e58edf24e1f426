"""Names are data, not paths: hostile table, column, task and dataset names are refused
where they enter (SQL schemas, dataset folders) and at the writers, and nothing is
written outside the output."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import DatasetError, SchemaError, StoreError
from plurel_ray.names import MAX_NAME_BYTES, check_name, name_problem, path_inside
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.synth.database import generate_database
from plurel_ray.synth.random_schema import sample_schema
from plurel_ray.synth.sql_schema import parse_sql_schema

UP = "../../../../outside"
ESCAPE = f'CREATE TABLE "{UP}/anywhere" (id INT PRIMARY KEY, "{UP}/c" INT);'  # the issue's


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def one_line_error(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plurel-ray: error:"), err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]


@pytest.mark.parametrize(
    "name",
    ["users", "order_items", "rel-amazon", "v1.2", "Order Items", "Größe", "顧客", "x" * 100],
)
def test_ordinary_names_pass(name):
    assert name_problem(name) is None
    assert check_name("table", name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"), (".", "starts with '.'"), ("..", "starts with '.'"),
        (".hidden", "starts with '.'"), ("a/b", "'/'"), ("../x", "'/'"), ("a\\b", "'\\\\'"),
        ("a\x00b", "'\\x00'"), ("a\nb", "'\\n'"), ("a\tb", "'\\t'"), ("a:b", "':'"),
        ("a*b", "'*'"), (" a", "space"), ("a ", "space"), ("é" * 51, "102 bytes"),
        ("x" * (MAX_NAME_BYTES + 1), "101 bytes"), (3, "not a string"),
    ],
)  # fmt: skip
def test_unsafe_names_are_refused_with_the_reason(name, problem):
    assert problem in name_problem(name)
    with pytest.raises(DatasetError, match=r"shop\.sql: table .* rename it: names may use"):
        check_name("table", name, DatasetError, "shop.sql: ")


def test_random_schema_names_satisfy_the_rule(small_config):
    import numpy as np

    schema = sample_schema(small_config, np.random.default_rng(0))
    for table in schema.tables:
        assert name_problem(table.name) is None
        for column in [c.name for c in table.features] + [fk for fk, _ in table.fkeys]:
            assert name_problem(f"{table.name}-{column}") is None


def test_path_inside_refuses_paths_that_leave_the_root(tmp_path):
    root = tmp_path / "root"
    assert path_inside(root, "db", "t.parquet") == root / "db" / "t.parquet"
    for parts in [("..", "x"), ("db", "../../x"), ("/etc/passwd",), (".",)]:
        with pytest.raises(DatasetError, match="outside"):
            path_inside(root, *parts)
    (root / "db").mkdir(parents=True)
    (root / "db" / "link").symlink_to(tmp_path)  # a link out of the tree counts as outside
    with pytest.raises(StoreError, match="outside"):
        path_inside(root, "db", "link", "x", error=StoreError)


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        (ESCAPE, ["table '../../../../outside/anywhere'", "'/'"]),
        ('CREATE TABLE t (id INT PRIMARY KEY, "../c" INT);', ["table 't'", "column '../c'"]),
        ('CREATE TABLE ".." (id INT PRIMARY KEY);', ["table '..'", "starts with '.'"]),
        ('CREATE TABLE "a\\b" (id INT PRIMARY KEY);', ["table 'a\\\\b'", "'\\\\'"]),
    ],
)
def test_sql_schema_refuses_names_that_are_paths(sql, words):
    with pytest.raises(SchemaError) as info:
        parse_sql_schema(sql, source="e.sql")
    message = str(info.value)
    assert message.startswith("e.sql: ") and "rename it" in message
    for word in words:
        assert word in message


def test_cli_refuses_an_escaping_schema_in_one_line_and_writes_nothing(tmp_path, capsys):
    # The reproduction: before the fix this wrote <tmp>/a/outside/anywhere.parquet
    # and <tmp>/outside/c/*.parquet and exited 0.
    schema = tmp_path / "e.sql"
    schema.write_text(ESCAPE)
    code = main(["generate", "--schema", str(schema), "--out", str(tmp_path / "a" / "b" / "out")])
    assert code == 1
    one_line_error(capsys.readouterr().err, "e.sql", "outside/anywhere", "rename it")
    assert files_under(tmp_path) - {Path("a"), Path("a/b"), Path("a/b/out")} == {Path("e.sql")}


def test_writer_refuses_escaping_names_of_a_programmatic_schema(small_config, tmp_path):
    # Defence in depth: a schema built in code skips the parser's check.
    db = generate_database(0, small_config)
    first = db.schema.tables[0]
    evil = "../../../evil"
    schema = dataclasses.replace(
        db.schema, tables=(dataclasses.replace(first, name=evil), *db.schema.tables[1:])
    )
    tables = {evil if k == first.name else k: v for k, v in db.tables.items()}
    hostile = dataclasses.replace(db, schema=schema, tables=tables)
    out = tmp_path / "x" / "y" / "plurel-0"
    with pytest.raises(DatasetError, match=re.escape("table '../../../evil'")):
        write_dataset(hostile, out, small_config)
    assert files_under(tmp_path) == {Path("x"), Path("x/y")}


@pytest.fixture(scope="module")
def dataset(small_config, tmp_path_factory) -> Path:
    return write_dataset(generate_database(1, small_config),
                         tmp_path_factory.mktemp("ds") / "plurel-1", small_config)  # fmt: skip


def _edited_copy(dataset: Path, tmp_path: Path, manifest: str, edit) -> Path:
    import shutil

    copy = shutil.copytree(dataset, tmp_path / "data" / "copy")
    path = copy / manifest
    content = yaml.safe_load(path.read_text())
    edit(content)
    path.write_text(yaml.safe_dump(content))
    return copy


def _rename_first_table(content: dict) -> None:
    first = next(iter(content["tables"]))
    content["tables"] = {"../../../../escaped": content["tables"][first]}


@pytest.mark.parametrize(
    ("manifest", "edit", "words"),
    [
        ("manifest.yaml", _rename_first_table, ["manifest.yaml", "table '../../../../escaped'"]),
        ("manifest.yaml", lambda c: c.update(name="../../escaped"), ["store name"]),
    ],
    ids=["table", "dataset-name"],
)
def test_preprocess_refuses_dataset_folders_with_path_names(
    dataset, tmp_path, manifest, edit, words
):
    copy = _edited_copy(dataset, tmp_path, manifest, edit)
    before = files_under(tmp_path)
    with pytest.raises(DatasetError) as info:
        preprocess(copy, tmp_path / "stores" / "here")
    for word in words:
        assert word in str(info.value)
    assert files_under(tmp_path) == before


def test_preprocess_refuses_a_task_named_like_a_path(dataset, tmp_path, small_config):
    written = write_dataset(generate_database(1, small_config), tmp_path / "written",
                            small_config, write_tasks=True)  # fmt: skip
    task = next(p.parent.name for p in (written / "tasks").glob("*/manifest.yaml"))
    copy = _edited_copy(written, tmp_path, f"tasks/{task}/manifest.yaml",
                        lambda c: c.update(name="../x"))  # fmt: skip
    with pytest.raises(DatasetError, match=r"task '\.\./x' contains '/'"):
        preprocess(copy, tmp_path / "stores")
    assert not (tmp_path / "stores").exists()


def test_preprocess_refuses_a_derived_task_named_like_a_path(dataset, tmp_path):
    copy = _edited_copy(dataset, tmp_path, "manifest.yaml", lambda c: None)
    info = json.loads((copy / "plurel.json").read_text())
    info["autocomplete_tasks"][0]["name"] = "../x"
    (copy / "plurel.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"autocomplete_tasks\[0\]: task '\.\./x' contains '/'"):
        preprocess(copy, tmp_path / "stores")
    assert not (tmp_path / "stores").exists()
