"""`jobs/generate.py` against a real head node on 127.0.0.1: job submission and resume."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

from plurel_ray.relbench_io import read_tables

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "jobs" / "generate.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray(*args: str) -> None:
    ray_cli = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_cli), *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def head_node():
    """A head on loopback with its dashboard (the job API) on loopback too, auth off."""
    port, dashboard = _free_port(), _free_port()
    _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=2",
         "--include-dashboard=true", "--disable-usage-stats")  # fmt: skip
    yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}"}
    _ray("stop", "--force")


def _submit(client: JobSubmissionClient, entrypoint: str) -> str:
    """Submit, waiting for the head's job agent: `ray start` returns before it is up."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint)
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def _job_args(out: Path, config: Path, *extra: str) -> list[str]:
    return [str(JOB), "--out", str(out), "--config", str(config), "--no-progress", *extra]


def test_ray_job_submit_runs_the_job(head_node, tmp_path, tiny_config_file):
    client = JobSubmissionClient(head_node["dashboard"])
    out = tmp_path / "out"
    entrypoint = " ".join([sys.executable, *_job_args(out, tiny_config_file, "--num-dbs", "2")])
    job = _submit(client, entrypoint)
    deadline = time.monotonic() + 240
    while not (status := client.get_job_status(job)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(job)
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    assert "databases: 2 (2 generated" in logs
    assert sorted(p.name for p in out.iterdir()) == ["_index.parquet", "plurel-0", "plurel-1"]


def test_killed_driver_then_rerun_completes_every_database(head_node, tmp_path, tiny_config_file):
    out = tmp_path / "out"
    args = [
        sys.executable,
        *_job_args(out, tiny_config_file, "--num-dbs", "16", "--num-actors", "2"),
    ]
    env = {**os.environ, "RAY_ADDRESS": head_node["address"]}
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while len(list(out.glob("plurel-*"))) < 3:
        assert driver.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {p.name for p in out.glob("plurel-*")}
    assert 3 <= len(done_before) < 16

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    index = pq.read_table(out / "_index.parquet").sort_by("seed").to_pylist()
    assert [r["seed"] for r in index] == list(range(16))  # each seed once
    skipped = {r["db_name"] for r in index if r["status"] == "skipped"}
    assert done_before <= skipped | {r["db_name"] for r in index if r["status"] == "generated"}
    assert len(skipped) >= len(done_before) - 2  # folders finishing as the kill landed
    for seed in range(16):
        read_tables(out / f"plurel-{seed}", verify=True)
    assert not list(out.glob(".tmp-*"))
