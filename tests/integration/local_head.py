"""A Ray head node owned by one test: `ray start --head --block` as a child process.

`ray stop` stops every Ray on the machine (a user's own cluster, another test run's), so
tests never call it. A blocking `ray start` in its own session is the cluster instead:
SIGTERM makes it kill exactly the processes it started, and whatever survives in its
process group is killed after it. Its own `--temp-dir` keeps its session, logs and
`ray_current_cluster` file apart from any other cluster's, so `ray.init("auto")`
elsewhere never finds it. (Imported by module name: tests are not a package.)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ray.job_submission import JobSubmissionClient

RAY_CLI = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class LocalHead:
    """Where a test's head listens: `address` for drivers, `dashboard` for the job API."""

    address: str
    dashboard: str
    temp_dir: Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def activated_venv_env() -> dict[str, str]:
    """This environment as a shell with the test's venv activated sees it: a job's
    `python` entrypoint runs the interpreter the head's PATH finds."""
    venv_bin = Path(sys.executable).parent
    path = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "VIRTUAL_ENV": str(venv_bin.parent)}


@contextmanager
def local_head(
    cwd: Path,
    num_cpus: float,
    extra_args: tuple[str, ...] = (),
    env: dict | None = None,
    port: int | None = None,
) -> Iterator[LocalHead]:
    """Start a head on loopback ports with auth off, yield it once jobs run, stop only it.

    Args:
        cwd: the directory the head (and so its workers) starts in.
        num_cpus: logical CPUs the head offers.
        extra_args: more `ray start` flags (e.g. `--autoscaling-config=...`).
        env: extra environment variables for the head's processes.
        port: the GCS port (default: a free one).
    """
    port, dashboard = port or free_port(), free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="rayh-", dir="/tmp"))  # short: socket paths
    command = [RAY_CLI, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={port}", f"--num-cpus={num_cpus}", f"--temp-dir={temp_dir}",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats",
               *extra_args]  # fmt: skip
    head_env = {**activated_venv_env(), "RAY_AUTH_MODE": "disabled", **(env or {})}
    # SIGTERM would otherwise drain the node for up to 30 s first (for Serve proxies).
    head_env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    log = (temp_dir / "ray-start.log").open("wb")
    process = subprocess.Popen(command, cwd=cwd, env=head_env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        head = LocalHead(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", temp_dir)
        _wait_until_jobs_run(head, process)
        yield head
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_until_jobs_run(head: LocalHead, process: subprocess.Popen) -> None:
    """Run a no-op job: the dashboard and the head's job agent come up after `ray start`."""
    deadline = time.monotonic() + START_TIMEOUT_S
    job = None
    while job is None:
        if process.poll() is not None:
            raise RuntimeError(_start_failure(head, "`ray start` exited"))
        try:
            job = JobSubmissionClient(head.dashboard).submit_job(entrypoint="true")
        except (ConnectionError, RuntimeError) as err:
            if time.monotonic() > deadline:
                raise RuntimeError(_start_failure(head, str(err))) from err
            time.sleep(1)
    client = JobSubmissionClient(head.dashboard)
    while not client.get_job_status(job).is_terminal():
        if time.monotonic() > deadline:
            raise RuntimeError(_start_failure(head, "the no-op job did not finish"))
        time.sleep(0.5)


def _start_failure(head: LocalHead, why: str) -> str:
    log = (head.temp_dir / "ray-start.log").read_text(errors="replace")
    return f"local Ray head did not come up ({why}); ray start said:\n{log[-4000:]}"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM: `ray start --block` kills its processes; then the rest of its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the group is ours
    process.wait()
