"""Two generation runs into one output, as separate processes: the second refuses while the
first writes, the first completes intact, and a killed run's lease and temporaries are
taken over by the next run.

The runs are the in-process path (`use_ray=False`), which drives the same `SeedWorker`
the Ray actors hold. A run is frozen with SIGSTOP while it has a database half-written,
so the overlap is certain rather than a matter of timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plurel_ray.dataset.relbench_io import read_tables
from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.index import read_index
from plurel_ray.pipeline.output import RUNS_DIR, OutputRoot

# Enough databases that the run is still writing when the test looks: a small database
# is staged for only milliseconds since task folders are no longer written.
SEEDS = 24

# One generation run, as `plurel-ray generate` does it: a typed error is one line and exit 2.
RUN = """
import json, sys
from plurel_ray.config import Config
from plurel_ray.errors import PlurelError
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
request = GenerationRequest(seeds=range(int(sys.argv[2])), out=sys.argv[1],
                            config=Config.from_dict(json.loads(sys.argv[3])))
try:
    run_generation(request, use_ray=False, progress=False)
except PlurelError as err:
    sys.exit(f"error: {err}")
"""


def start_run(out: Path, config) -> subprocess.Popen:
    args = [sys.executable, "-c", RUN, str(out), str(SEEDS), json.dumps(config.to_dict())]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped_half_written(out: Path, run: subprocess.Popen) -> Path:
    """Stop `run` (SIGSTOP) while it is writing a database; return the staged folder.

    A staged folder can be published between the look and the stop, so the folder is
    looked at again once the process is stopped, and the run resumed if it is gone."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        staged = [p for p in out.glob(f"{RUNS_DIR}/*/plurel-*") if p.is_dir()]
        if staged:
            os.kill(run.pid, signal.SIGSTOP)
            _wait_stopped(run.pid)
            if staged[0].is_dir():
                return staged[0]
            os.kill(run.pid, signal.SIGCONT)
        assert run.poll() is None, run.communicate()
        time.sleep(0.002)
    raise AssertionError("the first run never started writing a database")


def _wait_stopped(pid: int) -> None:
    """Wait until the kernel reports `pid` stopped (a signal is delivered asynchronously)."""
    stat = Path(f"/proc/{pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.001)


def assert_complete_and_intact(out: Path) -> None:
    for seed in range(SEEDS):
        folder = out / f"plurel-{seed}"
        assert (folder / "manifest.yaml").is_file(), folder
        read_tables(folder, verify=True)  # every table matches plurel.json's content hash
    index = read_index(OutputRoot(out))
    assert index.column("seed").to_pylist() == list(range(SEEDS))
    assert set(index.column("status").to_pylist()) <= {"generated", "skipped"}
    assert not (out / RUNS_DIR).exists() and not (out / "_lease.json").exists()


@pytest.fixture
def frozen_first_run(tmp_path, small_config):
    """A run stopped with a database half-written; it is resumed when the test ends."""
    run = start_run(tmp_path, small_config)
    staged = stopped_half_written(tmp_path, run)
    yield run, staged
    os.kill(run.pid, signal.SIGCONT)
    run.wait(timeout=120)


def test_a_second_run_refuses_in_one_line_naming_the_holder(frozen_first_run, tmp_path,
                                                            small_config):  # fmt: skip
    first, staged = frozen_first_run
    with pytest.raises(DatasetError) as err:
        run_generation(
            GenerationRequest(seeds=range(SEEDS), out=str(tmp_path), config=small_config),
            use_ray=False,
            progress=False,
        )
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert f"pid {first.pid}" in message and "being written by run" in message
    assert staged.is_dir()  # the refusing run removed nothing of the first one's


def test_another_process_can_no_longer_corrupt_a_running_output(tmp_path, small_config):
    """The old failure: run B removed run A's staged folder and A then marked a database
    complete that had no db/ and no manifest. Now B refuses and A completes intact."""
    first = start_run(tmp_path, small_config)
    stopped_half_written(tmp_path, first)
    try:
        second = start_run(tmp_path, small_config)
        _, second_err = second.communicate(timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert second_err.strip().startswith("error: output") and "being written" in second_err
    assert_complete_and_intact(tmp_path)


def test_a_killed_runs_lease_and_temporaries_are_taken_over(tmp_path, small_config, capfd):
    first = start_run(tmp_path, small_config)
    staged = stopped_half_written(tmp_path, first)
    first.kill()
    first.wait()
    assert (tmp_path / "_lease.json").is_file() and staged.exists()
    summary = run_generation(
        GenerationRequest(seeds=range(SEEDS), out=str(tmp_path), config=small_config),
        use_ray=False,
        progress=False,
    )
    assert summary.failed == 0
    notes = capfd.readouterr().err
    assert f"took over the lease of {tmp_path}" in notes and f"process {first.pid}" in notes
    assert "removed 1 temporary folder(s) of earlier killed runs" in notes
    assert_complete_and_intact(tmp_path)
