"""Packed runs on the Hub, through the real huggingface_hub client against the local test
Hub: a run publishes its shards, index, record and card in a few files, and one database
comes back by name with one range request."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hub_server import HubServer
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import read_dataset_info, read_tables
from plurel_ray.dataset.shards import ShardManifest
from plurel_ray.errors import DatasetError, HubError
from plurel_ray.hub import packed_card
from plurel_ray.hub.download import download_database
from plurel_ray.hub.push import push_run_index
from plurel_ray.pipeline import index, output, packed, run_record
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.packed_read import open_database

TOKEN = "hf_test_secret_packed_77c1e0"
REPO = "org/packed"
SEEDS = range(6)


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN}) as server:
        yield server
        assert not server.requests_to("unknown"), "the client called a route the server lacks"


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path, hub):
    # A hermetic cache; the local Hub reachable although CI sets HF_HUB_OFFLINE=1 (read
    # by huggingface_hub at import); endpoint and token as a user sets them.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_config, hub) -> Path:
    """Six tiny databases in three shards, pushed to REPO as the run goes."""
    out = tmp_path_factory.mktemp("packed") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        patch.setenv("HF_ENDPOINT", hub.endpoint)
        patch.setenv("HF_TOKEN", TOKEN)
        request = GenerationRequest(seeds=SEEDS, out=str(out), config=small_config,
                                    layout="packed", dbs_per_shard=2, hub_repo=REPO)  # fmt: skip
        summary = run_generation(request, use_ray=False, progress=False)
    assert summary.generated == len(SEEDS) and summary.hub_failures == 0
    return out


def _api() -> HfApi:
    # huggingface_hub read HF_ENDPOINT at import: its own client is told where the Hub is.
    return HfApi(endpoint=os.environ["HF_ENDPOINT"], token=TOKEN)


def _files(repo: str) -> set[str]:
    return set(_api().list_repo_files(repo, repo_type="dataset"))


def test_the_hub_side_names_the_pipeline_files():
    assert packed_card.INDEX_FILE == output.INDEX_FILE
    assert packed_card.RECORD_FILE == run_record.RECORD_FILE
    assert packed_card.SHARDS_DIR == output.SHARDS_DIR
    assert packed_card.COMPLETE == index.COMPLETE
    assert packed_card.manifest_path("shards/r-000001.tar") == packed.manifest_name("r-000001.tar")


def test_a_packed_run_is_two_files_per_shard_plus_index_record_and_card(run, hub, small_config):
    shards = sorted(p.name for p in (run / "shards").iterdir())
    assert len(shards) == 6  # three .tar, three .json
    expected = {f"shards/{name}" for name in shards} | {
        "_index.parquet", "_generation.json", "README.md", ".gitattributes"}  # fmt: skip
    assert _files(REPO) == expected
    card = hub.repos[("dataset", REPO)].resolve("main").files["README.md"].decode()
    assert f"plurel-ray hub download {REPO} --repo-type dataset --database plurel-0" in card
    assert "6 synthetic relational databases" in card and "| seeds | 0-5 |" in card
    assert TOKEN not in card
    # A rerun has nothing new: no shard, and the index, record and card are unchanged.
    commits = len(hub.requests_to("commit"))
    request = GenerationRequest(seeds=SEEDS, out=str(run), config=small_config,
                                layout="packed", dbs_per_shard=2, hub_repo=REPO)  # fmt: skip
    assert run_generation(request, use_ray=False, progress=False).skipped == len(SEEDS)
    assert len(hub.requests_to("commit")) == commits


def test_one_database_comes_back_by_name_with_one_range_request(run, hub, tmp_path):
    row = next(r for r in pq.read_table(run / "_index.parquet").to_pylist()
               if r["db_name"] == "plurel-3")  # fmt: skip
    shard_bytes = (run / row["shard"]).stat().st_size
    before = len(hub.requests)
    back = download_database(REPO, "plurel-3", tmp_path / "dbs")
    assert back == tmp_path / "dbs" / "plurel-3"
    local = open_database(str(run), "plurel-3", tmp_path / "local")
    assert read_dataset_info(back)["content_hash"] == read_dataset_info(local)["content_hash"]
    mine, theirs = read_tables(back, verify=True), read_tables(local, verify=True)
    assert mine.keys() == theirs.keys() and all(mine[t].equals(theirs[t]) for t in mine)
    # The shard was read once, by the database's span alone; everything at one commit.
    resolves = [r for r in hub.requests[before:] if r.route == "resolve"]
    tar_reads = [r for r in resolves if r.path.endswith(".tar")]
    span = f"bytes={row['offset']}-{row['offset'] + row['length'] - 1}"
    assert [r.headers.get("range") for r in tar_reads] == [span]
    assert row["length"] < shard_bytes / 2
    head = hub.repos[("dataset", REPO)].branches["main"]
    assert all(f"/resolve/{head}/" in r.path for r in resolves)
    assert sorted(p.name for p in back.parent.iterdir()) == ["plurel-3"]  # no temporaries


def test_the_cli_downloads_several_databases_and_names_an_unknown_one(run, tmp_path, capsys):
    out = tmp_path / "dbs"
    args = ["hub", "download", REPO, "--repo-type", "dataset", "--out", str(out)]
    assert main([*args, "--database", "plurel-1", "--database", "plurel-4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["plurel-1", "plurel-4"]
    assert str(out / "plurel-4") in capsys.readouterr().out
    read_tables(out / "plurel-1", verify=True)

    assert main([*args, "--database", "plurel-2", "--database", "plurel-99"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no complete database plurel-99" in err
    assert sorted(p.name for p in out.iterdir()) == ["plurel-1", "plurel-4"]  # nothing fetched
    assert main(["hub", "download", REPO, "--database", "plurel-1", "--repo-type", "model",
                 "--out", str(out)]) == 1  # fmt: skip
    assert "--database" in capsys.readouterr().err


def test_a_corrupt_shard_on_the_hub_is_one_line_and_nothing_is_written(run, hub, tmp_path):
    repo = "org/corrupt"
    _api().create_repo(repo, repo_type="dataset")
    push_run_index(OutputRoot(str(run)), repo)  # every shard goes with the index
    row = next(r for r in pq.read_table(run / "_index.parquet").to_pylist()
               if r["db_name"] == "plurel-5")  # fmt: skip
    data = bytearray((run / row["shard"]).read_bytes())
    data[row["offset"] + row["length"] - 2000] ^= 0xFF  # a byte of its last file's data
    _api().create_commit(repo, [CommitOperationAdd(row["shard"], bytes(data))],
                         commit_message="bit rot", repo_type="dataset")  # fmt: skip
    with pytest.raises(DatasetError, match="plurel-5 does not match its recorded sha256") as err:
        download_database(repo, "plurel-5", tmp_path / "dbs")
    assert "\n" not in str(err.value) and f"{repo}@" in str(err.value)
    assert list((tmp_path / "dbs").iterdir()) == []


def test_the_index_push_brings_a_shard_whose_own_push_failed(run, tmp_path):
    repo = "org/repaired"
    manifest_file = next((run / "shards").glob("*.json"))
    shard = f"shards/{manifest_file.name.removesuffix('.json')}.tar"
    push_run_index(OutputRoot(str(run)), repo)
    _api().create_commit(repo, [CommitOperationDelete(shard)], commit_message="lost",
                         repo_type="dataset")  # fmt: skip
    assert shard not in _files(repo)
    push_run_index(OutputRoot(str(run)), repo)
    assert shard in _files(repo)
    manifest = ShardManifest.from_json(manifest_file.read_text(), manifest_file.name)
    name = manifest.members[0].name
    read_tables(download_database(repo, name, tmp_path / "dbs"), verify=True)


def test_a_repo_of_database_folders_is_not_a_packed_run(hub, tmp_path):
    _api().create_repo("org/folders", repo_type="dataset")
    with pytest.raises(DatasetError, match=r"_index.parquet: missing, so this is not a packed"):
        download_database("org/folders", "plurel-0", tmp_path)
    with pytest.raises(DatasetError, match="expected plurel-<seed>"):
        download_database("org/folders", "../etc", tmp_path)


def test_a_hub_that_ignores_the_range_is_one_line_and_nothing_is_written(run, hub, tmp_path):
    hub.serve_ranges = False
    try:
        with pytest.raises(HubError, match="HTTP 200 to a byte-range request") as err:
            download_database(REPO, "plurel-2", tmp_path / "dbs")
    finally:
        hub.serve_ranges = True
    assert "\n" not in str(err.value) and TOKEN not in str(err.value)
    assert list((tmp_path / "dbs").iterdir()) == []
