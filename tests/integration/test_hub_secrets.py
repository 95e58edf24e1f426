"""The Hub token never leaves the driver: `jobs/pretrain.py --hub-repo` against the local
test Hub, then every file Ray and the run wrote is searched for the token; and a job whose
pushes the Hub refuses exits non-zero."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hub_server import HubServer

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.store import embed, preprocess
from plurel_ray.synth.database import generate_database

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_secretCanary7f3e9a1b2c4d"  # distinctive: no other file can hold it by chance
TINY = ["--recipe", "tiny", "--set", "batch_size=4", "--set", "ctx_len=64", "--set",
        "d_model=32", "--set", "d_ff=64", "--set", "steps=4", "--set", "checkpoint_every=2",
        "--num-workers", "2", "--sampler-cpus", "0.5", "--no-progress", "--max-tasks", "4",
        "--eval-max-items", "2", "--holdout", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tiny_config, tmp_path_factory) -> Path:
    """Two embedded stores under data/stores/, built here so the jobs load no encoder."""
    root = tmp_path_factory.mktemp("secrets") / "data"
    for seed in (0, 1):
        folder = write_dataset(generate_database(seed, tiny_config), root / f"plurel-{seed}",
                               tiny_config)  # fmt: skip
        embed([preprocess(folder, root / "stores")], progress=False)
    return root


@pytest.fixture
def temp_root():
    """A short TMPDIR for the job: Ray's session folder (sockets need short paths), the
    workers' run folders and the driver's push copies all go under it."""
    root = Path(tempfile.mkdtemp(prefix="sec-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _pretrain(data: Path, storage: Path, temp_root: Path, hub: HubServer, token: str):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4",
           "TMPDIR": str(temp_root), "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": token,
           "HF_HUB_OFFLINE": "0"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
    argv = [sys.executable, str(REPO / "jobs" / "pretrain.py"), "--data", str(data),
            "--storage", str(storage), "--hub-repo", "org/secret-run", *TINY]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def _files_holding(token: str, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and token.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:  # a socket or a file removed meanwhile
                continue
    return found


def test_the_token_is_in_no_file_of_the_ray_session_or_the_run(data, temp_root, tmp_path):
    storage = tmp_path / "runs"
    with HubServer(tokens={TOKEN}) as hub:
        done = _pretrain(data, storage, temp_root, hub, TOKEN)
        commits = len(hub.requests_to("commit"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert commits == 2, (commits, done.stderr[-2000:])  # steps 2 and 4, pushed by the driver
    sessions = list((temp_root / "ray").glob("session_*/logs"))
    assert sessions, "the job's Ray session folder is not under TMPDIR"
    assert _files_holding(TOKEN, temp_root, storage, data) == []
    assert not list(temp_root.glob("plurel-ray-hub-*"))  # the driver's push copies are gone
    assert TOKEN not in done.stdout + done.stderr


def test_a_job_whose_pushes_all_fail_exits_non_zero(data, temp_root, tmp_path):
    with HubServer(tokens={"hf_the_only_accepted_token"}) as hub:  # refuses TOKEN: HTTP 401
        done = _pretrain(data, tmp_path / "runs", temp_root, hub, TOKEN)
        assert hub.requests_to("commit") == []
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]
    error = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "2 of 2 checkpoint push(es)" in error[0], done.stderr[-2000:]
    # The driver's own error is one line (Ray's actors may log tracebacks of their own).
    assert not any(line.startswith("Traceback") for line in done.stderr.splitlines())
    assert TOKEN not in done.stdout + done.stderr
