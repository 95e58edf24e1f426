"""`plurel-ray predict --context-grid … --ensemble N`: context tuning and ensembling
(`pipeline/context_tuning.py`) run over the command's Ray Data model actors.

    plan = tuning_plan(request)                       # checks the flags, before any work
    tuning = tune_predictions(plan, request, prepared, settings)
    tuning.predictions, tuning.chosen                 # the file's predictions and settings
    write_tuning_report(tuning, request, prepared)    # <out stem>_context.md

Every run — a grid setting on the val split, a seed of the ensemble, the requested split
with the chosen settings — is one `run_actors` pass over its items, so tuning spreads over
the actors as the predictions do, and each item's context is still drawn from (seed, item)
alone: the choice and the numbers are the same for any number of actors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plurel_ray.errors import ConfigError, EmptySourceError
from plurel_ray.pipeline.context_tuning import (
    METRIC_NAMES,
    TUNING_SPLIT,
    ItemRun,
    Tuning,
    ensemble_seeds,
    grid_settings,
    parse_context_grid,
    setting_label,
    tune_contexts,
    tuning_markdown,
)

if TYPE_CHECKING:
    from plurel_ray.pipeline.predict import PredictRequest, Prepared
    from plurel_ray.predict.core import ContextSettings
    from plurel_ray.predict.items import TaskItems

REPORT_SUFFIX = "_context.md"


@dataclass(frozen=True)
class TuningPlan:
    """The checked flags: the grid's values (None without --context-grid) and the seeds."""

    grid: dict[str, list[int]] | None
    seeds: list[int]


def tuning_plan(request: PredictRequest) -> TuningPlan | None:
    """The tuning `request` asks for, or None without --context-grid and --ensemble.

    Raises:
        ConfigError: a bad grid (named), --ensemble below 1.
    """
    grid = parse_context_grid(request.context_grid) if request.context_grid else None
    seeds = ensemble_seeds(request.settings.seed, request.ensemble)
    return None if grid is None and len(seeds) == 1 else TuningPlan(grid, seeds)


def split_labels(items: TaskItems) -> np.ndarray:
    """The true target of every item of a task split, float64 in item order (a boolean
    as 0/1), read from the file its rows are in."""
    import pandas as pd

    column = pd.read_parquet(items.file, columns=[items.target])[items.target]
    return column.to_numpy(dtype=np.float64)[items.rows]


def _val_prepared(prepared: Prepared, request: PredictRequest) -> Prepared:
    """The val split's items, every one, to tune on (the request's own when it asks val)."""
    from plurel_ray.predict.items import task_items
    from plurel_ray.store.item_sampler import ItemSampler

    if request.split == TUNING_SPLIT and request.rows is None:
        return prepared
    source = dataclasses.replace(prepared.source, split=TUNING_SPLIT)
    try:
        items = task_items(ItemSampler([source], batch_size=1))
    except EmptySourceError:
        raise ConfigError(f"--context-grid/--ensemble: {source.label} has no items in its "
                          f"{TUNING_SPLIT} split to tune and score on") from None  # fmt: skip
    return dataclasses.replace(prepared, source=source, items=items,
                               wanted=np.arange(len(items), dtype=np.int64))  # fmt: skip


def tune_predictions(
    plan: TuningPlan, request: PredictRequest, prepared: Prepared, settings: ContextSettings
) -> Tuning:
    """Choose the settings on val (with a grid), then predict the request's items with
    them, averaging the plan's seeds.

    Args:
        plan: `tuning_plan(request)`.
        request: the command's request (actors, checkpoint).
        prepared: the request's items.
        settings: the command's own settings, ctx_len resolved.
    """
    from plurel_ray.pipeline.predict import run_actors

    val = _val_prepared(prepared, request)
    labels = split_labels(val.items)[val.wanted]
    # The requested items; the same run as val's when they are val's items.
    target = request.split if request.rows is None else f"{request.split} ({request.rows})"

    def run(run_settings: ContextSettings, which: str) -> ItemRun:
        if which == TUNING_SPLIT:
            return ItemRun(run_actors(request, val, run_settings), labels)
        return ItemRun(run_actors(request, prepared, run_settings), None)

    grid = None if plan.grid is None else grid_settings(plan.grid, settings)
    return tune_contexts(run, grid=grid, default=settings, seeds=plan.seeds,
                         sem_type=prepared.items.sem_type, split=target)  # fmt: skip


def report_path(out: str | Path) -> Path:
    """Where the tuning report of predictions file `out` goes: `<stem>_context.md` beside it."""
    out = Path(out)
    return out.with_name(out.stem + REPORT_SUFFIX)


def write_tuning_report(tuning: Tuning, request: PredictRequest, prepared: Prepared) -> Path:
    """Write the Markdown report beside the predictions file and return its path."""
    path = report_path(request.out)
    title = f"{prepared.dataset_name} {prepared.source.label}"
    path.write_text(tuning_markdown(tuning, title))
    return path


def tuning_summary(tuning: Tuning) -> str:
    """One line: the chosen settings and the val gains of the grid and the ensemble."""
    parts = [f"contexts: {setting_label(tuning.chosen)}"]
    chosen = next((s for s in tuning.settings if s.chosen), None)
    if chosen is not None:
        parts.append(f"{METRIC_NAMES[tuning.metric]} {chosen.score:.4f} on {TUNING_SPLIT} "
                     f"({chosen.gain:+.4f} over the command's settings)")  # fmt: skip
    if tuning.ensemble is not None:
        parts.append(f"ensemble of {len(tuning.seeds)} seeds {tuning.ensemble.gain:+.4f}")
    return ", ".join(parts)
