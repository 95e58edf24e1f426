"""`plurel-ray evaluate`: a checkpoint folder, a reference `.pt` and a Hub repo scored on a
RelBench-3 folder next to trivial baselines, the baselines checked against scikit-learn,
and bad input refused in one line before any store is built.

Real components throughout: a generated database written as a RelBench-3 folder, its
store preprocessed and embedded by a tiny random BERT (tests/tiny_bert.py), a checkpoint
saved by the model code, and the local test Hub (tests/hub_server.py).
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import HubServer
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.hub.push import push_checkpoint
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.model.checkpoint import save_checkpoint
from plurel_ray.pipeline.pretrain_data import source_target_sem_type, task_sources
from plurel_ray.store import Sampler
from plurel_ray.store.meta import read_meta
from plurel_ray.synth.database import generate_database
from plurel_ray.train import TrainConfig
from plurel_ray.train.baselines import (
    log_loss,
    mean_baseline,
    prior_baseline,
    train_targets,
)

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=HIDDEN)
TOKEN = "hf_test_secret_evaluate_8d41"
CTX_LEN = 32


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def bert(root) -> Path:
    return write_tiny_bert(root / "models" / "bert")


@pytest.fixture(scope="module")
def dataset(root, small_config) -> Path:
    folder = root / "data" / "plurel-0"
    write_dataset(generate_database(0, small_config), folder, small_config, name="plurel-0")
    return folder


def save_tiny_checkpoint(folder: Path, bert: Path, d_text: int = HIDDEN) -> Path:
    """A checkpoint as training writes it: weights, sizes, the inputs it expects."""
    config = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=d_text)
    inputs = {"context_rules": "reference", "train": TrainConfig(ctx_len=CTX_LEN).to_dict(),
              "text_encoder": {"name": str(bert.resolve()), "dim": d_text}}  # fmt: skip
    return save_checkpoint(folder, init_model(config, 0), config, inputs)


@pytest.fixture(scope="module")
def checkpoint(root, bert) -> Path:
    return save_tiny_checkpoint(root / "run" / "step_00000002", bert)


@pytest.fixture(scope="module")
def storage(root, checkpoint, dataset) -> Path:
    """The stores the folder checkpoint's evaluation built (its first test's work)."""
    out = root / "eval-folder"
    args = ["evaluate", str(checkpoint), "--datasets", str(dataset),
            "--storage", str(root / "runs"), "--out", str(out), "--eval-split", "test",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return root / "runs"


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_checkpoint_folder_is_scored_next_to_the_baselines(root, storage, bert, capsys):
    store = storage / "plurel-0" / "stores" / "plurel-0"
    # Built here, and embedded with the encoder the checkpoint records.
    assert read_meta(store)["embedding"]["model"] == str(bert.resolve())
    rows = read_csv(root / "eval-folder" / "eval_test.csv")
    tasks = [row for row in rows if not row["task"].startswith("(mean")]
    assert [row["task"] for row in tasks] == [s.task for s in task_sources([store], "test")]
    for row in tasks:
        assert int(row["items"]) > 0 and row["split"] == "test" and row["beats"] in ("yes", "no")
        if row["target"] == "boolean":
            # AUROC is undefined (NaN) on items of one class, for the model and the prior.
            assert row["prior_auroc"] == ("nan" if row["auroc"] == "nan" else "0.5")
            assert 0 < float(row["prior"]) < 1
            assert float(row["logloss"]) > 0 and float(row["prior_logloss"]) > 0
        else:
            assert row["target"] == "number" and float(row["mean_r2"]) <= 0
    [summary] = [row for row in rows if row["task"].startswith("(mean")]
    judged = sum(row["beats"] in ("yes", "no") for row in tasks)
    assert summary["beats"].endswith(f"/{judged}")
    assert int(summary["items"]) == sum(int(row["items"]) for row in tasks)
    report = (root / "eval-folder" / "eval_test.md").read_text()
    assert "| plurel-0 |" in report and "- plurel-0: the model beats the baseline on" in report


def test_the_baselines_match_scikit_learn_on_the_same_items(root, storage):
    store = storage / "plurel-0" / "stores" / "plurel-0"
    rows = {row["task"]: row for row in read_csv(root / "eval-folder" / "eval_test.csv")}
    for source in task_sources([store], "test"):
        row = rows[source.task]
        # Independently: every target cell of the train and test splits, read with a
        # context of 16 cells and one batch, scored by scikit-learn.
        train = target_values(source, "train", row["target"])
        test = target_values(source, "test", row["target"])
        assert int(row["items"]) == len(test)
        if row["target"] == "boolean":
            prior = np.mean(train > 0)
            assert float(row["prior"]) == pytest.approx(prior)
            expected = sklearn_log_loss(test > 0, np.full(len(test), prior), labels=[False, True])
            assert float(row["prior_logloss"]) == pytest.approx(expected, rel=1e-6)
        else:
            mean = np.full(len(test), np.mean(train))
            assert float(row["train_mean"]) == pytest.approx(np.mean(train), abs=1e-6)
            assert float(row["mean_r2"]) == pytest.approx(r2_score(test, mean), abs=1e-6)
            assert float(row["mean_mae"]) == pytest.approx(mean_absolute_error(test, mean),
                                                           abs=1e-6)  # fmt: skip


def target_values(source, split: str, sem_type: str) -> np.ndarray:
    sampler = Sampler([dataclasses.replace(source, split=split)], batch_size=10_000,
                      ctx_len=16, seed=3)  # fmt: skip
    batch = sampler.batch(0)
    return batch[f"{sem_type}_values"][batch["is_targets"]].astype(np.float64)


def test_baseline_functions_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    train, labels = rng.normal(size=500), rng.normal(size=200)
    logits = rng.normal(size=200) * 3
    mean = np.full(200, train.mean())
    assert mean_baseline(train, labels) == pytest.approx({
        "train_mean": train.mean(), "mean_r2": r2_score(labels, mean),
        "mean_mae": mean_absolute_error(labels, mean)})  # fmt: skip
    result = prior_baseline(train, labels, logits)
    truth, prior = labels > 0, np.mean(train > 0)
    assert result["prior"] == pytest.approx(prior)
    assert result["prior_auroc"] == roc_auc_score(truth, np.full(200, prior)) == 0.5
    assert result["logloss"] == pytest.approx(sklearn_log_loss(truth, 1 / (1 + np.exp(-logits))))
    assert result["prior_logloss"] == pytest.approx(sklearn_log_loss(truth, np.full(200, prior)))
    # A train split of one class: a large but finite log-loss, not inf or NaN.
    assert 5 < prior_baseline(np.ones(5), labels, logits)["prior_logloss"] < 20
    assert np.isnan(log_loss(np.zeros(0), np.zeros(0, dtype=bool)))


def test_train_targets_are_capped_to_the_first_items_of_a_fixed_shuffle(storage):
    store = storage / "plurel-0" / "stores" / "plurel-0"
    source = task_sources([store], "test")[0]
    sem_type = source_target_sem_type(source)
    every = train_targets(source, sem_type)
    first = train_targets(source, sem_type, cap=10)
    assert len(first) == 10 < len(every)
    assert np.array_equal(first, train_targets(source, sem_type, cap=10))
    assert np.array_equal(np.sort(every), np.sort(target_values(source, "train", sem_type)))


def test_a_reference_pt_is_scored_on_existing_stores(root, storage, dataset, capsys):
    pt = root / "published.pt"
    torch.save(init_model(SMALL, 1).state_dict(), pt)
    args = ["evaluate", str(pt), "--datasets", str(dataset), "--storage", str(storage),
            "--out", str(root / "eval-pt"), "--eval-max-items", "5", "--eval-split", "test",
            "--no-progress"]  # fmt: skip
    # A .pt expects the reference encoder (all-MiniLM-L12-v2), not the tiny BERT.
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-encoder-mismatch" in err
    assert not (root / "eval-pt").exists()
    assert main([*args, "--allow-encoder-mismatch"]) == 0
    rows = read_csv(root / "eval-pt" / "eval_test.csv")
    assert rows and all(int(row["items"]) <= 5 for row in rows if row["task"][0] != "(")
    assert "the model beats the baseline on" in capsys.readouterr().out


def test_a_hub_repo_is_downloaded_and_scored(root, storage, dataset, checkpoint, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(root / "hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    (root / "tmp").mkdir(exist_ok=True)
    with HubServer(tokens={TOKEN}) as hub:
        push_checkpoint(checkpoint, "org/rt", endpoint=hub.endpoint, token=TOKEN)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        args = ["evaluate", "org/rt@main", "--datasets", str(dataset), "--storage", str(storage),
                "--out", str(root / "eval-hub"), "--eval-split", "test",
                "--no-progress"]  # fmt: skip
        assert main(args) == 0
    by_folder = read_csv(root / "eval-folder" / "eval_test.csv")
    assert read_csv(root / "eval-hub" / "eval_test.csv") == by_folder  # same weights, same items


def fails_in_one_line(args: list[str], capsys, *expected: str) -> None:
    assert main([*args, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("plurel-ray: error: "), err
    assert all(text in err for text in expected), err


def test_bad_input_fails_in_one_line_before_any_work(root, checkpoint, dataset, bert, capsys,
                                                     monkeypatch):  # fmt: skip
    storage, out = root / "fresh-runs", root / "never"
    common = ["--storage", str(storage), "--out", str(out)]
    not_relbench = root / "not-a-dataset"
    not_relbench.mkdir()
    fails_in_one_line(["evaluate", str(checkpoint), "--datasets", str(not_relbench), *common],
                      capsys, "not a RelBench-3 folder")  # fmt: skip
    fails_in_one_line(["evaluate", str(root / "nothing-here"), "--datasets", str(dataset),
                       *common], capsys, "no such file or folder")  # fmt: skip
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with HubServer(tokens={TOKEN}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        fails_in_one_line(["evaluate", "org/absent", "--datasets", str(dataset), *common],
                          capsys, "org/absent", "does not exist")  # fmt: skip
    suite = root / "suite.yaml"
    suite.write_text("name: s\ntasks:\n  - dataset: plurel-0\n    task: no-such-task\n")
    fails_in_one_line(["evaluate", str(checkpoint), "--datasets", str(dataset),
                       "--tasks", str(suite), *common], capsys, "no-such-task")  # fmt: skip
    assert not out.exists()
    # The stores exist now: a checkpoint reading 24-d text is refused before it is loaded.
    narrow = save_tiny_checkpoint(root / "narrow" / "step_1", bert, d_text=24)
    fails_in_one_line(["evaluate", str(narrow), "--datasets", str(dataset), *common],
                      capsys, "24-d", f"{HIDDEN}-d", "--text-model")  # fmt: skip
    assert not out.exists()
