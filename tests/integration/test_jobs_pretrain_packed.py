"""jobs/pretrain.py reading a packed run on an embedded Ray with 2 CPU workers: the seed
the run lacks is generated into it (packed), every store asked for is unpacked to the
local cache and embedded, and a tiny run trains on them and evaluates the held-out one."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.packed_stores import STORE_CACHE
from plurel_ray.store.embedding import CACHE_DIR_ENV

REPO = Path(__file__).resolve().parents[2]
TINY = ["--recipe", "tiny", "--set", "batch_size=4", "--set", "ctx_len=64", "--set", "steps=4",
        "--set", "d_model=32", "--set", "d_ff=64", "--num-workers", "1", "--sampler-cpus",
        "0.5", "--no-progress", "--max-tasks", "4", "--eval-max-items", "8"]  # fmt: skip


@pytest.mark.slow
def test_pretrain_reads_a_packed_run_and_generates_the_seed_it_lacks(tmp_path, tiny_config_file):
    from plurel_ray.config import Config

    packed, storage, cache = tmp_path / "packed", tmp_path / "runs", tmp_path / "cache"
    request = GenerationRequest(seeds=range(2), out=str(packed),
                                config=Config.load(tiny_config_file), layout="packed",
                                preprocess=True)  # fmt: skip
    assert run_generation(request, use_ray=False, progress=False).failed == 0
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4",
           CACHE_DIR_ENV: str(cache)}  # fmt: skip
    env.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "pretrain.py"), "--num-dbs", "3",
                           "--data", str(packed), "--storage", str(storage), "--config",
                           str(tiny_config_file), *TINY],
                          env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "databases: 3 (1 generated, 2 already complete, 0 failed)" in done.stdout
    assert f"unpacked 3 store(s) of {packed} into {cache / STORE_CACHE}" in done.stdout
    assert not (packed / "stores").exists()  # the run stays packed: nothing unpacked there
    stores = sorted(p.name for p in (cache / STORE_CACHE).glob("*/plurel-*"))
    assert stores == ["plurel-0", "plurel-1", "plurel-2"]
    for meta in (cache / STORE_CACHE).glob("*/plurel-*/meta.json"):
        assert json.loads(meta.read_text())["embedding"]
    (final,) = sorted(storage.glob("tiny-packed-*/step_*"))
    assert final.name == "step_00000004" and (final / "model.safetensors").is_file()
    with (final.parent / "eval_val.csv").open() as f:
        assert {row["store"] for row in csv.DictReader(f)} == {"plurel-2"}
