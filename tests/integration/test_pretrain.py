"""Pretraining on Ray Train with 2 CPU workers fed by sampler actors: learning, exact
resume after a killed worker, and resume by rerunning the same run name."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import CheckpointError
from plurel_ray.pipeline.pretrain import PretrainRequest, run_pretraining
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.store import embed, preprocess
from plurel_ray.store.sampler import Source, read_meta
from plurel_ray.synth.database import generate_database
from plurel_ray.train.config import recipe

pytestmark = pytest.mark.slow  # Ray Train on an embedded Ray

# Long enough that the loss drop is well clear of batch noise: at 120 steps the last ten
# losses summed to 0.80–0.85 of the first ten, at 200 steps to ~0.69 (generator v3,
# reference context rules, one process, same batches).
STEPS = 200


@pytest.fixture(scope="module")
def sources(tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    folders = [
        write_dataset(generate_database(seed, tiny_config), root / f"db{seed}", tiny_config)
        for seed in (0, 1)
    ]
    stores = [preprocess(folder, root / "stores") for folder in folders]
    embed(stores, progress=False)
    # Logical oversubscription: 2 training workers + 2 sampler actors on 2 cores.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield [Source(str(s), task=t["name"]) for s in stores for t in read_meta(s)["tasks"][:4]]
    ray.shutdown()


def _request(sources, storage: Path, name: str, steps: int, every: int) -> PretrainRequest:
    tiny = recipe("tiny", steps=steps, batch_size=4, ctx_len=64, checkpoint_every=every,
                  d_model=32, d_ff=64, lr=3e-3)  # fmt: skip
    resources = RunResources(num_workers=2, sampler_cpus=0.5, max_failures=1)
    return PretrainRequest(sources=sources, recipe=tiny, name=name, storage_path=str(storage),
                           resources=resources)  # fmt: skip


def _losses(checkpoint_dir: str | Path) -> dict[int, float]:
    lines = (Path(checkpoint_dir) / "metrics.jsonl").read_text().splitlines()
    return {row["step"]: row["loss"] for row in map(json.loads, lines)}


@pytest.fixture(scope="module")
def uninterrupted(sources, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    result = run_pretraining(_request(sources, storage, "straight", steps=STEPS, every=10))
    return storage, result


def test_two_workers_train_and_the_loss_decreases(uninterrupted):
    _, result = uninterrupted
    assert result.error is None and result.metrics["step"] == STEPS
    losses = _losses(result.checkpoint.path)
    assert sorted(losses) == list(range(1, STEPS + 1))
    first = sum(losses[s] for s in range(1, 11))
    last = sum(losses[s] for s in range(STEPS - 9, STEPS + 1))
    assert last < 0.8 * first, (first, last)
    folder = Path(result.checkpoint.path)
    assert {"model.safetensors", "config.json", "resume.pt"} <= {p.name for p in folder.iterdir()}


def _train_workers() -> dict[int, str]:
    """pid → process title of every live Ray Train worker process on this machine."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if title.startswith(b"ray::RayTrainWorker"):  # Ray's title for a training worker
            found[int(cmdline.parent.name)] = title.split(b"\0")[0].decode()
    return found


def _kill_a_worker_after(
    storage: Path, step_dir: str, stale: set[int], killed: list, history: list
) -> None:
    """Once the controller has registered checkpoint `step_dir` (it is in the checkpoint
    manager's snapshot: a checkpoint merely written could still be lost with the worker),
    keep its metrics.jsonl lines in `history` and SIGKILL one training worker of this run."""
    snapshot = storage / "interrupted" / "checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + 300
    while not (snapshot.exists() and step_dir in snapshot.read_text()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    history.extend((storage / "interrupted" / step_dir / "metrics.jsonl").read_text().splitlines())
    for pid, title in _train_workers().items():
        if pid not in stale:
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, title))
            return


def test_a_killed_worker_resumes_from_the_checkpoint_with_identical_losses(
    sources, uninterrupted, tmp_path
):
    killed: list[tuple[int, str]] = []
    history: list[str] = []
    stale = set(_train_workers())  # processes of earlier runs, still exiting
    killer = threading.Thread(target=_kill_a_worker_after,
                              args=(tmp_path, "step_00000020", stale, killed, history))  # fmt: skip
    killer.start()
    result = run_pretraining(_request(sources, tmp_path, "interrupted", steps=STEPS, every=10))
    killer.join()
    assert killed, "no training worker was found to kill"
    assert result.error is None and result.metrics["step"] == STEPS
    resumed = _losses(result.checkpoint.path)
    lines = (Path(result.checkpoint.path) / "metrics.jsonl").read_text().splitlines()
    # Every step is logged once: the resumed run continued the checkpoint's metrics ...
    assert [json.loads(line)["step"] for line in lines] == list(range(1, STEPS + 1))
    # ... which it did not recompute (their timings would differ): it resumed from a
    # checkpoint at or after step 20, not from step 1 ...
    assert len(history) == 20 and lines[:20] == history, killed
    # ... and saw exactly the batches and weights of the uninterrupted run.
    straight = _losses(uninterrupted[1].checkpoint.path)
    for step, loss in resumed.items():
        assert loss == pytest.approx(straight[step], rel=1e-5, abs=1e-6), step


def test_rerunning_a_finished_run_name_resumes_instead_of_restarting(sources, uninterrupted):
    storage, first = uninterrupted
    again = run_pretraining(_request(sources, storage, "straight", steps=STEPS, every=10))
    assert again.error is None
    assert Path(again.checkpoint.path) == Path(first.checkpoint.path)  # nothing retrained


def test_a_corrupt_resume_file_fails_the_run_at_once_naming_it(sources, uninterrupted, tmp_path):
    storage, first = uninterrupted
    shutil.copytree(storage / "straight", tmp_path / "straight")
    resume = tmp_path / "straight" / Path(first.checkpoint.path).name / "resume.pt"
    resume.write_bytes(resume.read_bytes()[:100])  # truncated, as by a full disk
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=re.escape(str(resume))):
        run_pretraining(_request(sources, tmp_path, "straight", steps=STEPS, every=10))
    assert time.monotonic() - started < 30  # refused in the driver: no worker was retried


def test_checkpoints_sync_to_the_hub_and_a_repo_id_starts_a_run(sources, tmp_path, monkeypatch):
    from hub_server import HubServer
    from huggingface_hub import HfApi

    from plurel_ray.model.checkpoint import load_checkpoint
    from plurel_ray.pipeline.pretrain_args import init_weights

    token = "hf_test_secret_pretrain_9c1"
    with HubServer(tokens={token}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", token)
        # CI runs offline (HF_HUB_OFFLINE=1); this local Hub must be reachable from this
        # process, the only one that pushes.
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        request = _request(sources, tmp_path, "synced", steps=20, every=10)
        request = dataclasses.replace(request, hub_repo="org/synced",
                                      data_summary={"num_databases": 2})  # fmt: skip
        result = run_pretraining(request)
        assert result.error is None
        files = set(HfApi(endpoint=hub.endpoint, token=token).list_repo_files("org/synced"))
        assert {"model.safetensors", "config.json", "README.md"} <= files
        assert len(hub.requests_to("commit")) == 2  # one push per checkpoint
        path, config = init_weights("org/synced")
        local = load_checkpoint(result.checkpoint.path).model.state_dict()
        pulled = load_checkpoint(path).model.state_dict()
        assert config == load_checkpoint(result.checkpoint.path).model_config
        assert all((local[k] == pulled[k]).all() for k in local)  # the last checkpoint
