"""`plurel-ray predict` on Ray: the same file with 1 and 2 model actors, keyed rows with
their metadata, `--rows`, a RelBench leaderboard file scored by RelBench's own evaluator,
and bad input refused in one line with nothing written.

Real components: the real-shaped `shop` database (tests/realshaped.py), its store built
by the command itself with the tiny random BERT the checkpoint records, an embedded Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realshaped import BUILDERS, write_database
from relbench.submit import evaluate_task
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.cli import main
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.model.checkpoint import save_checkpoint
from plurel_ray.pipeline.predict import read_metadata
from plurel_ray.train import TrainConfig


def save_tiny_checkpoint(folder: Path, bert: Path, d_text: int = HIDDEN) -> Path:
    config = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=d_text)
    inputs = {"context_rules": "reference", "train": TrainConfig(ctx_len=48).to_dict(),
              "text_encoder": {"name": str(bert.resolve()), "dim": d_text}}  # fmt: skip
    return save_checkpoint(folder, init_model(config, 0), config, inputs)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def shop(root) -> Path:
    return write_database(BUILDERS["shop"](np.random.default_rng([0, 0])), root / "shop")


@pytest.fixture(scope="module")
def checkpoint(root) -> Path:
    return save_tiny_checkpoint(root / "run" / "step_1", write_tiny_bert(root / "bert"))


def predict(root: Path, checkpoint: Path, shop: Path, *extra: str) -> int:
    return main(["predict", str(checkpoint), "--dataset", str(shop), "--storage",
                 str(root / "runs"), "--no-progress", *extra])  # fmt: skip


@pytest.mark.slow
def test_one_and_two_actors_write_the_same_keyed_file_and_a_scored_submission(
    root, shop, checkpoint, capsys, monkeypatch
):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PLUREL_RAY_NUM_CPUS", "2")
    files = {}
    for actors in (1, 2):
        files[actors] = root / f"churn-{actors}.parquet"
        assert predict(root, checkpoint, shop, "--task", "customer-churn", "--out",
                       str(files[actors]), "--num-actors", str(actors),
                       "--submission-dir", str(root / "submission")) == 0  # fmt: skip
    one, two = (pd.read_parquet(files[k]) for k in (1, 2))
    assert one.equals(two)
    labels = pd.read_parquet(shop / "tasks" / "customer-churn" / "test.parquet")
    assert list(one.columns) == ["customer_id", "timestamp", "prediction"]
    assert one[["customer_id", "timestamp"]].equals(labels[["customer_id", "timestamp"]])
    assert one["prediction"].between(0, 1).all()
    meta = read_metadata(files[1])
    assert meta["context"] == {"ctx_len": 48, "max_bfs_width": 128, "seed": 0}
    assert meta["text_encoder"] == str((root / "bert").resolve()) and meta["d_text"] == HIDDEN
    assert meta["checkpoint"] == str(checkpoint) and meta["task"] == "customer-churn"
    # The leaderboard file, scored again here by RelBench's own evaluator.
    csv = root / "submission" / "shop__customer-churn.csv"
    assert sorted(p.name for p in (root / "submission").iterdir()) == [csv.name]
    scores = evaluate_task("shop/customer-churn", csv, dataset=str(shop))
    out = capsys.readouterr().out
    assert f"roc_auc {scores['roc_auc']:.4f}" in out
    # --rows: the listed rows, in their order, with the same predictions.
    rows = one.iloc[[7, 3]][["customer_id", "timestamp"]]
    rows.to_csv(root / "rows.csv", index=False)
    assert predict(root, checkpoint, shop, "--task", "customer-churn", "--out",
                   str(root / "some.parquet"), "--rows", str(root / "rows.csv")) == 0  # fmt: skip
    some = pd.read_parquet(root / "some.parquet")
    assert some.equals(one.iloc[[7, 3]].reset_index(drop=True))


@pytest.mark.slow
def test_a_regression_task_predicts_on_the_targets_scale(root, shop, checkpoint, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PLUREL_RAY_NUM_CPUS", "2")
    out = root / "amount.parquet"
    assert predict(root, checkpoint, shop, "--task", "orders-amount", "--out", str(out),
                   "--num-actors", "2", "--submission-dir", str(root / "sub")) == 0  # fmt: skip
    frame = pd.read_parquet(out)
    orders = pd.read_parquet(shop / "db" / "orders.parquet").set_index("order_id")
    assert list(frame.columns) == ["order_id", "prediction"]
    assert frame["order_id"].isin(orders.index).all() and frame["order_id"].is_unique
    # A random model predicts near the standardised mean: near the amounts' own mean.
    amounts = orders["amount"]
    assert abs(frame["prediction"].mean() - amounts.mean()) < 3 * amounts.std()


def fails_in_one_line(args: list[str], capsys, *expected: str) -> None:
    assert main([*args, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("plurel-ray: error: "), err
    assert all(text in err for text in expected), err


def test_bad_input_fails_in_one_line_and_writes_nothing(root, shop, checkpoint, capsys):
    out = root / "never.parquet"
    common = ["--dataset", str(shop), "--storage", str(root / "runs"), "--out", str(out)]
    fails_in_one_line(["predict", str(checkpoint), "--task", "no-such", *common], capsys,
                      "--task no-such", "customer-churn")  # fmt: skip
    assert main(["predict", str(checkpoint), "--task", "customer-churn", "--num-actors", "0",
                 *common]) == 2  # fmt: skip
    assert "--num-actors" in capsys.readouterr().err
    rows = root / "unknown-rows.parquet"
    unknown = {"customer_id": [123456], "timestamp": [pd.Timestamp("2022-07-01")]}
    pd.DataFrame(unknown).to_parquet(rows)
    fails_in_one_line(["predict", str(checkpoint), "--task", "customer-churn", "--rows",
                       str(rows), *common], capsys, "123456", "no item of")  # fmt: skip
    narrow = save_tiny_checkpoint(root / "narrow" / "step_1", root / "bert", d_text=24)
    fails_in_one_line(["predict", str(narrow), "--task", "customer-churn", *common], capsys,
                      "24-d", f"{HIDDEN}-d")  # fmt: skip
    assert not out.exists()
