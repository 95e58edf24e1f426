"""RelBench leaderboard files from predictions (`plurel-ray predict --submission-dir`).

A submission folder holds one `<dataset>__<task>.csv` per task: the test split's key
columns (entity column, time column) and the target column holding the predictions —
probabilities for a binary task, values on the target's own scale for a regression task
(`relbench.submit`). When the task folder holds the test labels, the file is scored with
RelBench's own `relbench.submit.evaluate_task` (AUROC; MAE and NMAE after mapping back to
the target's scale), exactly as the leaderboard would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from plurel_ray.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from plurel_ray.pipeline.predict import Prepared


def write_submission(prepared: Prepared, frame: pd.DataFrame, folder: Path) -> list[str]:
    """Write `<folder>/<dataset>__<task>.csv` and score it when the labels are known.

    Args:
        prepared: the predicted task (`pipeline.predict.prepare`), on the test split.
        frame: its predictions (`pipeline.predict.prediction_frame`), every test item.
        folder: the submission folder (created).

    Returns:
        lines saying where the file went and its scores.

    Raises:
        ConfigError: not the test split, a task RelBench cannot load (a derived
            TABLE.COLUMN task) or cannot score, or rows left out with --rows.
    """
    from relbench.submit import evaluate_task

    from plurel_ray.pipeline.predict import PREDICTION_COLUMN

    items, source = prepared.items, prepared.source
    if source.split != "test" or source.task is None:
        raise ConfigError(f"--submission-dir: a leaderboard file is the test split of a task "
                          f"folder; got {source.label} ({source.split} split)")  # fmt: skip
    task = _load_task(prepared.dataset, source.task)
    if len(frame) != len(items):
        raise ConfigError("--submission-dir needs every item of the test split: drop --rows")
    # RelBench's key columns are (entity column, time column) of its test table; ours the
    # entity key, with the timestamp for a forecast task: join on the ones we share.
    keys = [task.entity_col, task.time_col] if task.time_col else [task.entity_col]
    shared = [c for c in (items.key_column, items.time_column) if c in keys]
    if items.key_column not in shared:
        raise ConfigError(f"--submission-dir: RelBench keys {source.task} by {', '.join(keys)}, "
                          f"not by {items.key_column}")  # fmt: skip
    # RelBench's files hold the folder's keys (an imported database's are renumbered).
    frame = frame.copy()
    frame[items.key_column] = items.key_frame(folder_keys=True)[items.key_column].to_numpy()[
        prepared.wanted
    ]
    test = task.get_table("test", mask_input_cols=True).df[keys]
    csv = test.merge(frame.rename(columns={PREDICTION_COLUMN: task.target_col}), on=shared,
                     how="left")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prepared.dataset_name}__{source.task}.csv"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        csv.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    lines = [f"submission -> {path}"]
    try:
        scores = evaluate_task(f"{prepared.dataset_name}/{source.task}", path,
                               dataset=str(prepared.dataset))  # fmt: skip
    except (ValueError, KeyError) as err:  # RelBench's validation of the file
        lines.append(f"not scored: {' '.join(str(err).split())}")
        return lines
    shown = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
    lines.append(f"RelBench's evaluator on {prepared.dataset_name}/{source.task} (test): {shown}")
    return lines


def _load_task(dataset: Path, name: str):
    """The RelBench task `name` of the folder `dataset`, as RelBench loads it."""
    from relbench.load import RelBenchDataset

    try:
        return RelBenchDataset(str(dataset)).load_task(name)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"--submission-dir: RelBench cannot load task {name} of {dataset} "
                          f"({' '.join(str(err).split())[:200]})") from None  # fmt: skip
