"""Sampler actors on a node whose disk lacks the stores the driver unpacked from a packed
run: each unpacks the stores it samples into its own cache and serves the same batches.

Another node is played by an actor whose cache folder (`PLUREL_RAY_CACHE_DIR`) is another
folder, after the driver's unpacked stores are moved out of the way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import ray

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.packed_stores import STORE_CACHE, store_origin
from plurel_ray.pipeline.prepare import prepare_synthetic
from plurel_ray.pipeline.pretrain import SamplerActor, _store_origins
from plurel_ray.pipeline.pretrain_data import task_sources
from plurel_ray.store.embedding import CACHE_DIR_ENV

pytestmark = pytest.mark.slow  # sampler actors on an embedded Ray

SEEDS = range(2)
OPTIONS = {"batch_size": 4, "ctx_len": 64, "max_bfs_width": 8, "seed": 0, "rank": 0,
           "world_size": 1}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def driver_stores(tmp_path, small_config, monkeypatch) -> list[Path]:
    """The stores of a packed run, unpacked by the driver into its cache."""
    run = tmp_path / "run"
    request = GenerationRequest(seeds=SEEDS, out=str(run), config=small_config,
                                layout="packed", preprocess=True)  # fmt: skip
    assert run_generation(request, use_ray=False, progress=False).failed == 0
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "driver-cache"))
    data = prepare_synthetic(run, SEEDS, holdout=0, progress=False, say=lambda line: None)
    return data.train


def _sampler(sources, origins, cache: Path):
    """A sampler actor whose machine keeps its cache in `cache`."""
    env = {"env_vars": {CACHE_DIR_ENV: str(cache)}}
    return SamplerActor.options(num_cpus=1, runtime_env=env).remote(sources, OPTIONS, (), origins)


def _same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        np.array_equal(np.asarray(first[k]), np.asarray(second[k])) for k in first
    )


def test_an_actor_without_the_stores_unpacks_them_and_samples_the_same(driver_stores, tmp_path):
    sources = task_sources(driver_stores, "train")
    origins = _store_origins({str(s.store) for s in sources})
    assert set(origins) == {str(store) for store in driver_stores}
    on_driver = _sampler(sources, origins, tmp_path / "driver-cache")
    expected = [ray.get(on_driver.batch.remote(i)) for i in range(3)]
    ray.kill(on_driver)

    # the driver's disk is not this "node's": its stores are gone from where they were
    hidden = tmp_path / "driver-cache-elsewhere"
    shutil.move(tmp_path / "driver-cache", hidden)
    elsewhere = _sampler(sources, origins, tmp_path / "node-cache")
    got = [ray.get(elsewhere.batch.remote(i)) for i in range(3)]
    assert all(_same(a, b) for a, b in zip(expected, got, strict=True))
    # each store in the node's own cache, under the same key as on the driver
    for store in driver_stores:
        key_and_name = store.relative_to(tmp_path / "driver-cache" / STORE_CACHE)
        assert (tmp_path / "node-cache" / STORE_CACHE / key_and_name / "meta.json").is_file()
    assert not (tmp_path / "driver-cache").exists()  # nothing read or made at the driver's path


def test_a_store_whose_shard_is_gone_fails_the_actor_in_one_line(driver_stores, tmp_path):
    sources = task_sources(driver_stores[:1], "train")
    origins = _store_origins({str(s.store) for s in sources})
    shutil.rmtree(driver_stores[0].parent)
    origin = origins[str(driver_stores[0])]
    shard = Path(origin["root"]) / origin["row"]["shard"]
    shard.unlink()
    actor = _sampler(sources, origins, tmp_path / "node-cache")
    with pytest.raises(ray.exceptions.RayActorError) as err:
        ray.get(actor.batch.remote(0))
    message = str(err.value)
    assert "DatasetError" in message and f"{shard}: missing" in message
    assert "runs verify --repair" in message


def test_a_store_outside_a_packed_cache_has_no_origin(tmp_path):
    (tmp_path / "plurel-0").mkdir()
    assert store_origin(tmp_path / "plurel-0") is None


@pytest.mark.parametrize("text", ["[1, 2]", "{", '{"root": "x"}'])
def test_an_origin_file_not_ours_is_one_line(tmp_path, text):
    (tmp_path / "plurel-0").mkdir()
    (tmp_path / "origin.json").write_text(text)
    with pytest.raises(DatasetError, match="not a store origin") as err:
        store_origin(tmp_path / "plurel-0")
    assert "\n" not in str(err.value)
