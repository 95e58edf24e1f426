"""Training data from a packed run, in one process: `prepare_synthetic` unpacks the stores
asked for into the local cache, embeds them, and reuses them; a corrupt shard is a
one-line error that leaves the cache as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.packed import read_manifest
from plurel_ray.pipeline.packed_stores import STORE_CACHE, complete_rows, unpack_stores
from plurel_ray.pipeline.prepare import prepare_synthetic
from plurel_ray.store.embedding import CACHE_DIR_ENV
from plurel_ray.store.meta import DEFAULT_TEXT_MODEL

SEEDS = range(4)


def _generate(out: Path, config: Config, **options) -> Path:
    request = GenerationRequest(seeds=SEEDS, out=str(out), config=config, **options)
    summary = run_generation(request, use_ray=False, progress=False)
    assert summary.failed == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_config) -> dict[str, Path]:
    """The same seeds as a packed run with stores, one without, and a folders run."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "packed": _generate(root / "packed", small_config, layout="packed", preprocess=True),
        "bare": _generate(root / "bare", small_config, layout="packed"),
        "folders": _generate(root / "folders", small_config, preprocess=True),
    }


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / STORE_CACHE


def _described(store: Path) -> dict:
    """What a store says about its database: its tables and tasks."""
    meta = json.loads((store / "meta.json").read_text())
    return {"tables": meta["tables"], "tasks": meta["tasks"]}


def _staged_leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if p.name.startswith(".")] if cache.exists() else []


@pytest.mark.parametrize("run", ["packed", "bare"])
def test_a_packed_run_gives_embedded_local_stores_like_a_folders_run(runs, cache, run):
    said = []
    data = prepare_synthetic(runs[run], SEEDS, holdout=1, progress=False, say=said.append)
    stores = data.train + data.held_out
    assert [s.name for s in stores] == [f"plurel-{seed}" for seed in SEEDS]
    assert [s.name for s in data.held_out] == ["plurel-3"]
    assert all(s.is_relative_to(cache) for s in stores)
    assert said == [f"unpacked 4 store(s) of {runs[run]} into {cache} (0 already there)"]
    for store in stores:
        meta = json.loads((store / "meta.json").read_text())
        assert meta["embedding"]["model"] == DEFAULT_TEXT_MODEL
        assert _described(store) == _described(runs["folders"] / "stores" / store.name)
    assert not _staged_leftovers(cache)


def test_a_second_job_unpacks_nothing(runs, cache):
    first = prepare_synthetic(runs["packed"], SEEDS, holdout=1, progress=False, say=print)
    written = {s: (s / "meta.json").stat().st_mtime_ns for s in first.train + first.held_out}
    said = []
    again = prepare_synthetic(runs["packed"], None, holdout=1, progress=False, say=said.append)
    assert again.train + again.held_out == list(written)
    assert {s: (s / "meta.json").stat().st_mtime_ns for s in written} == written
    assert said == []
    root = OutputRoot(runs["packed"])
    _, unpacked = unpack_stores(root, list(complete_rows(root, None).values()), say=print)
    assert unpacked == 0


def _store_span(root: Path, seed: int) -> tuple[Path, int, int]:
    """(shard file, offset, length) of the store of `seed` in its shard."""
    (row,) = complete_rows(OutputRoot(root), [f"plurel-{seed}"]).values()
    shard = row["shard"].rsplit("/", 1)[-1]
    member = read_manifest(OutputRoot(root), shard).member(f"stores/plurel-{seed}")
    return root / row["shard"], member.offset, member.length


def test_a_corrupt_shard_is_one_line_and_leaves_the_cache_as_it_was(runs, cache, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["packed"], damaged)
    shard, offset, length = _store_span(damaged, 2)
    with shard.open("r+b") as f:
        f.seek(offset + length // 2)
        byte = f.read(1)
        f.seek(offset + length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DatasetError, match=r"stores/plurel-2 does not match its recorded sha256"):
        prepare_synthetic(damaged, SEEDS, holdout=1, progress=False)
    # The batch failed whole: no store of it, and no staging folder, is in the cache.
    assert list(cache.glob("*/plurel-*")) == [] and not _staged_leftovers(cache)


def test_a_truncated_shard_is_one_line(runs, cache, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["packed"], damaged)
    shard, offset, length = _store_span(damaged, 3)
    with shard.open("r+b") as f:
        f.truncate(offset + length // 2)
    with pytest.raises(DatasetError, match=r"stores/plurel-3 is cut short") as raised:
        prepare_synthetic(damaged, [3], holdout=0, progress=False)
    assert "\n" not in str(raised.value)
    assert list(cache.glob("*/plurel-*")) == [] and not _staged_leftovers(cache)


def test_stores_of_other_context_rules_are_refused_before_unpacking(runs, cache):
    with pytest.raises(ConfigError, match="made under context rules 'reference', not "
                       "--context-rules strict"):  # fmt: skip
        prepare_synthetic(runs["packed"], SEEDS, holdout=1, context_rules="strict")
    assert not cache.exists()


def test_a_uri_of_a_folders_run_is_refused(runs):
    with pytest.raises(ConfigError, match="a folders run can be read from local or shared"):
        prepare_synthetic(f"file://{runs['folders']}", SEEDS, holdout=1)


@pytest.mark.slow  # the missing seed is generated on an embedded Ray
def test_seeds_added_without_a_config_take_the_runs_own(tmp_path, small_config, cache):
    """A job given --num-dbs but no --config extends a run with the config it was made
    with (`_generation.json`), not the prior's defaults, which the run would refuse."""
    import ray

    run = tmp_path / "run"
    shutil.copytree(_generate(tmp_path / "made", small_config, layout="packed",
                              preprocess=True), run)  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        data = prepare_synthetic(run, range(5), 1, None, progress=False, say=lambda _: None)
    finally:
        ray.shutdown()
    assert [p.name for p in data.train + data.held_out] == [f"plurel-{s}" for s in range(5)]
    added = complete_rows(OutputRoot(str(run)), ["plurel-4"])["plurel-4"]
    assert added["status"] == "generated" and data.generation.generated == 1
    meta = json.loads((data.held_out[0] / "meta.json").read_text())
    assert meta["source"]["config_hash"] == small_config.content_hash()
