"""The transfer experiment's curves and tables from eval.jsonl rows, and the job's flag
errors: one line, exit 2, before Ray or torch is imported."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.transfer import (
    final_rows,
    mean_curve,
    plot_curves,
    read_eval_rows,
    write_tables,
)

REPO = Path(__file__).resolve().parents[2]


def _rows(steps: list[int], base: float) -> list[dict]:
    """eval.jsonl rows of one run: two tasks and a mean row per (step, split)."""
    rows = []
    for step in steps:
        for split in ("val", "test"):
            auroc, r2 = base + step / 100, base / 2 + step / 200
            rows += [
                {"step": step, "split": split, "task": "user-churn", "store": "shop",
                 "task_type": "binary_classification", "items": 40, "loss": 0.7, "auroc": auroc},
                {"step": step, "split": split, "task": "orders-amount", "store": "shop",
                 "task_type": "regression", "items": 60, "loss": 0.5, "r2": r2, "mae": 0.8},
                {"step": step, "split": split, "task": None, "tasks": 2, "items": 100,
                 "loss": 0.6, "auroc": auroc, "r2": r2, "mae": 0.8, "score": (auroc + r2) / 2,
                 "seconds": 0.1},
            ]  # fmt: skip
    return rows


RUNS = {"real": _rows([0, 1, 2, 4], 0.5), "synthetic": _rows([0, 1, 2, 4], 0.6),
        "continued": _rows([0, 1, 2, 4], 0.7)}  # fmt: skip


def test_mean_curve_is_ascending_with_one_value_per_step_and_nan_when_undefined():
    rows = _rows([4, 0, 2], 0.5)
    rows.append({**rows[-1], "auroc": 0.99})  # step 2 evaluated again after a resume
    rows.append({"step": 8, "split": "val", "task": None, "items": 0, "auroc": None})
    curve = mean_curve(rows, "val", "auroc")
    assert [step for step, _ in curve] == [0, 2, 4, 8]
    assert curve[1] == (2, 0.52) and curve[3][1] != curve[3][1]  # NaN
    assert mean_curve(rows, "test", "auroc")[1] == (2, 0.99)


def test_final_rows_take_each_runs_last_step_tasks_then_mean():
    table = final_rows(RUNS, {"real": "tiny-transfer-real-1"})
    assert {r["step"] for r in table} == {4}
    real_val = [r for r in table if r["experiment"] == "real" and r["split"] == "val"]
    assert [r["task"] for r in real_val] == ["orders-amount", "user-churn", "mean"]
    assert real_val[-1]["score"] == pytest.approx((0.54 + 0.27) / 2)
    assert real_val[0]["run"] == "tiny-transfer-real-1"
    assert len(table) == 3 * 2 * 3


def test_plot_and_tables_are_written(tmp_path):
    png = plot_curves(RUNS, tmp_path / "out" / "transfer.png", "Transfer to shop")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv_path, markdown = write_tables(RUNS, tmp_path / "out")
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    means = {(r["experiment"], r["split"]): r for r in rows if r["task"] == "mean"}
    assert len(means) == 6 and float(means["continued", "test"]["auroc"]) == pytest.approx(0.74)
    text = markdown.read_text()
    assert "(c) synthetic, then real" in text and "transfer.png" in text
    assert "| (a) real only | val | 4 | 100 | 0.405 |" in text


def test_read_eval_rows_names_the_file_when_missing_or_broken(tmp_path):
    with pytest.raises(DatasetError, match=r"no eval\.jsonl"):
        read_eval_rows(tmp_path / "eval.jsonl")
    (tmp_path / "eval.jsonl").write_text(json.dumps({"step": 0}) + "\n{oops\n")
    with pytest.raises(DatasetError, match="line 2 is not JSON"):
        read_eval_rows(tmp_path / "eval.jsonl")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", "a", "b", "--leave-out", "a"], "--data DIR is required"),
        (["--data", "d", "--datasets", "a", "--leave-out", "a"], "at least two real datasets"),
        (["--data", "d", "--datasets", "a", "b"], "--leave-out NAME is required"),
        (["--data", "d", "--datasets", "a", "b", "--leave-out", "a", "--holdout", "1"],
         "--holdout must be 0"),
        (["--data", "d", "--datasets", "a", "b", "--leave-out", "a", "--hub-repo", "o/n"],
         "--hub-repo is not taken here"),
    ],
)  # fmt: skip
def test_bad_flags_fail_in_one_line_before_ray_or_torch(args, message, tmp_path):
    probe = (
        "import sys, runpy; sys.argv = ['jobs/transfer.py', *sys.argv[1:]]\n"
        "try:\n    runpy.run_path('jobs/transfer.py', run_name='__main__')\n"
        "finally:\n    print('heavy:', sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe, "--out", str(tmp_path), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("jobs/transfer.py: error: ") and message in line
    assert "heavy: []" in done.stdout
