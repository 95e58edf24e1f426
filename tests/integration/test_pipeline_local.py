"""The generation pipeline on an embedded local Ray (2 CPUs), end to end."""

from __future__ import annotations

import argparse

import pyarrow.parquet as pq
import pytest
import ray
import relbench
from ray_helpers import assert_same_as_single_process

from plurel_ray.dataset.relbench_io import read_tables
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.generate_args import add_generate_arguments, run_from_args
from plurel_ray.store.sampler import read_meta

pytestmark = pytest.mark.slow  # every test here runs on an embedded Ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _request(out, config, seeds, **kwargs) -> GenerationRequest:
    return GenerationRequest(seeds=seeds, out=str(out), config=config, num_actors=2,
                             no_progress_timeout_s=120, **kwargs)  # fmt: skip


def test_run_writes_loadable_folders_and_an_index(tmp_path, tiny_config):
    summary = run_generation(_request(tmp_path, tiny_config, [4, 7, 9]), progress=False)
    assert (summary.generated, summary.skipped, summary.failed) == (3, 0, 0)
    index = pq.read_table(tmp_path / "_index.parquet").sort_by("seed").to_pylist()
    assert [r["db_name"] for r in index] == ["plurel-4", "plurel-7", "plurel-9"]
    for row in index:
        folder = tmp_path / row["db_name"]
        db = relbench.load_dataset(folder).get_db(upto_test_timestamp=False)
        assert row["tables"] == len(db.table_dict) == 3
        assert row["rows"] == sum(len(t.df) for t in db.table_dict.values())
        assert row["cells"] > 0 and row["bytes"] > 0 and row["seconds"] > 0
        assert row["status"] == "generated" and row["error"] is None and row["node"]
        read_tables(folder, verify=True)  # content hash matches
    assert summary.cells == sum(r["cells"] for r in index)
    # no staging folder, run folder or lease left behind
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("plurel-")) == [
        "_generation.json", "_index.parquet"
    ]  # fmt: skip


def test_ray_output_is_byte_identical_to_single_process(tmp_path, tiny_config):
    run_generation(_request(tmp_path / "ray", tiny_config, [1, 2]), progress=False)
    for seed in (1, 2):
        assert_same_as_single_process(tmp_path / "ray" / f"plurel-{seed}", seed, tiny_config,
                                      tmp_path)  # fmt: skip


def test_failed_seed_is_recorded_and_the_run_goes_on(tmp_path, tiny_config, capsys):
    out = tmp_path / "out"
    out.mkdir()
    # A file where seed 2's folder belongs: that seed cannot be written.
    (out / "plurel-2").write_text("in the way")
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser, ray_by_default=True)
    config_file = tmp_path / "tiny.yaml"
    tiny_config.save(config_file)
    argv = ["--seeds", "1-3", "--out", str(out), "--config", str(config_file),
            "--num-actors", "2", "--no-progress"]  # fmt: skip
    assert run_from_args(parser.parse_args(argv)) == 1
    captured = capsys.readouterr()
    assert "1 seed(s) failed" in captured.err and "--allow-failures" in captured.err
    assert "failed: seed 2: " in captured.out
    index = {r["seed"]: r for r in pq.read_table(out / "_index.parquet").to_pylist()}
    assert index[2]["status"] == "failed" and "plurel-2" in index[2]["error"]
    assert index[1]["status"] == index[3]["status"] == "generated"
    relbench.load_dataset(out / "plurel-1")
    relbench.load_dataset(out / "plurel-3")
    assert run_from_args(parser.parse_args([*argv, "--allow-failures"])) == 0


def test_preprocess_and_embed_stages_publish_embedded_stores(tmp_path, tiny_config):
    request = _request(tmp_path, tiny_config, [5, 6], preprocess=True, embed=True)
    summary = run_generation(request, progress=False)
    assert summary.generated == 2 and summary.failed == 0
    index = pq.read_table(tmp_path / "_index.parquet").sort_by("seed").to_pylist()
    for row in index:
        store = tmp_path / "stores" / row["db_name"]
        assert row["store"] == str(store)
        meta = read_meta(store)
        assert meta["source"]["seed"] == row["seed"]
        assert meta["embedding"]["dim"] == 384
    # Rerunning with the stages finds everything complete.
    again = run_generation(request, progress=False)
    assert (again.generated, again.skipped) == (0, 2)
