"""`plurel-ray predict`'s parser and its run (`pipeline/predict.py`); argparse only at
import, so `plurel-ray --help` stays fast."""

from __future__ import annotations

import argparse

from plurel_ray.pipeline.flags import (
    CHECKPOINT,
    CONTEXT_GRID,
    CONTEXT_SEED,
    CTX_LEN,
    DATASET,
    ENSEMBLE,
    MAX_BFS_WIDTH,
    OUT,
    ROWS,
    SPLIT,
    SUBMISSION_DIR,
    TASK,
    VERBOSE,
    add_store_arguments,
)
from plurel_ray.pipeline.generate_args import NUM_ACTORS


def add_predict_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `plurel-ray predict` to `commands` and return its parser."""
    pred = commands.add_parser(
        "predict",
        help="predict a task's rows with a checkpoint, over Ray actors",
        description="Predict every item of a task's split (or the rows of --rows) with "
        "CHECKPOINT and write OUT, a Parquet file: one row per item keyed by the entity's "
        "primary key (and the timestamp, for a forecast task), its prediction (a "
        "probability, or a value on the target's own scale), and the checkpoint, encoder "
        "and context settings in the file's metadata. Runs as Ray Data with --num-actors "
        "model actors (RAY_ADDRESS's cluster or an embedded one); contexts are seeded per "
        "item, so the file is the same for any number of actors.",
    )
    CHECKPOINT.add(pred)
    DATASET.add(pred, required=True)
    TASK.add(pred, required=True, help="a task of the dataset, or TABLE.COLUMN (a number "
                                       "or boolean column of a table)")  # fmt: skip
    SPLIT.add(pred, default="test")
    ROWS.add(pred)
    OUT.add(pred, default="predictions.parquet",
            help="the predictions file (default: ./%(default)s)")  # fmt: skip
    NUM_ACTORS.add(pred, default=1, help="model actors predicting at once, a GPU each where "
                   "the cluster has GPUs (default: %(default)s); the predictions are the same "
                   "for any number")  # fmt: skip
    SUBMISSION_DIR.add(pred)
    CTX_LEN.add(pred, default=None, help="cells per context (default: the checkpoint's "
                                         "training length)")  # fmt: skip
    MAX_BFS_WIDTH.add(pred, default=128)  # the sampler's (tests/unit/test_predict.py)
    CONTEXT_SEED.add(pred, default=0)
    CONTEXT_GRID.add(pred)
    ENSEMBLE.add(pred, default=1)
    add_store_arguments(pred)
    VERBOSE.add(pred)
    pred.set_defaults(run=run_predict)
    return pred


def run_predict(args: argparse.Namespace) -> int:
    """Run `plurel-ray predict` with the parsed flags."""
    from plurel_ray.pipeline.predict import PredictRequest, predict
    from plurel_ray.predict.core import ContextSettings

    settings = ContextSettings(ctx_len=args.ctx_len, max_bfs_width=args.max_bfs_width,
                               seed=args.context_seed)  # fmt: skip
    from plurel_ray.pipeline.pretrain_args import close_ray

    try:
        predict(PredictRequest(
            checkpoint=args.checkpoint, dataset=args.dataset, task=args.task, split=args.split,
            rows=args.rows, out=args.out, num_actors=args.num_actors, settings=settings,
            storage=args.storage, submission_dir=args.submission_dir,
            text_model=args.text_model, allow_encoder_mismatch=args.allow_encoder_mismatch,
            progress=args.progress, context_grid=tuple(args.context_grid or ()),
            ensemble=args.ensemble,
        ))  # fmt: skip
    finally:
        close_ray()
    return 0
