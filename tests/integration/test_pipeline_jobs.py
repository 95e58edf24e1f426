"""`jobs/generate.py` against a real head node on 127.0.0.1: job submission and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from local_head import activated_venv_env, local_head
from ray.job_submission import JobStatus, JobSubmissionClient

from plurel_ray.dataset.relbench_io import read_tables

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "jobs" / "generate.py"

pytestmark = pytest.mark.slow  # every test here runs on a Ray head of its own


@pytest.fixture(scope="module")
def head_node():
    """A head of this test module, started from the checkout's root, as a user would."""
    with local_head(cwd=REPO, num_cpus=2) as head:
        yield {"address": head.address, "dashboard": head.dashboard}


def _job_args(out: Path, config: Path, *extra: str) -> list[str]:
    return [str(JOB), "--out", str(out), "--config", str(config), "--no-progress", *extra]


def test_ray_job_submit_runs_the_job(head_node, tmp_path, tiny_config_file):
    client = JobSubmissionClient(head_node["dashboard"])
    out = tmp_path / "out"
    entrypoint = " ".join([sys.executable, *_job_args(out, tiny_config_file, "--num-dbs", "2")])
    job = client.submit_job(entrypoint=entrypoint)
    deadline = time.monotonic() + 240
    while not (status := client.get_job_status(job)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(job)
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    assert "databases: 2 (2 generated" in logs
    assert sorted(p.name for p in out.iterdir()) == [
        "_generation.json", "_index.parquet", "plurel-0", "plurel-1"
    ]  # fmt: skip


def test_killed_driver_then_rerun_completes_every_database(head_node, tmp_path, tiny_config_file):
    # A tiny database takes tens of milliseconds: 64 of them keep the run going for
    # seconds after the third is published, so the kill lands mid-run.
    num_dbs = 64
    out = tmp_path / "out"
    args = [
        sys.executable,
        *_job_args(out, tiny_config_file, "--num-dbs", str(num_dbs), "--num-actors", "2"),
    ]
    env = {**os.environ, "RAY_ADDRESS": head_node["address"]}
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while len(list(out.glob("plurel-*"))) < 3:
        assert driver.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {p.name for p in out.glob("plurel-*")}
    assert 3 <= len(done_before) < num_dbs

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    index = pq.read_table(out / "_index.parquet").sort_by("seed").to_pylist()
    assert [r["seed"] for r in index] == list(range(num_dbs))  # each seed once
    assert {r["status"] for r in index} <= {"generated", "skipped"}
    # folders the killed run published: indexed by it, or found complete by the rerun
    lines = rerun.stdout.splitlines()
    (already,) = [int(ln.split(", ")[1].split()[0]) for ln in lines if ln.startswith("databases:")]
    assert already >= len(done_before) - 2  # folders finishing as the kill landed
    for seed in range(num_dbs):
        read_tables(out / f"plurel-{seed}", verify=True)
    # the rerun took the killed run's lease over and removed its staged folders
    assert not (out / "_lease.json").exists() and not list(out.glob(".runs/*/*"))


def test_readme_job_submit_with_working_dir_generates(head_node, tmp_path):
    """The README's command as typed, from the checkout's root: the uploaded working dir
    lacks the compiled extension (Ray honours .gitignore, which lists *.so) and its
    `plurel_ray/` comes first on the workers' sys.path."""
    out = tmp_path / "out"
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli), "job", "submit", "--address", head_node["dashboard"],
               "--working-dir", ".", "--", "python", "jobs/generate.py", "--num-dbs", "2",
               "--out", str(out)]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, env=activated_venv_env(), capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for seed in (0, 1):
        read_tables(out / f"plurel-{seed}", verify=True)
