"""Scaling laws of pretraining: grids of (databases, steps), power-law fits and plots.

    fit = fit_power_law([8, 16, 32, 64], [1.9, 1.6, 1.4, 1.25])    # L = A·X^(−α) + C
    fits = fit_axes(points)        # "databases" at the most tokens, "tokens" at the most dbs
    plot_scaling(points, fits, "out/scaling.png")

The paper's experiment (docs/model.md) pretrains on 8…1024 synthetic databases for 4k…256k
steps and fits the held-out loss along each axis. `ScalingGrid` holds such a grid as
plain data; `plurel_ray.pipeline.scaling_sweep` runs it. Nothing here imports Ray.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plurel_ray.errors import ConfigError

# Multiples of min(loss) tried as the initial irreducible loss C: the fit is started from
# each and the best kept, since a single start lands in a flat valley when C ≈ 0.
_C_STARTS = (0.0, 0.25, 0.5, 0.75, 0.9)
_MAX_ALPHA = 10.0


@dataclass(frozen=True)
class PowerLawFit:
    """L = A·X^(−alpha) + C fitted to `n` points; `r2` on the losses themselves."""

    A: float
    alpha: float
    C: float
    r2: float
    n: int

    def predict(self, x: Any) -> np.ndarray:
        return self.A * np.asarray(x, dtype=float) ** (-self.alpha) + self.C

    def to_dict(self) -> dict[str, float]:
        return {"A": self.A, "alpha": self.alpha, "C": self.C, "r2": self.r2, "n": self.n}


@dataclass(frozen=True)
class ScalingPoint:
    """One trained and evaluated grid point (a row of points.csv)."""

    num_dbs: int
    steps: int
    tokens: int
    val_loss: float
    train_loss: float = math.nan
    run: str = ""
    seconds: float = math.nan


@dataclass(frozen=True)
class ScalingGrid:
    """A scaling-law experiment as plain data.

    Args:
        num_dbs: training-database counts; point N trains on the first N databases.
        steps: optimizer steps per run; tokens = steps × batch × ctx × workers.
        recipe: the recipe every point starts from (`plurel_ray.train.config.recipe`).
        overrides: recipe fields every point replaces (steps is set per point).
        holdout: databases after the largest training set, evaluated on (val split).
        eval_max_items: items scored per held-out task: the first N of its val split's
            fixed evaluation order (None: every item).
    """

    num_dbs: tuple[int, ...]
    steps: tuple[int, ...]
    recipe: str
    overrides: dict[str, Any] = field(default_factory=dict)
    holdout: int = 1
    eval_max_items: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_dbs", "steps"):
            values = getattr(self, name)
            if not values or min(values) < 1 or len(set(values)) != len(values):
                raise ConfigError(f"ScalingGrid.{name} must be distinct integers ≥ 1, got {values}")
        if self.holdout < 1 or (self.eval_max_items is not None and self.eval_max_items < 1):
            raise ConfigError("ScalingGrid.holdout and eval_max_items must be ≥ 1")
        if "steps" in self.overrides:
            raise ConfigError("ScalingGrid.overrides cannot set steps; the grid's steps do")

    @property
    def total_dbs(self) -> int:
        """Databases to generate: the largest training set plus the held-out ones."""
        return max(self.num_dbs) + self.holdout

    def points(self) -> list[tuple[int, int]]:
        """(num_dbs, steps) of every point, the cheapest first."""
        return sorted(
            ((n, s) for n in self.num_dbs for s in self.steps), key=lambda p: (p[1], p[0])
        )


GRIDS: dict[str, ScalingGrid] = {
    # Nine points of a small model, three per axis so both axes get a 3-parameter fit:
    # ~5 minutes on 2 cores, almost all of it Ray Train start-up.
    "tiny": ScalingGrid(
        num_dbs=(1, 2, 4),
        steps=(10, 20, 40),
        recipe="tiny",
        overrides={"d_model": 32, "d_ff": 64, "batch_size": 4, "ctx_len": 64},
        holdout=1,
        eval_max_items=2 * 4,  # two batches of the grid's batch size
    ),
    # docs/model.md: 8…1024 databases × 4k…256k steps (8 × 7 runs at 128 × 1024 cells per step).
    "paper": ScalingGrid(
        num_dbs=tuple(2**k for k in range(3, 11)),
        steps=tuple(4000 * 2**k for k in range(7)),
        recipe="plurel-paper",
        holdout=8,
        eval_max_items=32 * 128,  # 32 batches of the paper recipe's 128
    ),
}


def grid(name: str) -> ScalingGrid:
    """The named grid (`tiny` or `paper`).

    Raises:
        ConfigError: unknown name.
    """
    if name not in GRIDS:
        raise ConfigError(f"unknown scaling grid {name!r}; choose one of {sorted(GRIDS)}")
    return GRIDS[name]


def fit_power_law(x: Sequence[float], loss: Sequence[float]) -> PowerLawFit:
    """Fit L = A·X^(−α) + C with A > 0, α > 0, 0 ≤ C < min(L).

    The residuals are taken in log space (log L − log L̂), so a 2 % error weighs the same
    at every scale, as the multiplicative noise of losses does. The fit is started from
    several C (fractions of min L, with A and α from a line through log(L − C) vs log X)
    and the best kept; if every start fails, the pure power law (C = 0) of that line is
    returned.

    Args:
        x: databases or tokens, all > 0, at least 3 distinct values.
        loss: the loss at each x, all > 0 and finite.

    Raises:
        ConfigError: different lengths, fewer than 3 distinct x, or a non-positive or
            non-finite x or loss.
    """
    from scipy.optimize import curve_fit

    xs, ys = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ConfigError(f"fit_power_law: x and loss must be equal-length lists, got "
                          f"{xs.shape} and {ys.shape}")  # fmt: skip
    if not (np.all(np.isfinite(xs)) and np.all(xs > 0)):
        raise ConfigError(f"fit_power_law: every x must be finite and > 0, got {xs.tolist()}")
    if not (np.all(np.isfinite(ys)) and np.all(ys > 0)):
        raise ConfigError(f"fit_power_law: every loss must be finite and > 0, got {ys.tolist()}")
    if len(np.unique(xs)) < 3:
        got = sorted(set(xs.tolist()))
        raise ConfigError(f"fit_power_law: needs ≥ 3 distinct x for A, alpha and C, got {got}; "
                          "add grid points along this axis")  # fmt: skip
    logx, logy = np.log(xs), np.log(ys)
    c_max = float(ys.min()) * (1 - 1e-9)
    bounds = ([-50.0, 0.0, 0.0], [50.0, _MAX_ALPHA, c_max])  # log A, alpha, C

    def model(lx: np.ndarray, log_a: float, alpha: float, c: float) -> np.ndarray:
        return np.log(np.exp(log_a - alpha * lx) + c)

    best, best_cost = None, math.inf
    for frac in _C_STARTS:
        c0 = frac * c_max
        slope, intercept = np.polyfit(logx, np.log(ys - c0), 1)
        p0 = [intercept, float(np.clip(-slope, 1e-3, _MAX_ALPHA - 1e-3)), c0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(model, logx, logy, p0=p0, bounds=bounds, maxfev=20_000)
        except (RuntimeError, ValueError):
            continue
        cost = float(np.sum((model(logx, *params) - logy) ** 2))
        if np.all(np.isfinite(params)) and cost < best_cost:
            best, best_cost = params, cost
    if best is None:  # no start converged: the pure power law through the points
        slope, intercept = np.polyfit(logx, logy, 1)
        best = np.array([intercept, max(-slope, 0.0), 0.0])
    log_a, alpha, c = (float(v) for v in best)
    fitted = PowerLawFit(A=math.exp(log_a), alpha=alpha, C=c, r2=math.nan, n=len(xs))
    residual = float(np.sum((ys - fitted.predict(xs)) ** 2))
    total = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else float(residual == 0)
    return PowerLawFit(A=fitted.A, alpha=alpha, C=c, r2=r2, n=len(xs))


def fit_axes(points: Sequence[ScalingPoint]) -> dict[str, PowerLawFit | str]:
    """Fit the validation loss along each axis of the grid, per row and per column.

    Keys:
        "databases": loss vs num_dbs at the largest token budget (the paper's curve);
        "tokens": loss vs tokens at the largest database count;
        "databases@tokens=T": loss vs num_dbs at each other token budget T;
        "tokens@num_dbs=N": loss vs tokens at each other database count N.
    A slice that cannot be fitted (fewer than 3 distinct x) maps to the reason instead.
    """
    if not points:
        raise ConfigError("fit_axes: no points; run the grid first")
    fits: dict[str, PowerLawFit | str] = {}
    budgets = sorted({p.tokens for p in points})
    counts = sorted({p.num_dbs for p in points})

    def fit(pairs: list[tuple[float, float]]) -> PowerLawFit | str:
        try:
            return fit_power_law([a for a, _ in pairs], [b for _, b in pairs])
        except ConfigError as err:
            return str(err)

    for i, budget in enumerate(reversed(budgets)):
        key = "databases" if i == 0 else f"databases@tokens={budget}"
        fits[key] = fit(sorted((p.num_dbs, p.val_loss) for p in points if p.tokens == budget))
    for i, count in enumerate(reversed(counts)):
        key = "tokens" if i == 0 else f"tokens@num_dbs={count}"
        fits[key] = fit(sorted((p.tokens, p.val_loss) for p in points if p.num_dbs == count))
    return fits


def fits_to_json(fits: Mapping[str, PowerLawFit | str]) -> dict[str, dict]:
    """fits.json's content: each slice's parameters, or {"skipped": reason}."""
    return {k: v.to_dict() if isinstance(v, PowerLawFit) else {"skipped": v}
            for k, v in fits.items()}  # fmt: skip


def plot_scaling(
    points: Sequence[ScalingPoint],
    fits: Mapping[str, PowerLawFit | str],
    path: str | os.PathLike,
) -> str:
    """Write the paper-style figure: validation loss vs databases (one line per token
    budget) and vs tokens (one line per database count), log-log, fits dashed.

    Args:
        points: the evaluated grid points.
        fits: `fit_axes(points)`; slices without a fit are drawn without a curve.
        path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = (
        (axes[0], "num_dbs", "tokens", "databases", "training databases", "tokens"),
        (axes[1], "tokens", "num_dbs", "tokens", "training tokens (cells)", "dbs"),
    )
    for ax, x_key, line_key, axis, xlabel, tag in panels:
        values = sorted({getattr(p, line_key) for p in points})
        colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(values)))
        for j, (value, color) in enumerate(zip(values, colors, strict=True)):
            row = sorted((getattr(p, x_key), p.val_loss) for p in points
                         if getattr(p, line_key) == value)  # fmt: skip
            xs, ys = zip(*row, strict=True)
            key = axis if j == len(values) - 1 else f"{axis}@{line_key}={value}"
            fitted = fits.get(key)
            # Measured points as markers, joined only where no fit is drawn through them.
            style = "o" if isinstance(fitted, PowerLawFit) else "o-"
            ax.plot(xs, ys, style, color=color, label=f"{tag} = {value:,}")
            if isinstance(fitted, PowerLawFit):
                dense = np.geomspace(min(xs), max(xs), 100)
                ax.plot(dense, fitted.predict(dense), "--", color=color, alpha=0.8,
                        label=f"fit α={fitted.alpha:.3f}, C={fitted.C:.3f}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out masked-cell loss (val)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("loss vs databases")
    axes[1].set_title("loss vs tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
