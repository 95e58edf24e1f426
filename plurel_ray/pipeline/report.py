"""The figures and the Markdown report of a run: loss curve, schema diagram, metrics.

    steps = read_metrics("runs/demo/metrics.jsonl")
    plot_loss(steps, "runs/demo/loss.png")
    plot_schema("runs/demo/data/plurel-0", "runs/demo/schema.png")
    lines = eval_table(rows)                       # Markdown, for report.md
    figures = plot_eval(read_metrics("runs/r/eval.jsonl"), "runs/r")   # metric vs step

Figures use matplotlib's Agg backend (no display needed). The schema diagram is drawn
with matplotlib from a RelBench-3 folder's manifest.yaml and its tables' parquet
schemas, because RelBench's own renderer needs graphviz.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from plurel_ray.errors import DatasetError
from plurel_ray.names import check_name

# Smoothing window of the loss curve, as a fraction of the steps (at least 1 step).
SMOOTH_FRAC = 0.05
# Schema diagram geometry, in inches: matplotlib's 8 pt text is 0.11 in high.
_BOX_W, _ROW_H, _GAP_X, _GAP_Y, _MARGIN = 3.0, 0.24, 1.4, 0.5, 0.3


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display, in workers and CI
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path: str | os.PathLike, missing: str = "no such metrics file") -> list[dict]:
    """The records of a JSON-lines file: `metrics.jsonl` (one per training step) or
    `eval.jsonl` (one per evaluated step, split and task).

    Args:
        path: the file.
        missing: what the error says when the file is absent.

    Raises:
        DatasetError: the file is missing or a line is not JSON.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: {missing}") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            if line.strip():
                records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: line {number} is not JSON ({err.msg})") from None
    return records


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over `window` values (shorter at the start), NaNs skipped."""
    out, kept = [], []
    for value in values:
        kept = [*kept[-(window - 1):], value] if window > 1 else [value]  # fmt: skip
        finite = [v for v in kept if not math.isnan(v)]
        out.append(sum(finite) / len(finite) if finite else math.nan)
    return out


def plot_loss(steps: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write the training-loss curve: the loss of each step and a smoothed line.

    Args:
        steps: records with "step" and "loss" (a metrics.jsonl).
        path: the PNG to write.

    Raises:
        DatasetError: no records with a loss.
    """
    points = [(s["step"], float(s["loss"])) for s in steps if "loss" in s]
    if not points:
        raise DatasetError(f"{path}: no steps with a loss to plot")
    x, y = zip(*points, strict=True)
    window = max(1, round(len(y) * SMOOTH_FRAC))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(x, y, color="tab:blue", alpha=0.35, linewidth=1, label="loss")
    ax.plot(x, smooth(y, window), color="tab:blue", linewidth=2,
            label=f"mean of the last {window} steps")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class TableSchema:
    """One table of a RelBench-3 folder: its columns (name, type) and key columns."""

    name: str
    columns: tuple[tuple[str, str], ...]
    pkey: str | None
    time_col: str | None
    fkeys: tuple[tuple[str, str], ...]  # (column, parent table)

    def label(self, column: str, dtype: str) -> str:
        marks = ["PK"] if column == self.pkey else []
        marks += [f"FK → {parent}" for col, parent in self.fkeys if col == column]
        marks += ["time"] if column == self.time_col else []
        return f"{column}: {dtype}" + (f"  [{', '.join(marks)}]" if marks else "")


def read_schema(dataset: str | os.PathLike) -> list[TableSchema]:
    """The tables of a RelBench-3 folder, from manifest.yaml and `db/<table>.parquet`.

    Raises:
        DatasetError: no manifest.yaml, no tables in it, or a table's parquet is missing.
    """
    folder = Path(dataset)
    try:
        manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: not a RelBench-3 folder (no manifest.yaml)") from None
    tables = (manifest or {}).get("tables") or {}
    if not tables:
        raise DatasetError(f"{folder}/manifest.yaml: lists no tables")
    schemas = []
    for name, spec in tables.items():
        check_name("table", name, DatasetError, where=f"{folder}/manifest.yaml: ")
        parquet = folder / "db" / f"{name}.parquet"
        try:
            arrow = pq.read_schema(parquet)
        except FileNotFoundError:
            raise DatasetError(f"{parquet}: missing (table {name} of manifest.yaml)") from None
        columns = tuple((f.name, str(f.type).replace("[us]", "").replace("[ns]", ""))
                        for f in arrow)  # fmt: skip
        spec = spec or {}
        schemas.append(TableSchema(name, columns, spec.get("pkey"), spec.get("time_col"),
                                   tuple((spec.get("fkeys") or {}).items())))  # fmt: skip
    return schemas


def _levels(tables: Sequence[TableSchema]) -> dict[str, int]:
    """Column of each table in the diagram: parents left of their children (a table's
    level is one more than its deepest parent's; a cycle is cut where it closes)."""
    parents = {t.name: [p for _, p in t.fkeys if p != t.name] for t in tables}
    levels: dict[str, int] = {}

    def level(name: str, visiting: frozenset) -> int:
        if name in levels:
            return levels[name]
        known = [p for p in parents.get(name, []) if p in parents and p not in visiting]
        levels[name] = 1 + max((level(p, visiting | {name}) for p in known), default=-1)
        return levels[name]

    for table in tables:
        level(table.name, frozenset())
    return levels


def plot_schema(dataset: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Draw the schema of a RelBench-3 folder: one box per table listing its columns
    and types (PK, FK and time column marked), an arrow from each foreign-key column to
    the table it references.

    Raises:
        DatasetError: as `read_schema`.
    """
    from matplotlib.patches import FancyBboxPatch

    tables = read_schema(dataset)
    levels = _levels(tables)
    by_level: dict[int, list[TableSchema]] = {}
    for table in tables:
        by_level.setdefault(levels[table.name], []).append(table)
    heights = {t.name: (len(t.columns) + 1) * _ROW_H for t in tables}
    column_h = [sum(heights[t.name] for t in group) + _GAP_Y * (len(group) - 1)
                for group in by_level.values()]  # fmt: skip
    width = len(by_level) * _BOX_W + (len(by_level) - 1) * _GAP_X + 2 * _MARGIN
    height = max(column_h) + 2 * _MARGIN + 0.4  # room for the title
    plt = _pyplot()
    fig = plt.figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.text(width / 2, height - 0.25, f"{Path(dataset).name}: {len(tables)} tables",
            ha="center", va="center", fontsize=11, weight="bold")  # fmt: skip
    rows: dict[tuple[str, str], tuple[float, float]] = {}  # (table, column) → (left x, y)
    for lvl in sorted(by_level):
        x = _MARGIN + lvl * (_BOX_W + _GAP_X)
        top = height - _MARGIN - 0.4
        for table in by_level[lvl]:
            h = heights[table.name]
            ax.add_patch(FancyBboxPatch((x, top - h), _BOX_W, h, boxstyle="round,pad=0.02",
                                        facecolor="#f4f7fb", edgecolor="#34495e"))  # fmt: skip
            ax.add_patch(FancyBboxPatch((x, top - _ROW_H), _BOX_W, _ROW_H,
                                        boxstyle="round,pad=0.02", facecolor="#34495e",
                                        edgecolor="#34495e"))  # fmt: skip
            ax.text(x + _BOX_W / 2, top - _ROW_H / 2, table.name, ha="center", va="center",
                    color="white", fontsize=9, weight="bold")  # fmt: skip
            for i, (column, dtype) in enumerate(table.columns):
                y = top - (i + 1.5) * _ROW_H
                keyed = column == table.pkey or any(c == column for c, _ in table.fkeys)
                ax.text(x + 0.08, y, table.label(column, dtype), va="center", fontsize=8,
                        weight="bold" if keyed else "normal")  # fmt: skip
                rows[(table.name, column)] = (x, y)
            top -= h + _GAP_Y
    for table in tables:
        for column, parent in table.fkeys:
            target = next((t for t in tables if t.name == parent), None)
            if target is None or (table.name, column) not in rows:
                continue  # a manifest naming a missing table: nothing to point at
            x0, y0 = rows[(table.name, column)]
            px, py = rows.get((parent, target.pkey or ""), (None, None))
            if px is None:  # no primary key column: point at the header
                px, py = rows[(parent, target.columns[0][0])]
            end_x = px + _BOX_W if px < x0 else px  # the parent's near side
            ax.annotate("", xy=(end_x, py), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "#c0392b", "lw": 1.2,
                                    "connectionstyle": "arc3,rad=0.15"})  # fmt: skip
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table; floats with 4 significant decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def eval_table(rows: Sequence[dict]) -> list[str]:
    """The evaluation rows of `evaluate_run` as a Markdown table: task, type, items,
    loss, and AUROC (boolean targets) or R² and MAE (number targets)."""

    def score(row: dict) -> str:
        shown = []
        for key, name in (("auroc", "AUROC"), ("r2", "R²"), ("mae", "MAE")):
            if row.get(key) not in (None, ""):
                value = float(row[key])
                # NaN: e.g. the items' targets are all equal, so the score is undefined.
                shown.append(f"{name} {value:.4f}" if not math.isnan(value) else f"{name} n/a")
        return " · ".join(shown) or row.get("note", "")

    def loss(row: dict) -> float | str:
        return float(row["loss"]) if row.get("loss") not in (None, "") else ""

    table = [(r["store"], r["task"], r["task_type"], r["items"], loss(r), score(r)) for r in rows]
    return markdown_table(("store", "task", "type", "items", "loss", "score"), table)


def _eval_metric(rows: Sequence[dict]) -> tuple[str, str]:
    """(key, name) of the metric a task's rows carry: AUROC, else R²."""
    return ("auroc", "AUROC") if any(r.get("auroc") is not None for r in rows) else ("r2", "R²")


def _plot_eval_curve(rows: Sequence[dict], key: str, ylabel: str, title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for split, color in (("val", "tab:blue"), ("test", "tab:orange")):
        points = [(r["step"], r[key]) for r in rows
                  if r["split"] == split and r.get(key) is not None]  # fmt: skip
        if points:
            x, y = zip(*sorted(points), strict=True)
            ax.plot(x, y, marker="o", color=color, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_eval(rows: Sequence[dict], folder: str | os.PathLike) -> list[tuple[str, str]]:
    """Metric-vs-step PNGs of an eval.jsonl: one for the mean score over tasks and one per
    task (AUROC or R²), val and test as two lines.

    Args:
        rows: the records of eval.jsonl (`train/eval_log.py`).
        folder: where the PNGs go (eval-mean.png, eval-<store>-<task>.png).

    Returns:
        (title, file name) of each figure written, the mean first.
    """
    folder = Path(folder)
    means = [r for r in rows if r.get("task") is None]
    figures = []
    if means:
        _plot_eval_curve(means, "score", "mean score", "Mean over held-out tasks "
                         "(mean of mean AUROC and mean R²)", folder / "eval-mean.png")  # fmt: skip
        figures.append(("mean over tasks", "eval-mean.png"))
    by_task: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row.get("task") is not None:
            by_task.setdefault((row.get("store", ""), row["task"]), []).append(row)
    for (store, task), task_rows in by_task.items():
        key, name = _eval_metric(task_rows)
        if not any(r.get(key) is not None for r in task_rows):
            continue  # never scored (no items, or one class only): nothing to draw
        file = "eval-" + re.sub(r"[^A-Za-z0-9._-]+", "-", f"{store}-{task}") + ".png"
        _plot_eval_curve(task_rows, key, name, f"{task} ({store})", folder / file)
        figures.append((f"{task} ({store}), {name}", file))
    return figures


def eval_summary_table(rows: Sequence[dict]) -> list[str]:
    """The evaluations during training as a Markdown table: per task (and the mean) and
    split, its metric at step 0, at the step of the best mean val score, and at the last
    step, with the items scored."""
    means = [r for r in rows if r.get("task") is None]
    if not means:
        return []
    first, last = min(r["step"] for r in rows), max(r["step"] for r in rows)
    val = [r for r in means if r["split"] == "val" and r.get("score") is not None]
    best = max(val, key=lambda r: (r["score"], -r["step"]))["step"] if val else None
    # The best step may be the first or the last: each step gets one column.
    steps = sorted({first, last, *([best] if best is not None else [])})
    header = ("task", "split", "metric", "items", *(f"step {s}" + (" (best)" if s == best else "")
                                                    for s in steps))  # fmt: skip
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("task") is None, row.get("store"), row.get("task"),
                           row["split"]), []).append(row)  # fmt: skip
    table = []
    for (is_mean, store, task, split), group in sorted(groups.items(), key=lambda g: (
            g[0][0], str(g[0][1]), str(g[0][2]), g[0][3])):  # fmt: skip
        key, name = ("score", "score") if is_mean else _eval_metric(group)
        at = {r["step"]: r for r in group}
        values = [at[s].get(key) if s in at else None for s in steps]
        table.append(("(mean)" if is_mean else f"{task} ({store})", split, name,
                      at.get(last, group[-1]).get("items", ""),
                      *(math.nan if v is None else float(v) for v in values)))  # fmt: skip
    return markdown_table(header, table)
