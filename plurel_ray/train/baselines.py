"""Trivial baselines a task's scores are read against, scored on the model's own items.

    train = train_targets(source, "number")             # the train split's target values
    baseline = mean_baseline(train, labels)             # {"train_mean", "mean_r2", …}
    baseline = prior_baseline(train, labels, logits)    # {"prior", "logloss", …}

Each baseline is the best *constant* prediction under the score that judges it, fitted on
the train split only:

- regression: the train split's mean target. Under squared error no constant does better,
  so a model whose R² is not above the mean's has learnt nothing a constant would not
  know. The mean's R² on the items is ≤ 0 (0 only when the split's mean equals the
  items'); its MAE is RelBench's NMAE of the constant.
- binary: the train split's class prior p (the share of true labels). Its AUROC is 0.5 (a
  constant ranks nothing), so AUROC alone says only whether the model ranks better than
  chance. The figure that says whether the model *beats the prior* is the log-loss (mean
  binary cross-entropy of the predicted probability, the training loss of a boolean
  cell): the prior is the constant that minimises it, so a model below the prior's
  log-loss has probabilities that carry more than the base rate. A model can rank well
  (AUROC > 0.5) and still lose on log-loss when it is badly calibrated, e.g. zero-shot on
  a dataset whose base rate it never saw; the table shows both.

Values are read where the model reads them: the target cells of the store's train-split
items, through the native sampler, so they are standardised exactly as the model's
labels and predictions are (numbers by the training rows' mean and std; booleans
standardised or 0/1 by context rules, true when > 0). A train split of more than
`TRAIN_ITEMS_CAP` items is read from the first `TRAIN_ITEMS_CAP` items of its fixed
shuffle (seed `TRAIN_SEED`, epoch 0): a uniform random sample, the same on every run.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from plurel_ray.errors import EmptySourceError
from plurel_ray.store.sampler import Sampler, Source
from plurel_ray.train.evaluate import auroc, mean_absolute_error, r2_score

# 100k values fix a mean or a prior to ~0.3% of a std; reading them takes about a second.
TRAIN_ITEMS_CAP = 100_000
TRAIN_SEED = 0
# One cell per sequence is the target itself: nothing else of the context is built.
_TARGET_ONLY = 1
_READ_BATCH = 8192
# The prior's probability is kept off 0 and 1 so that a train split of one class gives a
# large, finite log-loss on items of the other (as scikit-learn's log_loss clips).
PROBABILITY_CLIP = 1e-7


def train_targets(source: Source, sem_type: str, *, cap: int = TRAIN_ITEMS_CAP) -> np.ndarray:
    """The target values of `source`'s train-split items, as the model reads them.

    Args:
        source: a task or table source (its own split is ignored: the train split's).
        sem_type: the target's semantic type, "number" or "boolean".
        cap: read at most this many items, the first of the split's fixed shuffle.

    Returns:
        float64 [n ≤ cap] standardised values (booleans: true when > 0); empty when the
        train split has no items.

    Raises:
        StoreError, SamplerError: the store or the source is unusable.
    """
    try:
        sampler = Sampler([dataclasses.replace(source, split="train")],
                          batch_size=min(cap, _READ_BATCH), ctx_len=_TARGET_ONLY,
                          seed=TRAIN_SEED)  # fmt: skip
    except EmptySourceError:
        return np.zeros(0)
    wanted = min(cap, sampler.num_items)
    values = []
    for index in range(-(-wanted // sampler.batch_size)):
        batch = sampler.batch(index)
        real = slice(0, int(batch["true_batch_size"]))
        targets = batch["is_targets"][real]
        values.append(batch[f"{sem_type}_values"][real][targets])
    return np.concatenate(values).astype(np.float64)[:wanted]


def mean_baseline(train: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The train split's mean predicted for every item.

    Args:
        train: the train split's target values (`train_targets`).
        labels: the evaluated items' target values.

    Returns:
        {"train_mean": the mean, "mean_r2", "mean_mae"} on `labels`; NaN where
        undefined (no train values, no items, or R² of constant labels).
    """
    mean = float(np.mean(train)) if len(train) else math.nan
    guess = np.full(len(labels), mean)
    return {"train_mean": mean, "mean_r2": r2_score(guess, labels),
            "mean_mae": mean_absolute_error(guess, labels)}  # fmt: skip


def prior_baseline(train: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """The train split's class prior predicted for every item, against the model's logits.

    Args:
        train: the train split's target values (`train_targets`; true when > 0).
        labels: the evaluated items' target values (true when > 0).
        logits: the model's boolean logit for each item.

    Returns:
        {"prior": p, "prior_auroc": 0.5 (NaN when AUROC is undefined on the items),
        "logloss": the model's, "prior_logloss": the prior's}, log-losses in nats.
    """
    truth = np.asarray(labels) > 0
    prior = float(np.mean(train > 0)) if len(train) else math.nan
    p = min(max(prior, PROBABILITY_CLIP), 1.0 - PROBABILITY_CLIP)
    return {
        "prior": prior,
        "prior_auroc": auroc(np.full(len(truth), prior), truth),
        "logloss": log_loss(np.asarray(logits, dtype=np.float64), truth),
        "prior_logloss": log_loss(np.full(len(truth), math.log(p / (1.0 - p))), truth),
    }


def log_loss(logits: np.ndarray, truth: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(`logits`) against `truth`, in nats, computed
    stably from the logits (log(1 + e^z) − y·z); NaN without items or for a non-finite
    logit.

    Args:
        logits: one logit per item.
        truth: one boolean label per item.
    """
    if len(truth) == 0 or not np.isfinite(logits).all():
        return math.nan
    return float(np.mean(np.logaddexp(0.0, logits) - truth * logits))


def beats_baseline(row: dict) -> bool | None:
    """Whether a task row's model beats its constant baseline on the baseline's own
    score: log-loss below the prior's (binary), R² above the mean's (regression); None
    when either side is undefined.

    Args:
        row: a row of `pipeline.evaluate_checkpoint` with model and baseline scores.
    """
    if "prior_logloss" in row:
        model, baseline, lower_is_better = row.get("logloss"), row["prior_logloss"], True
    else:
        model, baseline, lower_is_better = row.get("r2"), row.get("mean_r2"), False
    if model is None or baseline is None or math.isnan(model) or math.isnan(baseline):
        return None
    return model < baseline if lower_is_better else model > baseline
