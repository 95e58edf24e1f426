"""The pretraining jobs as subprocesses on an embedded Ray with 2 CPU workers: pretrain
on generated databases, continue from its checkpoint and from a reference `.pt`, the
real-data baseline with a left-out dataset, and bad flags failing before Ray starts."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from realdata import write_realdata_folder

from plurel_ray.model.checkpoint import load_checkpoint
from plurel_ray.model.config import ModelConfig
from plurel_ray.model.transformer import init_model

REPO = Path(__file__).resolve().parents[2]
# Logical oversubscription: 2 training workers + 2 sampler actors on 2 cores.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
TINY = ["--recipe", "tiny", "--set", "batch_size=4", "--set", "ctx_len=64",
        "--num-workers", "2", "--sampler-cpus", "0.5", "--no-progress",
        "--max-tasks", "6", "--eval-max-items", "16"]  # fmt: skip
RAY_STARTED = "Started a local Ray instance"
# A few AdamW steps at the tiny recipe's learning rate (≤ 5e-4) move a weight by ~1e-3;
# a freshly initialised model differs from given weights by ~0.1.
STARTED_FROM = 0.02


def _job(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / name), *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _assert_ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def _checkpoints(storage: Path, run_prefix: str) -> list[Path]:
    return sorted(storage.glob(f"{run_prefix}*/step_*"))


def _distance(checkpoint: Path, state_dict: dict) -> float:
    """The largest weight difference between `checkpoint` and `state_dict`."""
    trained = load_checkpoint(checkpoint).model.state_dict()
    return max(float((trained[k] - v).abs().max()) for k, v in state_dict.items())


def _eval_rows(checkpoint: Path, split: str) -> list[dict]:
    with (checkpoint.parent / f"eval_{split}.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_config_file):
    """jobs/pretrain.py generating 3 small databases (one held out), training 20 steps."""
    root = tmp_path_factory.mktemp("jobs")
    data, storage = root / "data", root / "runs"
    done = _job("pretrain.py", "--num-dbs", "3", "--data", str(data), "--storage", str(storage),
                "--config", str(tiny_config_file), *TINY, "--set", "steps=20", "--set",
                "d_model=32", "--set", "d_ff=64", "--set", "checkpoint_every=10")  # fmt: skip
    return done, data, storage


@pytest.mark.slow
def test_pretrain_generates_trains_and_evaluates_the_held_out_store(pretrained):
    done, data, storage = pretrained
    _assert_ok(done)
    assert sorted(p.name for p in (data / "stores").iterdir()) == [f"plurel-{i}" for i in range(3)]
    final = _checkpoints(storage, "tiny-data-")[-1]
    assert final.name == "step_00000020" and (final / "model.safetensors").is_file()
    assert f"checkpoint: {final}" in done.stdout and "tokens/s" in done.stdout
    rows = _eval_rows(final, "val")
    assert rows and {row["store"] for row in rows} == {"plurel-2"}  # the held-out store
    assert all(math.isfinite(float(row["loss"])) for row in rows if row["items"] != "0")


@pytest.mark.slow
def test_continue_pretrain_starts_from_a_checkpoint_folder(pretrained):
    _, data, storage = pretrained
    init = _checkpoints(storage, "tiny-data-")[-1]
    done = _job("continue_pretrain.py", "--init", str(init), "--data", str(data),
                "--storage", str(storage), *TINY, "--set", "steps=4")  # fmt: skip
    _assert_ok(done)
    (final,) = _checkpoints(storage, "tiny-data-continued-")
    assert final.name == "step_00000004" and (final / "model.safetensors").is_file()
    assert '"d_model": 32' in (final / "config.json").read_text()  # sizes from --init
    assert _eval_rows(final, "val")


@pytest.mark.slow
def test_continue_pretrain_reads_a_reference_pt_state_dict(pretrained, tmp_path):
    _, data, _ = pretrained
    reference = tmp_path / "reference.pt"
    # Not the recipe's seed 0, so weights near these can only come from --init.
    model = init_model(ModelConfig(num_blocks=1, d_model=16, num_heads=2, d_ff=32), seed=7)
    torch.save(model.state_dict(), reference)
    # A reference .pt expects all-MiniLM-L12-v2 text; these stores hold L6-v2's.
    done = _job("continue_pretrain.py", "--init", str(reference), "--data", str(data),
                "--storage", str(tmp_path / "runs"), *TINY, "--num-workers", "1",
                "--set", "steps=3", "--allow-encoder-mismatch")  # fmt: skip
    _assert_ok(done)
    (final,) = _checkpoints(tmp_path / "runs", "tiny-data-continued-")
    assert '"num_blocks": 1' in (final / "config.json").read_text()  # inferred from shapes
    assert _distance(final, model.state_dict()) < STARTED_FROM


def _named_copy(folder: Path, dest: Path, name: str) -> Path:
    shutil.copytree(folder, dest)
    manifest = yaml.safe_load((dest / "manifest.yaml").read_text())
    (dest / "manifest.yaml").write_text(yaml.safe_dump({**manifest, "name": name}))
    return dest


@pytest.mark.slow
def test_baseline_trains_on_one_dataset_and_evaluates_the_left_out_one(tmp_path):
    real = write_realdata_folder(tmp_path / "realdata")
    shops = [_named_copy(real, tmp_path / name, name) for name in ("shop-a", "shop-b")]
    storage = tmp_path / "runs"
    done = _job("baseline_pretrain.py", "--datasets", *map(str, shops), "--leave-out", "shop-b",
                "--storage", str(storage), *TINY, "--set", "steps=4", "--set", "d_model=32",
                "--set", "d_ff=64", "--eval-split", "test")  # fmt: skip
    _assert_ok(done)
    assert (storage / "shop-a" / "stores" / "shop-a" / "meta.json").is_file()
    (final,) = _checkpoints(storage, "tiny-baseline-shop-b-")
    rows = {row["task"]: row for row in _eval_rows(final, "test")}
    assert {row["store"] for row in rows.values()} == {"shop-b"}
    assert math.isfinite(float(rows["user-churn"]["loss"]))
    assert rows["users-age"]["items"] == "0" and "no items" in rows["users-age"]["note"]


@pytest.mark.parametrize(
    ("job", "args", "message", "code"),
    [
        ("pretrain.py", ["--data", "d", "--recipe", "huge"], "unknown recipe 'huge'", 1),
        ("pretrain.py", ["--data", "d", "--set", "stpes=3"], "did you mean", 1),
        ("pretrain.py", ["--data", "d", "--set", "steps"], "expected KEY=VALUE", 2),
        ("pretrain.py", ["--recipe", "tiny"], "required: --data", 2),
        ("pretrain.py", ["--data", "/nonexistent"], "no node stores", 1),
        ("continue_pretrain.py", ["--init", "/nonexistent/ckpt", "--data", "d"], "no such file", 1),
        ("baseline_pretrain.py", ["--datasets", "/nonexistent"], "no such folder", 1),
    ],
)  # fmt: skip
def test_bad_flags_fail_in_one_line_before_ray_starts(job, args, message, code):
    start = time.monotonic()
    done = _job(job, *args, "--verbose", timeout=60)  # verbose: Ray would say it started
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert RAY_STARTED not in done.stdout + done.stderr
    assert time.monotonic() - start < 30
