"""The per-seed worker and its output root without Ray: local folders, and the object-store
code path (uploads, marker last) on a real non-local pyarrow filesystem."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import relbench
from fsspec.implementations.local import LocalFileSystem as FsspecLocal

from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.seed_worker import SeedWorker, StoreEmbedder
from plurel_ray.relbench_io import read_tables
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
