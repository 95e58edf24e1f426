"""`plurel-ray predict --context-grid … --ensemble N` on Ray: the grid's val scores are
those of separate runs with each setting (a one-cell context, which hides every row but the
masked target, scores exactly 0.5), the best one predicts, the ensemble is the mean of the
single-seed runs, the report and the file's metadata hold those numbers, and bad flags
fail in one line before any work.

Real components: the real-shaped `shop` database (tests/realshaped.py), its store built
by the command with the tiny random BERT the checkpoint records, an embedded Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realshaped import BUILDERS, write_database
from sklearn.metrics import roc_auc_score
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.cli import main
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.model.checkpoint import save_checkpoint
from plurel_ray.pipeline.predict import PredictRequest, predict, read_metadata
from plurel_ray.pipeline.predict_tuning import report_path
from plurel_ray.pipeline.pretrain_args import close_ray
from plurel_ray.predict.core import ContextSettings
from plurel_ray.train import TrainConfig

TASK = "customer-churn"
TRAINED_CTX_LEN = 48  # the checkpoint's: the command's own setting


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predict_tuning")


@pytest.fixture(scope="module")
def shop(root) -> Path:
    return write_database(BUILDERS["shop"](np.random.default_rng([0, 0])), root / "shop")


@pytest.fixture(scope="module")
def checkpoint(root) -> Path:
    bert = write_tiny_bert(root / "bert")
    config = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=HIDDEN)
    inputs = {"context_rules": "reference", "train": TrainConfig(ctx_len=TRAINED_CTX_LEN).to_dict(),
              "text_encoder": {"name": str(bert.resolve()), "dim": HIDDEN}}  # fmt: skip
    return save_checkpoint(root / "run" / "step_1", init_model(config, 0), config, inputs)


def _predict(root, checkpoint, shop, out: str, **options) -> pd.DataFrame:
    predict(PredictRequest(str(checkpoint), str(shop), TASK, out=str(root / out),
                           storage=str(root / "runs"), progress=False, **options),
            say=lambda line: None)  # fmt: skip
    return pd.read_parquet(root / out)


@pytest.mark.slow
def test_the_grid_picks_the_best_val_setting_and_the_ensemble_is_the_seeds_mean(
    root, shop, checkpoint, monkeypatch
):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PLUREL_RAY_NUM_CPUS", "2")
    try:
        tuned = _predict(root, checkpoint, shop, "tuned.parquet", split="test",
                         context_grid=("ctx_len=1,32",), ensemble=3)  # fmt: skip
        # Each setting on its own, scored here against the val labels.
        labels = pd.read_parquet(shop / "tasks" / TASK / "val.parquet")["churn"]
        settings = [TRAINED_CTX_LEN, 1, 32]  # the command's own first, then the grid's
        val = {n: _predict(root, checkpoint, shop, f"val-{n}.parquet", split="val",
                           settings=ContextSettings(ctx_len=n))["prediction"].to_numpy()
               for n in settings}  # fmt: skip
        scores = {n: roc_auc_score(labels, val[n]) for n in settings}
        assert scores[1] == 0.5  # every context is the masked target alone: one answer
        best = max(settings, key=lambda n: (scores[n], -settings.index(n)))
        meta = read_metadata(root / "tuned.parquet")
        tuning = meta["context_tuning"]
        assert [(g["ctx_len"], g["max_bfs_width"]) for g in tuning["grid"]] == [
            (n, 128) for n in settings]  # fmt: skip
        assert [g["score"] for g in tuning["grid"]] == pytest.approx([scores[n] for n in settings])
        assert [g["gain"] for g in tuning["grid"]] == pytest.approx(
            [scores[n] - scores[TRAINED_CTX_LEN] for n in settings])  # fmt: skip
        assert [g["chosen"] for g in tuning["grid"]] == [n == best for n in settings]
        assert tuning["chosen"] == {"ctx_len": best, "max_bfs_width": 128}
        assert meta["context"] == {"ctx_len": best, "max_bfs_width": 128, "seed": 0}
        # The test split's predictions: the mean of three single-seed runs, in seed order.
        singles = [_predict(root, checkpoint, shop, f"test-seed{s}.parquet", split="test",
                            settings=ContextSettings(ctx_len=best, seed=s))
                   for s in (0, 1, 2)]  # fmt: skip
        total = singles[0]["prediction"].to_numpy().copy()
        for single in singles[1:]:
            total += single["prediction"].to_numpy()
        np.testing.assert_array_equal(tuned["prediction"].to_numpy(), total / 3)
        assert tuned.drop(columns="prediction").equals(singles[0].drop(columns="prediction"))
        assert not np.array_equal(singles[0]["prediction"], singles[1]["prediction"])
        # The ensemble's val score and gain.
        seeds = [val[best]] + [
            _predict(root, checkpoint, shop, f"val-seed{s}.parquet", split="val",
                     settings=ContextSettings(ctx_len=best, seed=s))["prediction"].to_numpy()
            for s in (1, 2)]  # fmt: skip
        ensemble = roc_auc_score(labels, (seeds[0] + seeds[1] + seeds[2]) / 3)
        assert tuning["seeds"] == [0, 1, 2] and tuning["ensemble"]["seeds"] == [0, 1, 2]
        assert tuning["ensemble"]["single"] == pytest.approx(scores[best])
        assert tuning["ensemble"]["ensemble"] == pytest.approx(ensemble)
        assert tuning["ensemble"]["gain"] == pytest.approx(ensemble - scores[best])
        report = report_path(root / "tuned.parquet").read_text()
        assert report_path(root / "tuned.parquet").name == "tuned_context.md"
        assert f"**ctx_len={best} max_bfs_width=128**" in report
        for n in settings:
            assert f"| ctx_len={n} max_bfs_width=128 | {scores[n]:.4f} |" in report
        assert f"| mean of 3 seeds | {ensemble:.4f} | {ensemble - scores[best]:+.4f} |" in report
    finally:
        close_ray()


def _fails_in_one_line(args: list[str], capsys, expected: str) -> None:
    assert main([*args, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("plurel-ray: error: "), err
    assert expected in err, err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--context-grid", "ctx_len=64", "width=3"], "--context-grid: unknown setting 'width'"),
        (["--context-grid", "ctx_len=0"], "--context-grid: ctx_len=0 is not a positive integer"),
        (["--context-grid", "grid.yaml"], "--context-grid grid.yaml: no such file"),
        (["--ensemble", "0"], "--ensemble 0: the number of context seeds must be at least 1"),
    ],
)  # fmt: skip
def test_bad_tuning_flags_fail_before_any_work(root, shop, checkpoint, capsys, flags, expected):
    storage = root / "bad-runs"
    out = root / "never.parquet"
    _fails_in_one_line(["predict", str(checkpoint), "--dataset", str(shop), "--task", TASK,
                        "--storage", str(storage), "--out", str(out), *flags], capsys,
                       expected)  # fmt: skip
    assert not out.exists() and not storage.exists()  # no store built, nothing written
