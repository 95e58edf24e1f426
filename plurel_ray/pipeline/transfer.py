"""The transfer experiment: does pretraining on synthetic databases help on a real one?

    runs = {"real": rows_a, "synthetic": rows_b, "continued": rows_c}   # eval.jsonl rows
    plot_curves(runs, "out/transfer.png")       # mean val/test metrics vs step, 3 curves
    write_tables(runs, "out")                   # transfer.csv, transfer.md: final scores

Three runs of one recipe, for the same number of steps and on the same evaluation
schedule, all scored during training on the held-out real database's tasks:

- real: trained only on the other real databases;
- synthetic: pretrained on synthetic databases; its curve is zero-shot on the held-out
  database (it never sees real data);
- continued: the synthetic run's final checkpoint trained further on the other real
  databases, as `real` is (its step 0 is the synthetic model's final zero-shot score).

The functions here read the runs' `eval.jsonl` rows (fields: `plurel_ray.train.eval_log`)
and nothing else, so they are pure and testable without training; `jobs/transfer.py`
runs the three trainings.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plurel_ray.pipeline.report import markdown_table, read_metrics

EXPERIMENTS = {
    "real": "(a) real only",
    "synthetic": "(b) synthetic, zero-shot",
    "continued": "(c) synthetic, then real",
}
SPLITS = ("val", "test")
# The mean row's metrics: `score` is the mean of mean AUROC and mean R² (eval_log).
METRICS = ("score", "auroc", "r2", "mae", "loss")
PLOTTED = {"score": "mean score (AUROC, R²)", "auroc": "mean AUROC", "r2": "mean R²"}
TABLE_COLUMNS = ("experiment", "run", "split", "task", "step", "items", *METRICS)
PLOT_FILE, CSV_FILE, MARKDOWN_FILE = "transfer.png", "transfer.csv", "transfer.md"


def read_eval_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of an `eval.jsonl`.

    Raises:
        DatasetError: the file is missing or a line is not JSON.
    """
    return read_metrics(path, missing="no evaluation during training (no eval.jsonl); run "
                                      "with --eval-every N or --eval-pow2")  # fmt: skip


def _value(row: Mapping[str, Any], metric: str) -> float:
    value = row.get(metric)
    return math.nan if value is None else float(value)


def mean_curve(rows: Sequence[Mapping[str, Any]], split: str, metric: str) -> list[tuple]:
    """(step, value) of the mean rows of `split`, ascending by step; NaN where the metric
    is undefined. A step evaluated twice (a resumed run) keeps its last row.

    Args:
        rows: one run's eval.jsonl rows.
        split: "val" or "test".
        metric: a mean-row field: score, auroc, r2, mae or loss.
    """
    means = {r["step"]: r for r in rows if r.get("task") is None and r["split"] == split}
    return [(step, _value(means[step], metric)) for step in sorted(means)]


def final_rows(runs: Mapping[str, Sequence[Mapping[str, Any]]],
               names: Mapping[str, str] | None = None) -> list[dict]:  # fmt: skip
    """One row per experiment, split and task (mean rows: task "mean") at each run's last
    evaluated step, with TABLE_COLUMNS.

    Args:
        runs: experiment (EXPERIMENTS key) → its eval.jsonl rows.
        names: experiment → run name, shown in the "run" column.
    """
    table = []
    for experiment, rows in runs.items():
        if not rows:
            continue
        last = max(r["step"] for r in rows)
        for split in SPLITS:
            at_last = [r for r in rows if r["step"] == last and r["split"] == split]
            # Task rows first, then the mean row, as eval.jsonl orders them.
            for row in sorted(at_last, key=lambda r: (r.get("task") is None, r.get("task") or "")):
                table.append({
                    "experiment": experiment, "run": (names or {}).get(experiment, ""),
                    "split": split, "task": row.get("task") or "mean", "step": last,
                    "items": row.get("items"), **{m: row.get(m) for m in METRICS},
                })  # fmt: skip
    return table


def plot_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike,
                title: str = "") -> Path:  # fmt: skip
    """Mean score, AUROC and R² vs step of every experiment (val solid, test dashed),
    one panel per metric, into a PNG.

    Args:
        runs: experiment → its eval.jsonl rows.
        path: the PNG to write.
        title: the figure's title (e.g. the held-out database).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(5 * len(PLOTTED), 4), squeeze=False)
    for ax, (metric, label) in zip(axes[0], PLOTTED.items(), strict=True):
        for index, (experiment, rows) in enumerate(runs.items()):
            for split, style in zip(SPLITS, ("-", "--"), strict=True):
                curve = mean_curve(rows, split, metric)
                if not curve or all(math.isnan(v) for _, v in curve):
                    continue
                steps, values = zip(*curve, strict=True)
                ax.plot(steps, values, style, marker="o", markersize=3, color=f"C{index}",
                        label=f"{EXPERIMENTS.get(experiment, experiment)} {split}")  # fmt: skip
        ax.set_xscale("symlog", linthresh=1)  # steps 0, 1, 2, 4, … evenly spaced
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def mean_table(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of the mean rows of `final_rows`: one per experiment and split.

    Args:
        table: `final_rows` output.
    """
    return markdown_table(
        ["experiment", "split", "step", "items", "score", "AUROC", "R²", "MAE"],
        [[EXPERIMENTS.get(r["experiment"], r["experiment"]), r["split"], r["step"],
          r["items"], *(_cell(r[m]) for m in ("score", "auroc", "r2", "mae"))]
         for r in table if r["task"] == "mean"],
    )  # fmt: skip


def markdown_report(table: Sequence[Mapping[str, Any]], title: str) -> list[str]:
    """The Markdown of the final scores: the mean rows per experiment and split, then
    every task's metric (AUROC for binary tasks, R² for regression).

    Args:
        table: `final_rows` output.
        title: the heading.
    """
    lines = [f"# {title}", "", f"![curves]({PLOT_FILE})", "", "## Mean over tasks, last step", ""]
    lines += mean_table(table)
    tasks = [r for r in table if r["task"] != "mean"]
    lines += ["", "## Per task, last step (AUROC for binary tasks, R² for regression)", ""]
    lines += markdown_table(
        ["experiment", "split", "task", "items", "metric"],
        [[EXPERIMENTS.get(r["experiment"], r["experiment"]), r["split"], r["task"],
          r["items"], _cell(r["auroc"] if r.get("auroc") is not None else r["r2"])]
         for r in tasks],
    )  # fmt: skip
    runs = {r["experiment"]: r["run"] for r in table if r["run"]}
    if runs:
        lines += ["", "Runs: " + ", ".join(f"{e} `{n}`" for e, n in runs.items())]
    return [*lines, ""]


def write_tables(runs: Mapping[str, Sequence[Mapping[str, Any]]], out: str | os.PathLike,
                 names: Mapping[str, str] | None = None,
                 title: str = "Transfer experiment") -> tuple[Path, Path]:  # fmt: skip
    """Write the final scores as `transfer.csv` (TABLE_COLUMNS) and `transfer.md`.

    Args:
        runs: experiment → its eval.jsonl rows.
        out: the output folder (created).
        names: experiment → run name.
        title: the Markdown heading.

    Returns:
        (CSV path, Markdown path).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = final_rows(runs, names)
    with (out / CSV_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in table)
    (out / MARKDOWN_FILE).write_text("\n".join(markdown_report(table, title)))
    return out / CSV_FILE, out / MARKDOWN_FILE
