"""Context tuning and ensembling for predictions: `--context-grid` and `--ensemble N`.

    grid = grid_settings(parse_context_grid(["ctx_len=256,1024", "max_bfs_width=32,128"]),
                         default)      # default: the command's own ContextSettings
    tuning = tune_contexts(run, grid=grid, default=default, seeds=ensemble_seeds(0, 5),
                           sem_type="boolean", split="test")
    tuning.predictions          # the split's predictions: chosen setting, mean of 5 seeds
    tuning_markdown(tuning, "shop customer-churn")   # what was chosen, what each gained

The grid is scored on the task's val split with the task's metric (AUROC for a boolean
target, R² for a number target; `train/evaluate.py`), one context seed per setting; the
best setting wins (ties and undefined scores: the earlier one, the command's own setting
first). Each setting's gain is its val score minus that of the command's own setting.
The ensemble averages the predictions of N context seeds (seed, seed + 1, …): the
probabilities of a binary task, the values of a regression task, summed in seed order;
its gain is its val score minus the chosen setting's single-seed val score. Nothing here
is random: the same runs give the same choice and the same numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.report import markdown_table
from plurel_ray.predict.core import ContextSettings

GRID_KEYS = ("ctx_len", "max_bfs_width")
METRICS = {"boolean": "auroc", "number": "r2"}
METRIC_NAMES = {"auroc": "AUROC", "r2": "R²"}  # as reports print them
TUNING_SPLIT = "val"


def setting_label(settings: ContextSettings) -> str:
    """`ctx_len=L max_bfs_width=W`: a grid setting as the report names it."""
    return " ".join(f"{key}={getattr(settings, key)}" for key in GRID_KEYS)


@dataclass(frozen=True)
class ItemRun:
    """The predictions of one run over a split's items (one setting, one seed).

    Args:
        predictions: float64 [N] per item, in item order: probabilities for a boolean
            target, values on the target's own scale for a number target.
        labels: float64 [N] the true values where the split's labels are known, else None.
    """

    predictions: np.ndarray
    labels: np.ndarray | None


# (settings with the seed, split) -> the run; `split` is "val" while tuning, else the
# requested split (or row list).
RunItems = Callable[[ContextSettings, str], ItemRun]


def _positive(key: str, text: object) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1 or str(text).strip() != str(value):
        raise ConfigError(f"--context-grid: {key}={text} is not a positive integer")
    return value


def _grid_values(specs: Sequence[str]) -> dict[str, list]:
    """{key: values} from `KEY=V1,V2 …` words or one YAML file of {key: [values]}."""
    if len(specs) == 1 and Path(specs[0]).suffix in (".yaml", ".yml"):
        import yaml

        path = Path(specs[0])
        if not path.is_file():
            raise ConfigError(f"--context-grid {path}: no such file")
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict):
            raise ConfigError(f"--context-grid {path}: expected a mapping such as "
                              "{ctx_len: [256, 1024], max_bfs_width: [32, 128]}")  # fmt: skip
        return {str(k): v if isinstance(v, list) else [v] for k, v in loaded.items()}
    values: dict[str, list] = {}
    for word in specs:
        key, sep, text = word.partition("=")
        if not sep:
            raise ConfigError(f"--context-grid: expected KEY=V1,V2,… or a .yaml file, got {word!r}")
        if key.strip() in values:
            raise ConfigError(f"--context-grid: {key.strip()} is given twice")
        values[key.strip()] = [v for v in text.split(",") if v.strip()]
    return values


def parse_context_grid(specs: Sequence[str]) -> dict[str, list[int]]:
    """The values of each setting a `--context-grid` names, checked.

    Args:
        specs: `KEY=V1,V2,…` words (keys: ctx_len, max_bfs_width), or one YAML file
            mapping the keys to lists of values.

    Returns:
        {key: values}, in the order given, each value a positive int.

    Raises:
        ConfigError: an unknown key, a key given twice or without values, a value that is
            not a positive integer, a missing or malformed YAML file.
    """
    values = _grid_values(specs)
    for key, given in values.items():
        if key not in GRID_KEYS:
            raise ConfigError(f"--context-grid: unknown setting {key!r} (settings: "
                              f"{', '.join(GRID_KEYS)})")  # fmt: skip
        if not given:
            raise ConfigError(f"--context-grid: {key} has no values")
    return {key: [_positive(key, v) for v in given] for key, given in values.items()}


def grid_settings(grid: dict[str, list[int]], default: ContextSettings) -> list[ContextSettings]:
    """Every combination of the grid's values, in the order given (ctx_len outermost),
    each once; a setting the grid does not name keeps the command's own value.

    Args:
        grid: `parse_context_grid`'s result.
        default: the command's own settings (--ctx-len resolved, --max-bfs-width,
            --context-seed), whose seed every combination keeps.
    """
    axes = [grid.get(key, [getattr(default, key)]) for key in GRID_KEYS]
    combos = (dataclasses.replace(default, **dict(zip(GRID_KEYS, combo, strict=True)))
              for combo in itertools.product(*axes))  # fmt: skip
    return list(dict.fromkeys(combos))


def ensemble_seeds(seed: int, n: int) -> list[int]:
    """The context seeds of `--ensemble n`: seed, seed + 1, …, seed + n - 1.

    Raises:
        ConfigError: n < 1.
    """
    if n < 1:
        raise ConfigError(f"--ensemble {n}: the number of context seeds must be at least 1")
    return [seed + k for k in range(n)]


def ensemble_mean(runs: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of several runs' predictions, item by item, summed in the runs' order
    (so the mean of the same runs is the same bits).

    Args:
        runs: float arrays of one shape, one per seed.
    """
    total = np.array(runs[0], dtype=np.float64)
    for run in runs[1:]:
        total += np.asarray(run, dtype=np.float64)
    return total / len(runs)


def score(sem_type: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    """The task's metric of predictions against labels: AUROC for a boolean target
    (labels true when > 0.5), R² for a number target; NaN where undefined.

    Args:
        sem_type: "boolean" or "number".
        predictions: one prediction per item.
        labels: one label per item.
    """
    from plurel_ray.train.evaluate import auroc, r2_score

    if sem_type == "boolean":
        return auroc(predictions, np.asarray(labels, dtype=np.float64) > 0.5)
    return r2_score(predictions, labels)


def choose_setting(scores: Sequence[float]) -> int:
    """The index of the best score (higher is better for AUROC and R²): the first of equal
    ones; NaN scores lose; index 0 when every score is NaN."""
    finite = [(s, -i) for i, s in enumerate(scores) if not math.isnan(s)]
    return -max(finite)[1] if finite else 0


@dataclass(frozen=True)
class SettingScore:
    """One setting's val score. gain: score minus the command's own setting's."""

    settings: ContextSettings
    score: float
    gain: float
    chosen: bool


@dataclass(frozen=True)
class EnsembleScore:
    """The ensemble on val at the chosen setting: seeds, single-seed and mean scores."""

    seeds: list[int]
    single: float
    ensemble: float

    @property
    def gain(self) -> float:
        return self.ensemble - self.single


@dataclass(frozen=True)
class Tuning:
    """What `tune_contexts` chose and measured, and the requested split's predictions."""

    sem_type: str
    split: str
    chosen: ContextSettings
    seeds: list[int]
    settings: list[SettingScore]
    ensemble: EnsembleScore | None
    predictions: np.ndarray
    labels: np.ndarray | None

    @property
    def metric(self) -> str:
        return METRICS[self.sem_type]


def tune_contexts(
    run: RunItems,
    *,
    grid: Sequence[ContextSettings] | None,
    default: ContextSettings,
    seeds: Sequence[int],
    sem_type: str,
    split: str,
) -> Tuning:
    """Choose the context settings on val (with a grid), then predict `split` with them,
    averaging the seeds' predictions; each (settings, seed, split) is run once.

    Args:
        run: predicts a split's items under given settings (their seed included).
        grid: the settings to try (`grid_settings`), or None to keep `default`.
        default: the command's own settings; scored with the grid, as the reference of
            gains.
        seeds: the context seeds (one: no ensemble); the first one scores the grid.
        sem_type: the target's type, "boolean" or "number".
        split: the split (or row list) whose predictions are returned.
    """
    if sem_type not in METRICS:
        raise ValueError(f"sem_type must be one of {sorted(METRICS)}, got {sem_type!r}")
    runs: dict[tuple[ContextSettings, str], ItemRun] = {}

    def cached(settings: ContextSettings, seed: int, which: str) -> ItemRun:
        key = (dataclasses.replace(settings, seed=seed), which)
        if key not in runs:
            runs[key] = run(*key)
        return runs[key]

    def val_score(settings: ContextSettings, use: Sequence[int]) -> float:
        parts = [cached(settings, seed, TUNING_SPLIT) for seed in use]
        if parts[0].labels is None:
            raise ConfigError(f"the {TUNING_SPLIT} split has no labels to tune contexts on")
        return score(sem_type, ensemble_mean([p.predictions for p in parts]), parts[0].labels)

    chosen, scored = default, []
    if grid:
        candidates = list(dict.fromkeys([default, *grid]))
        values = [val_score(s, seeds[:1]) for s in candidates]
        chosen = candidates[choose_setting(values)]
        scored = [SettingScore(s, v, v - values[0], s == chosen)
                  for s, v in zip(candidates, values, strict=True)]  # fmt: skip
    ensemble = None
    if len(seeds) > 1:
        ensemble = EnsembleScore(list(seeds), val_score(chosen, seeds[:1]),
                                 val_score(chosen, seeds))  # fmt: skip
    final = [cached(chosen, seed, split) for seed in seeds]
    return Tuning(sem_type=sem_type, split=split,
                  chosen=dataclasses.replace(chosen, seed=seeds[0]), seeds=list(seeds),
                  settings=scored, ensemble=ensemble,
                  predictions=ensemble_mean([f.predictions for f in final]),
                  labels=final[0].labels)  # fmt: skip


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _grid_keys(settings: ContextSettings) -> dict[str, int]:
    return {key: getattr(settings, key) for key in GRID_KEYS}


def tuning_metadata(tuning: Tuning) -> dict[str, Any]:
    """The tuning as JSON-able data (NaN as None), for the predictions file's metadata."""
    grid = [{**_grid_keys(s.settings), "score": _number(s.score), "gain": _number(s.gain),
             "chosen": s.chosen} for s in tuning.settings]  # fmt: skip
    ensemble = None
    if tuning.ensemble is not None:
        e = tuning.ensemble
        ensemble = {"seeds": e.seeds, "single": _number(e.single),
                    "ensemble": _number(e.ensemble), "gain": _number(e.gain)}  # fmt: skip
    return {"metric": tuning.metric, "tuned_on": TUNING_SPLIT,
            "chosen": _grid_keys(tuning.chosen), "seeds": tuning.seeds, "grid": grid,
            "ensemble": ensemble}  # fmt: skip


def _cell(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def tuning_markdown(tuning: Tuning, title: str) -> str:
    """The report: the chosen setting, each setting's val score and gain, the ensemble's.

    Args:
        tuning: `tune_contexts`'s result.
        title: the heading, e.g. the task's name.
    """
    metric = METRIC_NAMES[tuning.metric]
    seeds = ", ".join(map(str, tuning.seeds))
    lines = [f"# Context settings: {title}", "",
             f"Predictions of the {tuning.split} split use **{setting_label(tuning.chosen)}** and "
             f"{len(tuning.seeds)} context seed(s) ({seeds})."]  # fmt: skip
    if tuning.settings:
        lines += ["", f"## Grid, scored on {TUNING_SPLIT} ({metric}, seed {tuning.seeds[0]})",
                  "", "Gain: the setting's score minus the command's own setting's (first row).",
                  ""]  # fmt: skip
        rows = [[setting_label(s.settings), _cell(s.score), _cell(s.gain, signed=True),
                 "chosen" if s.chosen else ""] for s in tuning.settings]  # fmt: skip
        lines += markdown_table(["setting", metric, "gain", ""], rows)
    if tuning.ensemble is not None:
        e = tuning.ensemble
        lines += ["", f"## Ensemble, scored on {TUNING_SPLIT} ({metric})", ""]
        lines += markdown_table(
            ["predictions", metric, "gain"],
            [[f"seed {e.seeds[0]}", _cell(e.single), ""],
             [f"mean of {len(e.seeds)} seeds", _cell(e.ensemble), _cell(e.gain, signed=True)]],
        )  # fmt: skip
    return "\n".join(lines) + "\n"
