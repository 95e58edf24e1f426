"""Resources up front: a training run the cluster cannot fit fails in one line, before any
actor starts, and leaves no actor behind; what fits is never refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_head import local_head
from ray.util.state import list_actors

from plurel_ray.pipeline.resources import RunResources, shortfall

REPO = Path(__file__).resolve().parents[2]
TWO_CPUS = [{"CPU": 2.0, "memory": 1e9}]


def test_the_request_counts_workers_and_their_samplers():
    wanted = RunResources(num_workers=8, cpus_per_worker=1, sampler_cpus=0.5, use_gpu=True)
    assert wanted.totals() == {"CPU": 12.0, "GPU": 8.0}
    assert wanted.describe() == ("8 workers × 1 CPU + 1 GPU + 8 samplers × 0.5 CPU = "
                                 "12 CPUs and 8 GPUs")  # fmt: skip


def test_a_run_larger_than_the_cluster_names_both_sides():
    wanted = RunResources(num_workers=8, cpus_per_worker=1, sampler_cpus=1, use_gpu=False)
    missing = shortfall(wanted, TWO_CPUS)
    assert missing == ("the run asks for 8 workers × 1 CPU + 8 samplers × 1 CPU = 16 CPUs "
                       "and 0 GPUs; the cluster has 2 CPUs and 0 GPUs on 1 node(s), the "
                       "largest 2 CPUs and 0 GPUs")  # fmt: skip
    gpus = RunResources(num_workers=1, cpus_per_worker=1, sampler_cpus=1, use_gpu=True)
    assert "1 GPUs" in shortfall(gpus, TWO_CPUS)


def test_a_bundle_no_single_node_holds_is_named():
    wanted = RunResources(num_workers=1, cpus_per_worker=3, sampler_cpus=1, use_gpu=False)
    missing = shortfall(wanted, TWO_CPUS * 2)  # 4 CPUs in all, 2 per node
    assert "no node has 3 CPUs for one bundle" in missing


def test_what_fits_is_never_refused():
    assert shortfall(RunResources(1, 1, 1, False), TWO_CPUS) is None
    assert shortfall(RunResources(2, 0.5, 0.5, False), TWO_CPUS) is None
    assert shortfall(RunResources(2, 1, 1, True), [{"CPU": 4, "GPU": 2}]) is None
    assert shortfall(RunResources(2, 1, 0, False), TWO_CPUS) is None  # samplers of 0 CPUs


@pytest.mark.slow
def test_a_job_asking_for_more_workers_than_cpus_fails_at_once_and_leaves_no_actor(
    tmp_path, tiny_config_file
):
    with local_head(REPO, num_cpus=2) as head:
        env = {**os.environ, "RAY_ADDRESS": head.address, "RAY_AUTH_MODE": "disabled"}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(REPO / "jobs" / "pretrain.py"), "--num-dbs", "2",
             "--data", str(tmp_path / "data"), "--storage", str(tmp_path / "runs"),
             "--config", str(tiny_config_file), "--num-workers", "8", "--no-progress"],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        seconds = time.monotonic() - started
        alive = list_actors(address=head.dashboard, filters=[("state", "=", "ALIVE")])
    print(f"failed in {seconds:.1f} s (interpreter, imports and connecting to Ray included)")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("jobs/pretrain.py: error: "), done.stderr
    for words in ("16 CPUs", "the cluster has 2 CPUs", "does not autoscale", "--num-workers"):
        assert words in errors[0], (words, errors[0])
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # checked before generating anything
    assert alive == []
    assert seconds < 60
