"""The lease of an output root: one writer at a time, stale leases taken over, a run that
lost its lease publishes nothing; on a local root and through the object-store code path."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs
import pytest
from fsspec.implementations.local import LocalFileSystem as FsspecLocal

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.lease import LEASE_FILE, OutputLease, read_holder
from plurel_ray.pipeline.output import RUNS_DIR, OutputRoot
from plurel_ray.pipeline.seed_worker import SeedWorker


@pytest.fixture(params=["local", "object-store"])
def root(request, tmp_path):
    if request.param == "local":
        return OutputRoot(tmp_path)
    # Not pyarrow's LocalFileSystem: the lease takes the path it takes on s3:// and gs://.
    return OutputRoot(
        str(tmp_path), filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(FsspecLocal()))
    )


def write_lease(path, *, host: str, pid: int, age_s: float, run_id: str = "otherrun") -> None:
    lease = {"run_id": run_id, "host": host, "pid": pid, "heartbeat": time.time() - age_s}
    (path / LEASE_FILE).write_text(json.dumps(lease))


def test_a_second_lease_is_refused_until_the_first_is_released(root, tmp_path):
    with OutputLease(root) as first:
        holder = read_holder(root)
        assert holder is not None and holder.run_id == first.run_id
        assert holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(DatasetError) as err:
            OutputLease(root).acquire()
        message = str(err.value)
        assert "\n" not in message and root.uri in message and first.run_id in message
    assert not (tmp_path / LEASE_FILE).exists()
    with OutputLease(root) as again:
        assert read_holder(root).run_id == again.run_id


def test_a_live_lease_of_another_host_is_respected(tmp_path):
    write_lease(tmp_path, host="elsewhere", pid=1, age_s=5)
    with pytest.raises(DatasetError, match="host elsewhere"):
        OutputLease(OutputRoot(tmp_path)).acquire()
    assert read_holder(OutputRoot(tmp_path)).run_id == "otherrun"


def test_a_lease_without_heartbeat_is_taken_over_with_a_notice(root, tmp_path):
    write_lease(tmp_path, host="elsewhere", pid=1, age_s=1000)
    (tmp_path / RUNS_DIR / "otherrun" / "plurel-3-abc").mkdir(parents=True)
    with OutputLease(root, stale_after_s=60) as lease:
        assert read_holder(root).run_id == lease.run_id
        assert (
            "no heartbeat for 1000 s" in lease.notices[0] and "host elsewhere" in lease.notices[0]
        )
        assert "removed 1 temporary folder" in lease.notices[1]
        assert not (tmp_path / RUNS_DIR / "otherrun").exists()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    write_lease(tmp_path, host=socket.gethostname(), pid=dead, age_s=1)
    with OutputLease(OutputRoot(tmp_path)) as lease:
        assert f"its process {dead}" in lease.notices[0]


def test_an_unreadable_lease_is_refused_while_fresh_and_taken_over_when_old(tmp_path):
    (tmp_path / LEASE_FILE).write_text("")  # created, not yet written (or cut by a crash)
    with pytest.raises(DatasetError, match="lease is still being written"):
        OutputLease(OutputRoot(tmp_path), stale_after_s=60).acquire()
    old = time.time() - 600
    os.utime(tmp_path / LEASE_FILE, (old, old))
    with OutputLease(OutputRoot(tmp_path), stale_after_s=60) as lease:
        assert "unreadable lease" in lease.notices[0]


def test_the_heartbeat_refreshes_the_lease_and_notices_a_takeover(root, tmp_path):
    lease = OutputLease(root, heartbeat_s=0.05)
    lease.acquire()
    try:
        first = read_holder(root).heartbeat
        time.sleep(0.3)
        assert read_holder(root).heartbeat > first
        write_lease(tmp_path, host="elsewhere", pid=1, age_s=0, run_id="thief")
        deadline = time.monotonic() + 5
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(DatasetError, match="lost its lease"):
            lease.raise_if_lost()
    finally:
        lease.release()
    assert read_holder(root).run_id == "thief"  # release leaves the new holder's lease


def test_a_worker_whose_run_lost_the_lease_publishes_nothing(root, tmp_path, small_config):
    write_lease(tmp_path, host="elsewhere", pid=1, age_s=0, run_id="newholder")
    row = SeedWorker(small_config, root, run_id="oldholder").run(7)
    assert row["status"] == "failed" and "lost its lease" in row["error"]
    assert "newholder" in row["error"]
    assert not (tmp_path / "plurel-7").exists()
    assert not list((tmp_path / RUNS_DIR).rglob("plurel-7*"))  # its staged folder is gone


def test_of_runs_starting_at_once_exactly_one_gets_the_lease(root):
    leases = [OutputLease(root) for _ in range(4)]
    start = threading.Barrier(len(leases))

    def acquire(lease: OutputLease) -> bool:
        start.wait()
        try:
            lease.acquire()
        except DatasetError:
            return False
        return True

    with ThreadPoolExecutor(len(leases)) as pool:
        got = list(pool.map(acquire, leases))
    try:
        assert got.count(True) == 1
        assert read_holder(root).run_id == leases[got.index(True)].run_id
    finally:
        leases[got.index(True)].release()
