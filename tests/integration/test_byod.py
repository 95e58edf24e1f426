"""Bring your own database, end to end, as a user runs it: two SQLite shop databases
(tests/byod_database.py: a planted per-customer order rate) → `plurel-ray import` →
`plurel-ray tasks add` → a short baseline run on one shop (jobs/baseline_pretrain.py,
tiny recipe) → `plurel-ray predict` on the other shop's churn test split with 1 and 2
actors → one prediction per item keyed by the database's own customer ids, the same with
1 and 2 actors, an AUROC above the trivial baseline's 0.5, and a submission folder that
RelBench's own evaluator scores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from byod_database import SHOP_TASKS, STAMPS, write_shop_sqlite

from plurel_ray.dataset.sql_import import database_keys

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
ENV.pop("RAY_ADDRESS", None)
TINY = ["--recipe", "tiny", "--set", "batch_size=8", "--set", "ctx_len=64", "--set",
        "steps=30", "--num-workers", "1", "--sampler-cpus", "0.5", "--no-progress",
        "--eval-max-items", "16"]  # fmt: skip
# The planted rate separates rare from frequent buyers; a model that reads a customer's
# past orders ranks churners well above chance.
MIN_AUROC = 0.6


def _run(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(list(args), env=ENV, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def _cli(*args: str) -> str:
    return _run(sys.executable, "-m", "plurel_ray.cli", *args)


@pytest.mark.slow
def test_sqlite_to_predictions_and_a_relbench_submission(tmp_path):
    from relbench.metrics import roc_auc
    from relbench.submit import evaluate_task

    tasks = tmp_path / "shop-tasks.yaml"
    entries = [{**e, "dataset": name} for name in ("shop-a", "shop-b") for e in SHOP_TASKS["tasks"]]
    tasks.write_text(yaml.safe_dump({"name": "shops", "match": "given", "tasks": entries}))
    folders = {}
    for seed, name in enumerate(("shop-a", "shop-b")):
        source = write_shop_sqlite(tmp_path / f"{name}.sqlite", seed=seed, customers=120)
        folders[name] = tmp_path / "data" / name
        _cli("import", str(source), "--out", str(folders[name]),
             "--val-timestamp", STAMPS["val_timestamp"],
             "--test-timestamp", STAMPS["test_timestamp"])  # fmt: skip
        _cli("tasks", "add", str(folders[name]), str(tasks))
    storage = tmp_path / "runs"
    _run(sys.executable, str(REPO / "jobs" / "baseline_pretrain.py"), "--datasets",
         *map(str, folders.values()), "--leave-out", "shop-b", "--tasks", str(tasks),
         "--storage", str(storage), *TINY, "--allow-encoder-mismatch")  # fmt: skip
    checkpoint = sorted(storage.glob("tiny-baseline-shop-b-*/step_*"))[-1]

    predictions = {}
    for actors in (1, 2):
        out = tmp_path / f"predictions-{actors}.parquet"
        extra = ["--submission-dir", str(tmp_path / "submission")] if actors == 2 else []
        _cli("predict", str(checkpoint), "--dataset", str(folders["shop-b"]), "--task",
             "customer-churn", "--split", "test", "--out", str(out), "--num-actors", str(actors),
             "--storage", str(storage), *extra)  # fmt: skip
        predictions[actors] = pd.read_parquet(out)
    one, two = predictions[1], predictions[2]
    pd.testing.assert_frame_equal(one, two)  # deterministic per-item contexts

    # Every test item once, keyed by the database's own ids (1000…), not RelBench's 0..n-1.
    labels = pd.read_parquet(folders["shop-b"] / "tasks" / "customer-churn" / "test.parquet")
    with sqlite3.connect(tmp_path / "shop-b.sqlite") as con:
        db_ids = set(pd.read_sql_query("SELECT id FROM customers", con)["id"])
    con.close()
    assert len(one) == len(labels) and not one.duplicated(["id", "timestamp"]).any()
    assert set(one["id"]) <= db_ids and len(set(one["id"])) == labels["id"].nunique()
    assert one["prediction"].between(0, 1).all()  # binary: probabilities

    # The label file holds RelBench's renumbered keys; the database's come back through
    # keys/customers.parquet.
    truth = labels.assign(id=database_keys(folders["shop-b"], "customers", labels["id"]))
    scored = truth.merge(one, on=["id", "timestamp"], validate="one_to_one")
    auroc = roc_auc(scored["churn"].to_numpy(float), scored["prediction"].to_numpy())
    print(f"customer-churn test AUROC {auroc:.3f} over {len(scored)} items (trivial: 0.5)")
    assert auroc > MIN_AUROC

    # The leaderboard format is keyed as RelBench's labels are: the renumbered keys.
    (csv,) = (tmp_path / "submission").glob("*.csv")
    assert csv.name == "shop-b__customer-churn.csv"
    metrics = evaluate_task("shop-b/customer-churn", csv, dataset=str(folders["shop-b"]))
    assert metrics["roc_auc"] > MIN_AUROC
