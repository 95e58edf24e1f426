"""Predictions from a pretrained checkpoint, without Ray: `from_pretrained` loads one
(a checkpoint folder, a reference `.pt` or a Hub repo) and `core` predicts the items of a
task with contexts seeded per item, so a prediction does not depend on how the items are
batched or spread over actors. `pipeline/predict.py` runs it over Ray Data.
"""
