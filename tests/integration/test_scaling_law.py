"""jobs/scaling_law.py as a subprocess on an embedded Ray: a 3-point grid (1, 2, 3
databases × 4 steps) generates its databases, trains, evaluates, fits the database axis
and plots; a rerun skips every finished point without starting Ray."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
# Three database counts give the one axis a 3-parameter fit; one step count leaves the
# token axis with a recorded reason instead (~25 s a point on 2 cores).
GRID = ["--grid", "tiny", "--grid-num-dbs", "1,2,3", "--grid-steps", "4", "--eval-max-items", "4",
        "--sampler-cpus", "0.5", "--max-tasks", "4", "--no-progress"]  # fmt: skip
RAY_STARTED = "Started a local Ray instance"


def _job(*args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / "scaling_law.py"), *args],
                          env=ENV, capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_config_file):
    root = tmp_path_factory.mktemp("scaling")
    flags = [*GRID, "--data", str(root / "data"), "--out", str(root / "out"),
             "--storage", str(root / "runs"), "--config", str(tiny_config_file)]  # fmt: skip
    return _job(*flags), flags, root


@pytest.mark.slow
def test_the_sweep_writes_a_row_per_point_the_fits_and_the_figure(sweep):
    done, _, root = sweep
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    with (root / "out" / "points.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((int(r["num_dbs"]), int(r["steps"])) for r in rows) == [(1, 4), (2, 4), (3, 4)]
    # tokens = steps × batch 4 × ctx 64 × 1 worker
    assert {int(r["tokens"]) for r in rows} == {4 * 4 * 64}
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("val_loss", "train_loss"))
    assert len({r["run"] for r in rows}) == 3
    fits = json.loads((root / "out" / "fits.json").read_text())
    assert set(fits["databases"]) == {"A", "alpha", "C", "r2", "n"} and fits["databases"]["n"] == 3
    assert "skipped" in fits["tokens"]
    assert (root / "out" / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    # Every run trained on the first N databases; database 4 (plurel-3) stayed held out.
    assert sorted(p.name for p in (root / "data" / "stores").iterdir()) == [
        f"plurel-{i}" for i in range(4)
    ]


@pytest.mark.slow
def test_a_rerun_skips_the_finished_points(sweep):
    done, flags, root = sweep
    assert done.returncode == 0
    before = (root / "out" / "points.csv").read_text()
    started = time.perf_counter()
    again = _job(*flags, "--verbose", timeout=120)  # verbose: Ray would say it started
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert RAY_STARTED not in again.stdout + again.stderr
    assert (root / "out" / "points.csv").read_text() == before
    assert time.perf_counter() - started < 60


def test_bad_flags_fail_before_any_work(tmp_path):
    done = _job("--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                "--set", "steps=5", timeout=60)  # fmt: skip
    assert done.returncode == 1 and "steps" in done.stderr
    assert not (tmp_path / "d").exists()
