"""The figure of one sampled context (`show_context.describe_context`'s description).

One column per table, labelled with its name and how many rows and cells of the context
it holds; the item's table first. Each row is a box with its row number, timestamp and
its first cells as `column=value` (a masked cell reads `column=?`); the item's row is red,
a row with another masked cell orange. Lines join a row to its parents (foreign keys,
child → parent). A table with more than `MAX_ROWS_SHOWN` rows shows the rows nearest the
item (the item, its parents and children, then the earliest nodes) and one box counting
the rest, which the edges of the hidden rows join instead; so a context of 1024 cells
stays readable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from plurel_ray.pipeline.report import _pyplot

# Rows drawn per table; the others are counted in one box.
MAX_ROWS_SHOWN = 24
# Cells written in a row's box, and characters of its cell line.
CELLS_SHOWN, LINE_CHARS = 3, 44
# Geometry in inches: matplotlib's 7 pt text is about 0.1 in high.
_COL_W, _GAP_X, _ROW_H, _BOX_H, _MARGIN, _HEADER = 3.1, 1.1, 0.46, 0.38, 0.3, 0.9
_ITEM, _MASKED, _PLAIN, _MORE = "#fadbd8", "#fdebd0", "#eaf2f8", "#f2f3f4"
_ITEM_EDGE, _MASKED_EDGE, _PLAIN_EDGE = "#c0392b", "#e67e22", "#5d6d7e"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 14 else text[:13] + "…"


def _row_lines(row: dict, time_col: str | None) -> tuple[str, str]:
    """The two lines of a row's box: row number and time, then its first cells."""
    head = f"row {row['row']}"
    if row["timestamp"]:
        head += f" · {row['timestamp'][:16].replace('T', ' ')}"
    # Masked cells first: they are what the box is looked at for.
    cells = sorted(
        (c for c in row["cells"] if c["column"] != time_col or c["masked"]),
        key=lambda c: not c["masked"],
    )  # the time is on the first line
    shown = [f"{c['column']}=?" if c["masked"] else f"{c['column']}={_short(c['value'])}"
             for c in cells[:CELLS_SHOWN]]  # fmt: skip
    line = "  ".join(shown) + ("  …" if len(cells) > CELLS_SHOWN else "")
    return head, line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def _shown_rows(description: dict) -> dict[str, tuple[list[dict], int]]:
    """Per table, the rows drawn and how many are hidden.

    A long table keeps the item, its parents and children, then the rows joined to rows
    already drawn. Each column is ordered by the mean place of its rows' neighbours in the
    columns to its left (the item first), so that edges cross less.
    """
    target = (description.get("target") or {}).get("node")
    neighbours: dict[int, list[int]] = {}
    for child, parent in description["edges"]:
        neighbours.setdefault(child, []).append(parent)
        neighbours.setdefault(parent, []).append(child)
    near = {target, *neighbours.get(target, [])}
    by_table: dict[str, list[dict]] = {t["name"]: [] for t in description["tables"]}
    for row in description["rows"]:
        by_table[row["table"]].append(row)
    placed: dict[int, float] = {}

    def centre(row: dict) -> float:
        seen = [placed[n] for n in neighbours.get(row["node"], []) if n in placed]
        return sum(seen) / len(seen) if seen else float("inf")

    shown = {}
    for name, rows in by_table.items():
        ranked = sorted(rows, key=lambda r: (r["node"] != target, r["node"] not in near,
                                             centre(r) == float("inf"), r["node"]))  # fmt: skip
        keep = ranked if len(ranked) <= MAX_ROWS_SHOWN else ranked[: MAX_ROWS_SHOWN - 1]
        keep.sort(key=lambda r: (r["node"] != target, centre(r), r["node"]))
        placed.update({r["node"]: i for i, r in enumerate(keep)})
        placed.update({r["node"]: len(keep) for r in rows if r["node"] not in placed})
        shown[name] = (keep, len(rows) - len(keep))
    return shown


def draw_context(description: dict, path: str | os.PathLike) -> Path:
    """Draw a context description into a PNG.

    Args:
        description: `show_context.describe_context`'s output.
        path: the PNG to write.

    Returns:
        `path`.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch, Patch

    shown = _shown_rows(description)
    tallest = max((len(rows) + (hidden > 0) for rows, hidden in shown.values()), default=1)
    width = max(len(shown) * _COL_W + (len(shown) - 1) * _GAP_X + 2 * _MARGIN, 7.0)
    height = tallest * _ROW_H + _HEADER + 2 * _MARGIN + 0.5  # room for the legend
    plt = _pyplot()
    fig = plt.figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    d = description
    ax.text(width / 2, height - 0.22,
            f"{Path(d['store']).name} · {d['task']} ({d['split']}) item {d['item']} · "
            f"{d['cells']}/{d['ctx_len']} cells, {len(d['rows'])} rows · seed {d['seed']}, "
            f"max_bfs_width {d['max_bfs_width']}, {d['context_rules']} rules",
            ha="center", va="center", fontsize=10, weight="bold")  # fmt: skip
    anchor: dict[int, tuple[float, float]] = {}  # node → (left x, centre y) of its box
    top = height - _MARGIN - _HEADER
    for column, table in enumerate(d["tables"]):
        x = _MARGIN + column * (_COL_W + _GAP_X)
        ax.text(x + _COL_W / 2, top + 0.32, table["name"], ha="center", va="center",
                fontsize=10, weight="bold", color="#34495e")  # fmt: skip
        ax.text(x + _COL_W / 2, top + 0.12, f"{table['rows']} rows, {table['cells']} cells",
                ha="center", va="center", fontsize=8, color="#566573")  # fmt: skip
        rows, hidden = shown[table["name"]]
        for i, row in enumerate(rows):
            y = top - (i + 0.5) * _ROW_H
            masked = any(c["masked"] for c in row["cells"])
            face, edge = ((_ITEM, _ITEM_EDGE) if row["item"] else
                          (_MASKED, _MASKED_EDGE) if masked else (_PLAIN, _PLAIN_EDGE))  # fmt: skip
            ax.add_patch(FancyBboxPatch((x, y - _BOX_H / 2), _COL_W, _BOX_H,
                                        boxstyle="round,pad=0.01", facecolor=face,
                                        edgecolor=edge, lw=2 if row["item"] else 0.8,
                                        zorder=2))  # fmt: skip
            head, cells = _row_lines(row, table["time_col"])
            ax.text(x + 0.06, y + 0.08, head, va="center", fontsize=7, zorder=3,
                    weight="bold" if row["item"] else "normal")  # fmt: skip
            ax.text(
                x + 0.06, y - 0.09, cells, va="center", fontsize=6.5, family="monospace", zorder=3
            )
            anchor[row["node"]] = (x, y)
        if hidden:
            y = top - (len(rows) + 0.5) * _ROW_H
            ax.add_patch(FancyBboxPatch((x, y - _BOX_H / 2), _COL_W, _BOX_H,
                                        boxstyle="round,pad=0.01", facecolor=_MORE,
                                        edgecolor=_PLAIN_EDGE, ls="--", zorder=2))  # fmt: skip
            ax.text(x + _COL_W / 2, y, f"+{hidden} more rows", ha="center", va="center",
                    fontsize=7, style="italic", zorder=3)  # fmt: skip
            drawn = {r["node"] for r in rows}
            for row in d["rows"]:
                if row["table"] == table["name"] and row["node"] not in drawn:
                    anchor[row["node"]] = (x, y)
    target = (d.get("target") or {}).get("node")
    drawn_edges = set()
    for child, parent in d["edges"]:
        (cx, cy), (px, py) = anchor[child], anchor[parent]
        if (cx, cy, px, py) in drawn_edges:
            continue  # several hidden rows to the same parent: one line
        drawn_edges.add((cx, cy, px, py))
        if px == cx:  # same table (a self-reference): an arc on the right side
            start, end, bend = (cx + _COL_W, cy), (px + _COL_W, py), -0.5
        else:
            start = (cx + _COL_W, cy) if cx < px else (cx, cy)
            end = (px, py) if cx < px else (px + _COL_W, py)
            bend = 0.0
        on_item = target in (child, parent)
        ax.annotate("", xy=end, xytext=start, zorder=1,
                    arrowprops={"arrowstyle": "-|>", "lw": 1.1 if on_item else 0.6,
                                "color": _ITEM_EDGE if on_item else "#7f8c8d",
                                "alpha": 0.9 if on_item else 0.45, "shrinkA": 0,
                                "shrinkB": 0, "connectionstyle": f"arc3,rad={bend}"})  # fmt: skip
    legend = [Patch(facecolor=_ITEM, edgecolor=_ITEM_EDGE, label="item's row (target cell =?)"),
              Patch(facecolor=_MASKED, edgecolor=_MASKED_EDGE, label="row with a masked cell"),
              Patch(facecolor=_PLAIN, edgecolor=_PLAIN_EDGE, label="row"),
              Patch(facecolor=_MORE, edgecolor=_PLAIN_EDGE, ls="--", label="rows not drawn"),
              Line2D([], [], color="#7f8c8d", label="foreign key (child → parent)")]  # fmt: skip
    ax.legend(handles=legend, loc="lower center", ncol=5, fontsize=7, frameon=False,
              bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
