"""Evaluation metrics: RelBench's AUROC and scikit-learn's R² and MAE against hand-computed
values, NaN where a score is undefined, and `evaluate` scoring the model's target cells."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from relbench.metrics import make_nmae

from plurel_ray.model import ModelConfig, batch_to_tensors, init_model
from plurel_ray.train import auroc, evaluate, r2_score
from plurel_ray.train.evaluate import mean_absolute_error
from plurel_ray.train.synthetic import SEM_BOOLEAN, SyntheticSchema, random_batch, random_text_emb

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=16)
VOCAB = 96


def test_auroc_matches_hand_computed_values():
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right.
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # Ties between a positive and a negative count one half: pairs (0.5, 0.5) → ½,
    # (0.5, 0.2), (0.9, 0.5), (0.9, 0.2) → 1 each: 3.5 / 4.
    assert auroc(np.array([0.5, 0.5, 0.2, 0.9]), np.array([1, 0, 0, 1])) == pytest.approx(0.875)
    assert auroc(np.full(6, 3.0), np.array([1, 0, 1, 0, 0, 1])) == pytest.approx(0.5)
    assert auroc(np.array([0.9, 0.1]), np.array([0, 1])) == pytest.approx(0.0)


def test_auroc_is_nan_where_undefined():
    assert math.isnan(auroc(np.array([0.2, 0.3]), np.array([1, 1])))  # one class only
    assert math.isnan(auroc(np.array([0.2, 0.3]), np.array([0, 0])))
    assert math.isnan(auroc(np.zeros(0), np.zeros(0, dtype=bool)))
    # A diverged model: no score rather than a rank of NaN among numbers.
    assert math.isnan(auroc(np.array([0.2, np.nan, 0.4]), np.array([0, 1, 1])))


def test_r2_matches_hand_computed_values():
    targets = np.array([1.0, 2.0, 3.0])
    assert r2_score(targets, targets) == pytest.approx(1.0)
    assert r2_score(np.full(3, 2.0), targets) == pytest.approx(0.0)
    # SS_res = 1, SS_tot = 2.
    assert r2_score(np.array([1.0, 2.0, 4.0]), targets) == pytest.approx(0.5)
    # SS_res = 8, SS_tot = 2: worse than the mean.
    assert r2_score(np.array([3.0, 2.0, 1.0]), targets) == pytest.approx(-3.0)


def test_r2_is_nan_where_undefined():
    # Equal targets: SS_tot = 0, whatever the predictions (scikit-learn would say 1 or 0).
    assert math.isnan(r2_score(np.ones(2), np.ones(2)))
    assert math.isnan(r2_score(np.array([0.0, 5.0]), np.ones(2)))
    assert math.isnan(r2_score(np.array([4.0]), np.array([3.0])))
    assert math.isnan(r2_score(np.zeros(0), np.zeros(0)))
    assert math.isnan(r2_score(np.array([1.0, np.inf]), np.array([1.0, 2.0])))


def test_mae_matches_hand_computed_values():
    assert mean_absolute_error(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0])) == (
        pytest.approx(1 / 3)
    )
    assert mean_absolute_error(np.zeros(2), np.array([1.0, -3.0])) == pytest.approx(2.0)
    # Defined where R² is not: equal targets.
    assert mean_absolute_error(np.array([1.0, 3.0]), np.full(2, 2.0)) == pytest.approx(1.0)
    assert math.isnan(mean_absolute_error(np.zeros(0), np.zeros(0)))
    assert math.isnan(mean_absolute_error(np.array([np.nan]), np.array([1.0])))


def test_mae_of_standardised_values_is_relbenchs_nmae():
    # The store standardises numbers by the training rows' mean and sample std (ddof 1).
    train = np.array([10.0, 20.0, 30.0, 40.0])
    mean, std = train.mean(), train.std(ddof=1)
    targets, predictions = np.array([15.0, 35.0]), np.array([12.0, 40.0])
    nmae = make_nmae(lambda: std)(targets, predictions)
    assert nmae == pytest.approx(4.0 / std)  # (3 + 5) / 2 over the std, 12.91
    ours = mean_absolute_error((predictions - mean) / std, (targets - mean) / std)
    assert ours == pytest.approx(nmae, rel=1e-12)


@pytest.mark.parametrize(
    "task, sem_type, metrics",
    [
        ("classification", SEM_BOOLEAN, ("auroc",)),
        ("regression", 0, ("r2", "mae")),
    ],
)
def test_evaluate_scores_the_target_cells(task, sem_type, metrics):
    rng = np.random.default_rng(6)
    schema = SyntheticSchema.random(rng, vocab_size=VOCAB, target_sem_type=sem_type)
    batches = [random_batch(rng, schema, 8, 32, mask_prob=0.0) for _ in range(2)]
    text_emb = random_text_emb(rng, VOCAB, SMALL.d_text)
    model = init_model(SMALL, seed=0)
    result = evaluate(model, batches, text_emb, task=task)
    assert set(result) == {"loss", "sequences", "items", *metrics}
    assert result["items"] == 16 and result["sequences"] == 16
    assert math.isfinite(result["loss"]) and all(math.isfinite(result[m]) for m in metrics)

    # The metrics are computed from the model's own predictions at the target cells.
    name = "boolean" if task == "classification" else "number"
    scores, labels = [], []
    for batch in batches:
        tensors = batch_to_tensors(batch)
        with torch.no_grad():
            predictions = model(tensors, torch.from_numpy(text_emb))[name]
        scores.append(predictions[tensors["is_targets"]].numpy())
        labels.append(tensors[f"{name}_values"][tensors["is_targets"]].numpy())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    if task == "classification":
        assert result["auroc"] == pytest.approx(auroc(scores, labels > 0))
    else:
        assert result["r2"] == pytest.approx(r2_score(scores, labels))
        assert result["mae"] == pytest.approx(float(np.abs(scores - labels).mean()), rel=1e-6)
