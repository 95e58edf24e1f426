"""The per-seed worker and its output root without Ray: local folders, and the object-store
code path (uploads, marker last) on a real non-local pyarrow filesystem."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import relbench
from fsspec.implementations.local import LocalFileSystem as FsspecLocal

from plurel_ray.dataset.relbench_io import read_tables
from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.index import read_index
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.seed_worker import SeedWorker, StoreEmbedder
from plurel_ray.store.sampler import read_meta


def object_store_root(path) -> OutputRoot:
    """A root whose filesystem is not pyarrow's LocalFileSystem: no atomic rename, so the
    worker takes the path it takes on s3:// and gs://."""
    root = OutputRoot(str(path), filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(FsspecLocal())))
    assert not root.is_local
    return root


@pytest.fixture(params=["local", "object-store"])
def root(request, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return OutputRoot(str(out)) if request.param == "local" else object_store_root(out)


def test_worker_publishes_database_and_store_and_skips_them_on_rerun(root, small_config):
    worker = SeedWorker(small_config, root, preprocess=True)
    row = worker.run(11)
    assert row["status"] == "generated" and row["error"] is None, row
    folder = root.join("plurel-11")
    read_tables(folder, verify=True)
    relbench.load_dataset(folder)
    store = read_meta(Path(root.join("stores", "plurel-11")))
    assert store["source"]["seed"] == 11
    assert row["store"] == root.join("stores", "plurel-11")

    again = worker.run(11)
    assert again["status"] == "skipped"
    assert (again["tables"], again["rows"], again["cells"]) == (
        row["tables"], row["rows"], row["cells"]
    )  # fmt: skip


def test_embedder_adds_embeddings_to_a_published_store(root, small_config):
    SeedWorker(small_config, root, preprocess=True).run(12)
    StoreEmbedder(root).embed("plurel-12")
    meta = read_meta(Path(root.join("stores", "plurel-12")))
    assert meta["embedding"]["dim"] == 384


def test_a_folder_without_its_marker_is_redone(tmp_path, small_config):
    root = object_store_root(tmp_path)
    worker = SeedWorker(small_config, root)
    worker.run(13)
    info = json.loads((tmp_path / "plurel-13" / "plurel.json").read_text())
    (tmp_path / "plurel-13" / "plurel.json").unlink()  # an upload cut before its marker
    (tmp_path / "plurel-13" / "db" / "junk.parquet").write_bytes(b"half")
    assert worker.run(13)["status"] == "generated"
    assert not (tmp_path / "plurel-13" / "db" / "junk.parquet").exists()
    assert json.loads((tmp_path / "plurel-13" / "plurel.json").read_text()) == info


def test_config_mismatch_fails_the_seed_with_a_clear_error(tmp_path, small_config):
    from plurel_ray.config import Config

    SeedWorker(small_config, str(tmp_path)).run(14)
    row = SeedWorker(Config(), str(tmp_path)).run(14)
    assert row["status"] == "failed"
    assert "another --out" in row["error"] and "plurel-14" in row["error"]


def test_fetching_a_whole_remote_root_copies_it_to_local_disk(tmp_path, small_config):
    root = object_store_root(tmp_path / "remote")
    (tmp_path / "remote").mkdir()
    SeedWorker(small_config, root, preprocess=True).run(15)
    store = object_store_root(tmp_path / "remote" / "stores" / "plurel-15")
    local = store.fetch("", tmp_path / "scratch")
    assert local.parent == tmp_path / "scratch"
    assert read_meta(local) == read_meta(tmp_path / "remote" / "stores" / "plurel-15")


def _generate(out, seeds, config, **options):
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation

    request = GenerationRequest(seeds=seeds, out=str(out), config=config, **options)
    return run_generation(request, use_ray=False, progress=False)


@pytest.mark.parametrize(
    ("given", "where"),
    [
        ("data/", "cwd/data"),
        ("~/out", "home/out"),
        ("with space/out dir", "cwd/with space/out dir"),
        ("file://{tmp}/uri%20out", "uri out"),
    ],
)
def test_relative_home_spaced_and_file_uri_outputs_work(
    given, where, tmp_path, monkeypatch, small_config
):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    summary = _generate(given.format(tmp=tmp_path), [3], small_config)
    assert summary.generated == 1
    read_tables(tmp_path / where / "plurel-3", verify=True)
    assert (tmp_path / where / "_index.parquet").is_file()
    assert sorted(p.name for p in (tmp_path / where).iterdir()) == [
        "_generation.json", "_index.parquet", "plurel-3"
    ]  # fmt: skip


@pytest.mark.parametrize("parent", ["a-file", "/proc/plurel-ray-test"])
def test_an_unwritable_output_is_one_line_naming_it(parent, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    out = str(tmp_path / parent / "out") if parent == "a-file" else parent + "/out"
    with pytest.raises(DatasetError) as err:
        OutputRoot(out).check_writable()
    message = str(err.value)
    assert "\n" not in message and out in message and "not writable" in message


def test_a_missing_parent_is_created_and_no_probe_stays(tmp_path):
    root = OutputRoot(tmp_path / "a" / "b" / "out")
    root.check_writable()
    assert list((tmp_path / "a" / "b" / "out").iterdir()) == []


def test_an_unreachable_s3_bucket_is_one_line_within_seconds(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"s3://bucket/run?endpoint_override=127.0.0.1:{port}&scheme=http"
    start = time.perf_counter()
    with pytest.raises(DatasetError) as err:
        OutputRoot(uri).check_writable()
    assert time.perf_counter() - start < 10
    assert "\n" not in str(err.value) and uri in str(err.value)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("nosuch://bucket/out", "Unrecognized filesystem"),
        ("file://somehost/out", "absolute local path"),
        ("s3://KEY:SECRET@bucket/out?nosuch=1", "nosuch"),
    ],
)
def test_a_bad_uri_is_one_line_naming_it_without_its_secret(given, says):
    with pytest.raises(DatasetError) as err:
        OutputRoot(given)
    message = str(err.value)
    assert "\n" not in message and says in message and "SECRET" not in message
    assert given.replace("KEY:SECRET", "***") in message


def test_a_second_run_adds_its_databases_to_the_index(tmp_path, small_config):
    _generate(tmp_path, [0, 1], small_config)
    summary = _generate(tmp_path, [1, 2], small_config)
    index = read_index(OutputRoot(tmp_path))
    assert index.column("db_name").to_pylist() == ["plurel-0", "plurel-1", "plurel-2"]
    # seed 1 was done by the first run (the index says so): its row stays that run's
    assert index.column("status").to_pylist() == ["generated", "generated", "generated"]
    assert summary.indexed == 3 and summary.databases == 2 and summary.skipped == 1


def test_an_unreadable_index_is_rebuilt_from_the_databases_and_said(tmp_path, small_config):
    first = _generate(tmp_path, [4, 5], small_config)
    assert first.notices == ()
    (tmp_path / "_index.parquet").write_bytes(b"PAR1 not really")
    summary = _generate(tmp_path, [6], small_config)
    (notice,) = summary.notices
    # rebuilt from the folders on disk before this run decided what to do
    assert "_index.parquet was unreadable" in notice and "rebuilt from 2" in notice
    assert any(line.startswith("note: ") for line in summary.lines())
    index = read_index(OutputRoot(tmp_path))
    assert index.column("seed").to_pylist() == [4, 5, 6]
    assert index.column("status").to_pylist() == ["skipped", "skipped", "generated"]
    assert index.column("rows").to_pylist()[:2] == [
        sum(json.loads((tmp_path / f"plurel-{s}" / "plurel.json").read_text())["rows"].values())
        for s in (4, 5)
    ]
    assert len(list(tmp_path.glob("_index.corrupt-*.parquet"))) == 1


def test_a_staged_folder_missing_its_files_is_never_published(root, tmp_path):
    staged = tmp_path / "staged"
    (staged / "db").mkdir(parents=True)
    (staged / "plurel.json").write_text("{}")  # what the old race left: no manifest.yaml
    with pytest.raises(DatasetError, match=r"lacks manifest\.yaml"):
        root.publish(staged, "plurel-9")
    assert root.read_info("plurel-9") is None
