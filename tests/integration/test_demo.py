"""`plurel-ray demo` as a subprocess on an embedded Ray: 3 databases, 20 steps, one run
folder with data, checkpoint, metrics, evaluation and a report with real figures."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Logical oversubscription as in test_jobs_pretrain: trainer + sampler + generators on 2 cores.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)  # an embedded Ray, whatever the calling shell points at
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _demo(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plurel_ray.cli", "demo", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = _demo("--out", str(out), "--num-dbs", "3", "--steps", "20", "--no-progress")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (run,) = out.glob("demo-*")
    return done, run


def _assert_drawn(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert imread(path).std() > 0.01  # not a blank canvas


@pytest.mark.slow
def test_demo_writes_one_run_folder_and_prints_where_it_is(demo):
    done, run = demo
    assert f"run folder:  {run}" in done.stdout
    assert f"report:      {run / 'report.md'}" in done.stdout
    assert sorted(p.name for p in (run / "data" / "stores").iterdir()) == [
        "plurel-0", "plurel-1", "plurel-2",
    ]  # fmt: skip
    (checkpoint,) = (run / "checkpoints").glob("step_*")
    assert checkpoint.name == "step_00000020" and (checkpoint / "model.safetensors").is_file()
    assert f"checkpoint:  {checkpoint}" in done.stdout
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 20


@pytest.mark.slow
def test_demo_evaluates_the_held_out_database(demo):
    _, run = demo
    with (run / "eval_val.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["store"] for row in rows} == {"plurel-2"}


@pytest.mark.slow
def test_demo_report_has_figures_metrics_and_throughput(demo):
    _, run = demo
    _assert_drawn(run / "loss.png")
    _assert_drawn(run / "schema.png")
    report = (run / "report.md").read_text()
    expected = ["![training loss](loss.png)", "![schema](schema.png)", "plurel-2", "AUROC",
                "databases/s", "cells/s", "tokens/s", "data wait", "| train |"]  # fmt: skip
    assert [text for text in expected if text not in report] == []


def test_demo_refuses_a_single_database_in_one_line(tmp_path):
    done = _demo("--out", str(tmp_path), "--num-dbs", "1", timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "plurel-ray: error: demo needs --num-dbs ≥ 2 (one is held out) and --steps ≥ 1, "
        "got 1 and 300"
    ]
    assert not any(tmp_path.iterdir())
