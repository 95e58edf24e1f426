"""Context tuning and ensembling (pipeline/context_tuning.py) on runs whose answer is known:
a context length too short to reach the signal loses to one that reaches it, the
ensemble is the mean of its single-seed runs and beats them on noisy predictions, the
report's and the metadata's numbers are the metric of the runs, bad grids are refused.

The runs are deterministic functions of (setting, split, seed) standing in for the model:
the selection and averaging logic is what is tested here; tests/unit/test_predict_tuning.py
runs it through `plurel-ray predict` on a real checkpoint and store.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.context_tuning import (
    ItemRun,
    choose_setting,
    ensemble_mean,
    ensemble_seeds,
    grid_settings,
    parse_context_grid,
    setting_label,
    tune_contexts,
    tuning_markdown,
    tuning_metadata,
)
from plurel_ray.predict.core import ContextSettings

DEFAULT = ContextSettings(ctx_len=1024, max_bfs_width=128)
SIGNAL_AT = 64  # contexts shorter than this hold none of the signal
ITEMS = 400


class PlantedRuns:
    """Predictions of a split's items that reveal the labels once ctx_len reaches
    SIGNAL_AT, with seed-dependent noise (so that averaging seeds helps); counts calls."""

    def __init__(self, sem_type: str):
        self.sem_type = sem_type
        self.calls: list[tuple[ContextSettings, str]] = []
        rng = np.random.default_rng(0)
        self.labels = {split: (rng.random(ITEMS) < 0.4).astype(np.float64) if
                       sem_type == "boolean" else rng.normal(50.0, 10.0, ITEMS)
                       for split in ("val", "test")}  # fmt: skip

    def __call__(self, setting: ContextSettings, split: str) -> ItemRun:
        self.calls.append((setting, split))
        rng = np.random.default_rng([setting.ctx_len, setting.max_bfs_width, setting.seed])
        labels = self.labels[split]
        signal = (labels - labels.mean()) / labels.std() if setting.ctx_len >= SIGNAL_AT else 0
        raw = signal + rng.normal(0.0, 1.5, ITEMS)
        if self.sem_type == "boolean":
            return ItemRun(1 / (1 + np.exp(-raw)), labels)
        return ItemRun(labels.mean() + labels.std() * raw / 2, labels)


def _metric(sem_type: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if sem_type == "boolean":
        return roc_auc_score(labels > 0.5, predictions)
    return r2_score(labels, predictions)


@pytest.mark.parametrize("sem_type", ["boolean", "number"])
def test_the_grid_picks_the_setting_that_reaches_the_signal(sem_type):
    runs = PlantedRuns(sem_type)
    default = ContextSettings(ctx_len=16, max_bfs_width=128)  # hides the signal
    grid = grid_settings(parse_context_grid(["ctx_len=8,16,256", "max_bfs_width=4"]), default)
    tuning = tune_contexts(runs, grid=grid, default=default, seeds=[0], sem_type=sem_type,
                           split="test")  # fmt: skip
    assert tuning.chosen == ContextSettings(256, 4)
    assert [s.settings for s in tuning.settings] == [default, *grid]
    assert [s.chosen for s in tuning.settings] == [False, False, False, True]
    want = [_metric(sem_type, runs(s, "val").predictions, runs.labels["val"])
            for s in [default, *grid]]  # fmt: skip
    assert [s.score for s in tuning.settings] == pytest.approx(want, abs=1e-12)
    assert [s.gain for s in tuning.settings] == pytest.approx([w - want[0] for w in want])
    assert tuning.settings[-1].gain > 0.2  # the signal, seen
    # Tuned on val, predicted on test with the chosen setting only.
    assert {c for c in runs.calls if c[1] == "test"} == {(ContextSettings(256, 4), "test")}
    np.testing.assert_array_equal(
        tuning.predictions, runs(ContextSettings(256, 4), "test").predictions
    )


@pytest.mark.parametrize("sem_type", ["boolean", "number"])
def test_the_ensemble_is_the_mean_of_its_seeds_and_gains_on_noise(sem_type):
    runs = PlantedRuns(sem_type)
    seeds = ensemble_seeds(3, 5)
    assert seeds == [3, 4, 5, 6, 7]
    tuning = tune_contexts(runs, grid=None, default=DEFAULT, seeds=seeds, sem_type=sem_type,
                           split="test")  # fmt: skip
    singles = [runs(ContextSettings(1024, 128, s), "test").predictions for s in seeds]
    total = singles[0].copy()
    for single in singles[1:]:
        total += single
    np.testing.assert_array_equal(tuning.predictions, total / 5)
    e = tuning.ensemble
    val = [runs(ContextSettings(1024, 128, s), "val").predictions for s in seeds]
    assert e.single == pytest.approx(_metric(sem_type, val[0], runs.labels["val"]))
    assert e.ensemble == pytest.approx(_metric(sem_type, np.mean(val, axis=0), runs.labels["val"]))
    assert e.gain == pytest.approx(e.ensemble - e.single) and e.gain > 0.02
    assert tuning.settings == []


def test_each_run_is_made_once_and_the_result_is_deterministic():
    runs = PlantedRuns("boolean")
    grid = grid_settings(parse_context_grid(["ctx_len=32,128"]), DEFAULT)
    first = tune_contexts(runs, grid=grid, default=DEFAULT, seeds=[0, 1, 2],
                          sem_type="boolean", split="val")  # fmt: skip
    assert len(runs.calls) == len(set(runs.calls)) == 3 + 2  # 3 settings, 2 more seeds
    again = tune_contexts(PlantedRuns("boolean"), grid=grid, default=DEFAULT, seeds=[0, 1, 2],
                          sem_type="boolean", split="val")  # fmt: skip
    np.testing.assert_array_equal(first.predictions, again.predictions)
    assert tuning_metadata(first) == tuning_metadata(again)
    assert tuning_markdown(first, "t") == tuning_markdown(again, "t")


def test_the_report_says_what_was_chosen_and_what_each_gained():
    runs = PlantedRuns("number")
    default = ContextSettings(ctx_len=16, max_bfs_width=128)
    grid = grid_settings(parse_context_grid(["ctx_len=8,512"]), default)
    tuning = tune_contexts(runs, grid=grid, default=default, seeds=[0, 1, 2, 3],
                           sem_type="number", split="test")  # fmt: skip
    meta = json.loads(json.dumps(tuning_metadata(tuning)))  # JSON-able
    assert meta["metric"] == "r2" and meta["tuned_on"] == "val" and meta["seeds"] == [0, 1, 2, 3]
    assert [(g["ctx_len"], g["chosen"]) for g in meta["grid"]] == [
        (16, False), (8, False), (512, True)]  # fmt: skip
    assert meta["chosen"] == {"ctx_len": 512, "max_bfs_width": 128}
    for row, setting in zip(meta["grid"], tuning.settings, strict=True):
        assert (row["score"], row["gain"]) == (setting.score, setting.gain)
    assert meta["ensemble"]["gain"] == pytest.approx(
        meta["ensemble"]["ensemble"] - meta["ensemble"]["single"])  # fmt: skip
    text = tuning_markdown(tuning, "shop orders-amount")
    assert "**ctx_len=512 max_bfs_width=128**" in text and "4 context seed(s)" in text
    for s in tuning.settings:
        line = next(
            x for x in text.splitlines() if x.startswith(f"| {setting_label(s.settings)} |")
        )
        assert f"{s.score:.4f}" in line and f"{s.gain:+.4f}" in line
        assert line.endswith("| chosen |") == s.chosen
    assert f"{tuning.ensemble.ensemble:.4f} | {tuning.ensemble.gain:+.4f}" in text


def test_grids_from_words_and_yaml(tmp_path):
    words = grid_settings(parse_context_grid(["ctx_len=256,512", "max_bfs_width=32,128"]),
                          DEFAULT)  # fmt: skip
    assert [(s.ctx_len, s.max_bfs_width) for s in words] == [
        (256, 32), (256, 128), (512, 32), (512, 128)]  # fmt: skip
    path = tmp_path / "grid.yaml"
    path.write_text("ctx_len: [256, 512]\nmax_bfs_width: [32, 128]\n")
    assert grid_settings(parse_context_grid([str(path)]), DEFAULT) == words
    path.write_text("max_bfs_width: 16\n")
    assert grid_settings(parse_context_grid([str(path)]), DEFAULT) == [ContextSettings(1024, 16)]
    assert grid_settings(parse_context_grid(["ctx_len=256,256"]), DEFAULT) == [
        ContextSettings(256, 128)]  # fmt: skip
    seeded = ContextSettings(1024, 128, seed=7)  # the grid keeps the command's seed
    assert grid_settings({"ctx_len": [64]}, seeded) == [ContextSettings(64, 128, seed=7)]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["ctx_len=256", "depth=2"], "unknown setting 'depth' (settings: ctx_len, max_bfs_width)"),
        (["ctx_len=256,abc"], "ctx_len=abc is not a positive integer"),
        (["ctx_len=0"], "ctx_len=0 is not a positive integer"),
        (["ctx_len=1.5"], "ctx_len=1.5 is not a positive integer"),
        (["ctx_len="], "ctx_len has no values"),
        (["ctx_len=1", "ctx_len=2"], "ctx_len is given twice"),
        (["256"], "expected KEY=V1,V2,… or a .yaml file, got '256'"),
        (["missing.yaml"], "missing.yaml: no such file"),
    ],
)  # fmt: skip
def test_bad_grids_are_refused_by_name(specs, message):
    with pytest.raises(ConfigError) as err:
        parse_context_grid(specs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_choice_rules_and_bad_ensembles():
    assert choose_setting([0.6, 0.7, 0.7]) == 1  # ties: the earlier one
    assert choose_setting([float("nan"), 0.1]) == 1  # an undefined score loses
    assert choose_setting([float("nan"), float("nan")]) == 0
    assert ensemble_mean([np.array([1.0, 2.0]), np.array([2.0, 4.0])]).tolist() == [1.5, 3.0]
    with pytest.raises(ConfigError, match="--ensemble 0: the number of context seeds"):
        ensemble_seeds(0, 0)
