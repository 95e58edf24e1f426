"""What is read is verified: a generated database against its content hash before it
becomes a store, and damaged plurel.json, task manifests, meta.json and resume.pt files
are one-line typed errors naming the file, never tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from plurel_ray.cli import main
from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.dataset.relbench_io import INFO_FILE, write_dataset
from plurel_ray.errors import CheckpointError, StoreError
from plurel_ray.pipeline.seed_worker import STATUS_FAILED, STATUS_SKIPPED, SeedWorker
from plurel_ray.store import preprocess
from plurel_ray.store.sampler import Sampler, Source, read_meta
from plurel_ray.synth.database import generate_database
from plurel_ray.train.resume import RESUME_FILE, check_resume_state, load_resume_state

CONFIG = Config(
    database_params=DatabaseParams(
        num_tables_choices=Choices("range", [3, 3]),
        num_rows_entity_table_choices=Choices("range", [20, 30]),
        num_rows_activity_table_choices=Choices("range", [40, 60]),
        num_cols_choices=Choices("range", [3, 4]),
    )
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    return write_dataset(generate_database(0, CONFIG), root / "plurel-0", CONFIG)


@pytest.fixture
def folder(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "plurel-0"))


def _preprocess_error(folder: Path, out: Path, capsys) -> str:
    """Run `plurel-ray preprocess` on `folder`; assert exit 1 and one error line."""
    assert main(["preprocess", str(folder), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("plurel-ray: error:"), err
    assert not out.exists() or not any(out.iterdir()), "a store was written"
    return lines[0]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.33, 0.5, 0.71, 0.9, 0.999])
def test_a_flipped_byte_in_a_table_fails_preprocessing_naming_the_folder(
    folder, tmp_path, capsys, fraction
):
    table = sorted((folder / "db").glob("*.parquet"))[1]
    _flip(table, int(fraction * table.stat().st_size))
    line = _preprocess_error(folder, tmp_path / "stores", capsys)
    assert str(folder) in line and "content_hash" in line


def test_a_folder_without_plurel_json_is_read_as_is(folder, tmp_path):
    (folder / INFO_FILE).unlink()  # as a real RelBench folder: nothing to verify against
    store = preprocess(folder, tmp_path / "stores")
    assert read_meta(store)["counts"]["nodes"] > 0


def test_bad_utf8_in_plurel_json_is_one_line(folder, tmp_path, capsys):
    (folder / INFO_FILE).write_bytes(b'{"seed": "\xff\xfe"}')
    line = _preprocess_error(folder, tmp_path / "stores", capsys)
    assert str(folder / INFO_FILE) in line


def test_a_truncated_task_manifest_is_one_line(tmp_path, capsys):
    folder = write_dataset(generate_database(0, CONFIG), tmp_path / "plurel-0", CONFIG,
                           write_tasks=True)  # fmt: skip
    manifest = sorted((folder / "tasks").glob("*/manifest.yaml"))[0]
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:3]))  # name, kind, task_type: no entity table
    line = _preprocess_error(folder, tmp_path / "stores", capsys)
    assert str(manifest) in line


def test_a_truncated_task_list_in_plurel_json_is_one_line(folder, tmp_path, capsys):
    info = json.loads((folder / INFO_FILE).read_text())
    del info["autocomplete_tasks"][0]["table"]  # derived tasks need their entity table
    (folder / INFO_FILE).write_text(json.dumps(info))
    line = _preprocess_error(folder, tmp_path / "stores", capsys)
    assert f"{folder / INFO_FILE}: autocomplete_tasks[0]" in line


def test_a_damaged_database_is_a_failed_seed_and_leaves_no_temporary(generated, tmp_path):
    out = tmp_path / "out"
    worker = SeedWorker(CONFIG, str(out), preprocess=True)
    assert worker.run(0)["status"] != STATUS_FAILED
    shutil.rmtree(out / "stores")  # the rerun must build the store from the damaged folder
    _flip(sorted((out / "plurel-0" / "db").glob("*.parquet"))[0], 200)
    row = worker.run(0)
    assert row["status"] == STATUS_FAILED and "content_hash" in row["error"], row
    assert not list(out.rglob(".tmp-*")), list(out.rglob(".tmp-*"))
    assert worker.run(1)["status"] != STATUS_FAILED  # other seeds go on
    assert worker.run(1)["status"] == STATUS_SKIPPED


@pytest.mark.parametrize("content", [b'{"seed": "\xff\xfe"}', b"[1, 2]", b'{"seed": 0'])
def test_an_unreadable_plurel_json_marks_the_database_incomplete(tmp_path, content):
    out = tmp_path / "out"
    worker = SeedWorker(CONFIG, str(out))
    assert worker.run(0)["status"] != STATUS_FAILED
    (out / "plurel-0" / INFO_FILE).write_bytes(content)
    row = worker.run(0)  # written again, as a folder a killed run left without plurel.json
    assert row["status"] not in (STATUS_FAILED, STATUS_SKIPPED), row
    assert json.loads((out / "plurel-0" / INFO_FILE).read_text())["seed"] == 0


@pytest.fixture
def store(folder, tmp_path) -> Path:
    return preprocess(folder, tmp_path / "stores")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.update(tables="users"), ["tables is 'users', expected a list"]),
        (lambda m: m["tables"][0].update(name=3), ["tables[0].name is 3, expected a string"]),
        (lambda m: m["columns"][1].pop("id"), ["columns[1].id is missing"]),
        (lambda m: m["tasks"][0].update(tables=["train"]), ["tasks[0].tables", "an object"]),
        (lambda m: m["tasks"][0].update(remove_columns=[["a"]]), ["tasks[0].remove_columns[0]"]),
        (lambda m: m["counts"].update(nodes="12"), ["counts.nodes is '12'"]),
        (lambda m: m["tables"][0].update(fkeys=[[1, 2]]), ["tables[0].fkeys[0]"]),
    ],
)
def test_wrong_types_in_meta_json_are_one_store_error(store, edit, words):
    path = store / "meta.json"
    meta = json.loads(path.read_text())
    task = meta["tasks"][0]["name"]
    edit(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(StoreError) as caught:
        Sampler([Source(store=store, task=task)], batch_size=2)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not a dict"])
def test_a_corrupt_resume_file_is_a_checkpoint_error_naming_it(tmp_path, damage):
    path = tmp_path / RESUME_FILE
    if damage == "garbage":
        path.write_bytes(b"\x80\x04not a pickle at all")
    elif damage == "truncated":
        torch.save({"step": 3, "optimizer": {}, "scheduler": {}}, path)
        path.write_bytes(path.read_bytes()[:40])
    else:
        torch.save([1, 2, 3], path)
    for load in (load_resume_state, check_resume_state):  # the worker's and the driver's
        with pytest.raises(CheckpointError) as caught:
            load(tmp_path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
