"""Run a scaling-law grid: one pretraining run per (databases, steps), each evaluated on
the same held-out databases, then the power-law fits and the figure.

    sweep = SweepRequest(grid=grid("tiny"), data="data/scaling", out="out/scaling")
    points = run_sweep(sweep)   # out/: points.csv, fits.json, scaling.png, points/*.json

The grid's `max(num_dbs) + holdout` databases are generated once (seeds S…; reruns reuse
them); point N trains on the first N and every point is scored on the last `holdout`,
so the losses differ only by what the axes vary. Points run as concurrent TorchTrainer
runs from a thread pool (each run is an actor-driven controller; the driver thread only
waits on it). A point is done when `out/points/<run>.json` exists: reruns skip it without
starting Ray, and an unfinished run resumes from its last checkpoint (same run name).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError, PlurelError
from plurel_ray.pipeline.data_selection import synthetic_sources
from plurel_ray.pipeline.prepare import PreparedData, prepare_synthetic
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.pipeline.scaling import (
    ScalingGrid,
    ScalingPoint,
    fit_axes,
    fits_to_json,
    plot_scaling,
)
from plurel_ray.pipeline.train_run import TrainRun, run_name, train_and_evaluate
from plurel_ray.train.config import Recipe, recipe

POINT_COLUMNS = ("num_dbs", "steps", "tokens", "val_loss", "train_loss", "run", "seconds")
POINTS_DIR = "points"


@dataclass(frozen=True)
class SweepRequest:
    """A scaling-law sweep, as plain data.

    Args:
        grid: the (databases × steps) grid and its recipe.
        data: where the databases are generated (stores in `data/stores/`).
        out: where points.csv, fits.json, scaling.png and per-point results go.
        storage: Ray Train's folder of the runs' checkpoints.
        overrides: recipe fields replaced on top of the grid's (not steps).
        config: the generator configuration of the databases.
        seed_offset: the first database seed.
        concurrent: grid points trained at the same time.
        resources: per run, as in `jobs/pretrain.py`.
        max_tasks: tasks per database at most, in training and evaluation.
        progress: progress bars for generation, embedding and training.
    """

    grid: ScalingGrid
    data: str
    out: str
    storage: str = "runs"
    overrides: dict[str, Any] = field(default_factory=dict)
    config: Config = field(default_factory=Config)
    seed_offset: int = 0
    concurrent: int = 1
    resources: RunResources = field(default_factory=RunResources)
    max_tasks: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.concurrent < 1:
            raise ConfigError("--concurrent must be ≥ 1")
        if "steps" in self.overrides:
            raise ConfigError("--set steps: each grid point sets its own steps; choose a grid")
        self.point_recipe(min(self.grid.steps))  # unknown fields fail before any work

    def point_recipe(self, steps: int) -> Recipe:
        """The recipe of the points with `steps` steps."""
        return recipe(self.grid.recipe, **{**self.grid.overrides, **self.overrides, "steps": steps})

    def tokens(self, steps: int) -> int:
        """Cells a run of `steps` steps trains on: steps × batch × ctx × workers."""
        train = self.point_recipe(steps).train
        return steps * train.batch_size * train.ctx_len * self.resources.num_workers

    def run_name(self, num_dbs: int, steps: int) -> str:
        """`scaling-<N>dbs-<S>steps-<hash>`: the hash covers what else defines the run
        (recipe, overrides, data, seeds, workers), so a changed sweep never resumes an
        unrelated run."""
        identity = {"recipe": dataclasses.asdict(self.point_recipe(steps)), "data": self.data,
                    "seed_offset": self.seed_offset, "holdout": self.grid.holdout,
                    "config": self.config.to_dict(), "workers": self.resources.num_workers,
                    "max_tasks": self.max_tasks}  # fmt: skip
        return run_name(f"scaling-{num_dbs}dbs-{steps}steps", identity)


def prepare_data(request: SweepRequest) -> PreparedData:
    """The first `max(num_dbs)` stores for training and the last `holdout` for scoring,
    generating and embedding what is missing; when every store exists, Ray is not started.

    Raises:
        DatasetError: a seed failed (rerun to retry it).
    """
    seeds = range(request.seed_offset, request.seed_offset + request.grid.total_dbs)
    return prepare_synthetic(Path(request.data), seeds, request.grid.holdout, request.config,
                             progress=request.progress)  # fmt: skip


def run_point(request: SweepRequest, num_dbs: int, steps: int, data: PreparedData) -> ScalingPoint:
    """Train on the first `num_dbs` stores for `steps` steps (resuming a started run),
    evaluate the final checkpoint on the held-out stores (val split), record
    out/points/<run>.json."""
    name = request.run_name(num_dbs, steps)
    record = Path(request.out) / POINTS_DIR / f"{name}.json"
    if record.is_file():
        return ScalingPoint(**json.loads(record.read_text()))
    chosen = request.point_recipe(steps)
    sources, held_out = synthetic_sources(data, "val", request.max_tasks, num_train=num_dbs)
    run = TrainRun(
        recipe=chosen, sources=sources, eval_sources=held_out,
        name=name, storage=str(Path(request.storage).resolve()), resources=request.resources,
        eval_split="val", eval_max_items=request.grid.eval_max_items, progress=request.progress,
    )  # fmt: skip
    # Concurrent points would interleave their lines; a point says its result when done.
    outcome = train_and_evaluate(run, say=lambda _: None)
    losses = [row["loss"] for row in outcome.rows if math.isfinite(row.get("loss", math.nan))]
    if not losses:
        raise DatasetError(f"{name}: no held-out task has items in its val split; raise the "
                           "grid's holdout or generate larger databases")  # fmt: skip
    point = ScalingPoint(num_dbs=num_dbs, steps=steps, tokens=request.tokens(steps),
                         val_loss=sum(losses) / len(losses),
                         train_loss=float(outcome.steps[-1]["loss"]), run=name,
                         seconds=round(sum(outcome.seconds.values()), 1))  # fmt: skip
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(dataclasses.asdict(point)))
    return point


def run_sweep(request: SweepRequest, log: Callable[[str], None] = print) -> list[ScalingPoint]:
    """Run every grid point (`request.concurrent` at a time), then write points.csv,
    fits.json and scaling.png into `request.out`; returns the points, cheapest first.

    Raises:
        PlurelError: bad data; or, after the other points finished and their results were
            written, the first error of a failed point (rerun to retry it).
    """
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(request)
    log(f"{len(data.train)} training and {len(data.held_out)} held-out databases in "
        f"{request.data}")  # fmt: skip
    grid_points = request.grid.points()

    def one(point: tuple[int, int]) -> ScalingPoint | PlurelError:
        num_dbs, steps = point
        try:
            done = run_point(request, num_dbs, steps, data)
        except PlurelError as err:
            log(f"point {num_dbs} dbs × {steps} steps failed: {err}")
            return err
        log(f"point {num_dbs} dbs × {steps} steps: val loss {done.val_loss:.4f} "
            f"({done.run}, {done.seconds:.0f} s)")  # fmt: skip
        return done

    with ThreadPoolExecutor(max_workers=request.concurrent) as pool:
        results = list(pool.map(one, grid_points))
    points = [r for r in results if isinstance(r, ScalingPoint)]
    if points:
        write_results(points, out)
        log(f"wrote {out / 'points.csv'}, {out / 'fits.json'}, {out / 'scaling.png'}")
    errors = [r for r in results if not isinstance(r, ScalingPoint)]
    if errors:
        raise type(errors[0])(f"{len(errors)} of {len(results)} grid points failed; rerun to "
                              f"retry them. First: {errors[0]}")  # fmt: skip
    return points


def write_results(points: Sequence[ScalingPoint], out: Path) -> dict:
    """points.csv, fits.json and scaling.png of `points` in `out`; returns the fits."""
    with (out / "points.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=POINT_COLUMNS)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(p) for p in points)
    fits = fit_axes(points)
    (out / "fits.json").write_text(json.dumps(fits_to_json(fits), indent=2) + "\n")
    plot_scaling(points, fits, out / "scaling.png")
    return fits
