"""jobs/transfer.py end to end on an embedded Ray with 2 CPU workers: the three runs on the
real-shaped databases and 2 synthetic ones, their curves at the schedule's steps, the
tables, and a rerun that resumes without training or evaluating anything twice."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from realshaped import write_all

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
SCHEDULE = [0, 1, 2, 4]  # --eval-pow2 over 4 steps
TINY = ["--recipe", "tiny", "--set", "batch_size=4", "--set", "ctx_len=64", "--set", "steps=4",
        "--set", "d_model=32", "--set", "d_ff=64", "--num-workers", "2",
        "--sampler-cpus", "0.5", "--no-progress", "--max-tasks", "3",
        "--eval-max-items", "12", "--eval-pow2"]  # fmt: skip


def _transfer(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "transfer.py"), *args], env=ENV,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _eval_files(storage: Path) -> dict[str, Path]:
    """Experiment → its run's eval.jsonl (run names end in -<experiment>-<hash>)."""
    found = {}
    for path in storage.glob("*/eval.jsonl"):
        experiment = path.parent.name.rsplit("-", 2)[-2]
        found[experiment] = path
    return found


@pytest.mark.slow  # three Ray Train runs, and the same command again
def test_transfer_runs_three_curves_on_one_schedule_and_resumes(tmp_path, tiny_config_file):
    real = write_all(tmp_path / "real")
    storage, out = tmp_path / "runs", tmp_path / "out"
    args = ["--datasets", *map(str, real.values()), "--leave-out", "clinic",
            "--data", str(tmp_path / "synthetic"), "--num-dbs", "2",
            "--config", str(tiny_config_file), "--storage", str(storage), "--out", str(out),
            *TINY]  # fmt: skip
    done = _transfer(*args)
    assert "(c) synthetic, then real" in done.stdout

    files = _eval_files(storage)
    assert sorted(files) == ["continued", "real", "synthetic"]
    first = {}
    for experiment, path in files.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        first[experiment] = rows
        for split in ("val", "test"):
            means = [r for r in rows if r["task"] is None and r["split"] == split]
            assert [r["step"] for r in means] == SCHEDULE, (experiment, split)
            # Every row scores the left-out clinic's tasks, never a training database's.
            assert {r["store"] for r in rows if r["task"]} == {"clinic"}
            assert all(r["items"] > 0 for r in means)

    with (out / "transfer.csv").open() as f:
        table = list(csv.DictReader(f))
    means = {(r["experiment"], r["split"]): r for r in table if r["task"] == "mean"}
    assert sorted(means) == sorted((e, s) for e in first for s in ("val", "test"))
    assert all(r["step"] == "4" for r in means.values())
    assert (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert "(b) synthetic, zero-shot" in (out / "transfer.md").read_text()

    # (c) starts from (b)'s final weights: its zero-shot step 0 is (b)'s last step.
    b_last = [r for r in first["synthetic"] if r["step"] == 4 and r["task"] is None]
    c_zero = [r for r in first["continued"] if r["step"] == 0 and r["task"] is None]
    assert [r["loss"] for r in c_zero] == pytest.approx([r["loss"] for r in b_last], rel=1e-4)

    _transfer(*args)  # the same command resumes: the three runs are finished
    assert sorted(_eval_files(storage)) == sorted(files)
    for experiment, path in _eval_files(storage).items():
        again = [json.loads(line) for line in path.read_text().splitlines()]
        assert again == first[experiment], experiment
