"""jobs/continue_pretrain.py on real-shaped data: --init weights continued on one dataset,
a second left out and evaluated on the tasks a suite names (with leakage columns), on an
embedded Ray with the tiny recipe for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from realshaped import write_all

from plurel_ray.model.config import ModelConfig
from plurel_ray.model.transformer import init_model

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)
TINY = ["--recipe", "tiny", "--set", "batch_size=4", "--set", "ctx_len=64", "--num-workers", "1",
        "--sampler-cpus", "0.5", "--no-progress", "--eval-max-items", "16"]  # fmt: skip


@pytest.mark.slow
def test_continue_pretrain_on_real_datasets_with_a_left_out_one_and_a_suite(tmp_path):
    folders = write_all(tmp_path / "data")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "transfer", "tasks": [
        {"dataset": "shop", "table": "orders", "target": "quantity", "leakage": ["amount"]},
        {"dataset": "forum", "task": "user-active"},
        {"dataset": "forum", "table": "comments", "target": "upvotes"},
    ]}))  # fmt: skip
    init = tmp_path / "init.pt"
    model = init_model(ModelConfig(num_blocks=1, d_model=16, num_heads=2, d_ff=32), seed=3)
    torch.save(model.state_dict(), init)
    storage = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "continue_pretrain.py"), "--init", str(init),
         "--datasets", str(folders["shop"]), str(folders["forum"]), "--leave-out", "forum",
         "--tasks", str(suite), "--storage", str(storage), *TINY, "--set", "steps=4",
         "--eval-pow2", "--allow-encoder-mismatch"],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (run,) = storage.glob("tiny-on-forum-continued-*")
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    tasks = {row["task"] for row in rows if row.get("task")}
    assert tasks == {"user-active", "comments-upvotes"}  # the left-out dataset's suite tasks
    assert {row["step"] for row in rows} == {0, 1, 2, 4}
    assert (storage / "shop" / "stores" / "shop" / "meta.json").is_file()
