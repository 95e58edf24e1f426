"""`plurel-ray predict`: a checkpoint's predictions for a task of a RelBench-3 dataset, as
Ray Data over the items with model actors.

    request = PredictRequest("org/plurel-rt@main", "data/shop", "customer-churn")
    predict(request)          # predictions.parquet: entity key (, timestamp), prediction

The driver resolves the checkpoint (`predict.pretrained`), builds the dataset's store
when it has none (as `plurel-ray evaluate` does), refuses a store of another text width
or encoder, and maps items to rows (`predict.items`). The items then flow through
`map_batches` into K `ItemPredictor` actors (a GPU each where the cluster has GPUs, CPU
threads otherwise), each holding the model and an `ItemSampler`. Contexts are seeded per
item, so the file is the same for any K (`predict.core`). The file has one row per
item, keyed by the entity's primary key (and the label table's timestamp for a forecast
task), with the checkpoint, encoder and context settings in its Parquet metadata; it is
written beside its destination and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plurel_ray.errors import ConfigError
from plurel_ray.predict.core import PREDICT_BATCH_SIZE, ContextSettings

if TYPE_CHECKING:
    import pandas as pd

    from plurel_ray.predict.items import TaskItems
    from plurel_ray.predict.pretrained import Pretrained
    from plurel_ray.store.sampler import Source

PREDICTION_COLUMN = "prediction"
METADATA_KEY = b"plurel_ray.predict"
# Blocks per actor, so a slow actor does not hold the tail of the items.
BLOCKS_PER_ACTOR = 4


@dataclass(frozen=True)
class PredictRequest:
    """What `plurel-ray predict` was asked.

    Args:
        checkpoint: a checkpoint folder, a reference `.pt` or a Hub repo ORG/NAME[@REV].
        dataset: a RelBench-3 folder or Hub dataset id.
        task: a task of the dataset, or TABLE.COLUMN (a derived autocomplete task).
        split: the split whose items are predicted.
        rows: a Parquet/CSV file listing the rows to predict (default: every item).
        out: the predictions Parquet file.
        num_actors: model actors.
        settings: the context settings (`predict.core.ContextSettings`).
        storage: where the dataset's store is kept, <storage>/<name>/stores/<name>.
        submission_dir: also write and score RelBench's leaderboard CSV there.
        text_model: the encoder of a store made here (default: the checkpoint's).
        allow_encoder_mismatch: predict on stores embedded by another encoder.
        progress: progress bars.
        context_grid: --context-grid words (or one YAML file): settings tried on the val
            split, the best one predicting (`pipeline/predict_tuning.py`).
        ensemble: context seeds averaged (settings.seed, settings.seed + 1, …).
    """

    checkpoint: str
    dataset: str
    task: str
    split: str = "test"
    rows: str | None = None
    out: str = "predictions.parquet"
    num_actors: int = 1
    settings: ContextSettings = field(default_factory=ContextSettings)
    storage: str = "runs"
    submission_dir: str | None = None
    text_model: str | None = None
    allow_encoder_mismatch: bool = False
    progress: bool = True
    context_grid: tuple[str, ...] = ()
    ensemble: int = 1


@dataclass(frozen=True)
class Prepared:
    """What the driver resolved before any actor starts."""

    pretrained: Pretrained
    source: Source
    items: TaskItems
    wanted: np.ndarray  # the item numbers to predict, in output order
    dataset: Path
    dataset_name: str


def predict(request: PredictRequest, say: Callable[[str], None] = print) -> Path:
    """Predict `request.task`'s items and write `request.out` (and the submission).

    Args:
        request: what to predict, where, with how many actors.
        say: where the summary lines go.

    Returns:
        the predictions file.

    Raises:
        ConfigError: a bad flag, an unknown task, a --rows file with unknown keys.
        DatasetError, CheckpointError, HubError, EncoderMismatchError, StoreError.
    """
    from plurel_ray.pipeline import predict_tuning
    from plurel_ray.pipeline.context_tuning import tuning_metadata

    if request.num_actors < 1:
        raise ConfigError(f"--num-actors must be ≥ 1, got {request.num_actors}")
    plan = predict_tuning.tuning_plan(request)
    prepared = prepare(request)
    settings = request.settings.resolved(prepared.pretrained)
    tuning = None
    if plan is None:
        predictions = run_actors(request, prepared, settings)
    else:  # a grid tried on val, seeds averaged: each a `run_actors` pass
        tuning = predict_tuning.tune_predictions(plan, request, prepared, settings)
        predictions, settings = tuning.predictions, tuning.chosen
    frame = prediction_frame(prepared.items, prepared.wanted, predictions)
    metadata = file_metadata(request, prepared, settings)
    if tuning is not None:
        metadata["context_tuning"] = tuning_metadata(tuning)
    out = write_predictions(frame, Path(request.out), metadata)
    if tuning is not None:
        report = predict_tuning.write_tuning_report(tuning, request, prepared)
        say(f"{predict_tuning.tuning_summary(tuning)} -> {report}")
    say(
        f"{len(frame)} predictions of {prepared.source.label} ({request.split}; "
        f"{summary(predictions)}) -> {out}"
    )
    if request.submission_dir is not None:
        from plurel_ray.pipeline.submission import write_submission

        for line in write_submission(prepared, frame, Path(request.submission_dir)):
            say(line)
    return out


def prepare(request: PredictRequest) -> Prepared:
    """Resolve checkpoint, dataset, store, task and rows, failing in one line before any
    actor starts (the store is built first when the dataset has none)."""
    from plurel_ray.pipeline.data_selection import real_datasets
    from plurel_ray.pipeline.prepare import checkpoint_stores
    from plurel_ray.pipeline.pretrain_data import local_folder
    from plurel_ray.predict.items import task_items
    from plurel_ray.predict.pretrained import from_pretrained
    from plurel_ray.store.item_sampler import ItemSampler

    ((name, folder),) = real_datasets([request.dataset]).items()
    pretrained = from_pretrained(request.checkpoint, "checkpoint")
    storage = local_folder(request.storage, "--storage")
    store = checkpoint_stores({name: folder}, storage, pretrained, text_model=request.text_model,
                              allow_encoder_mismatch=request.allow_encoder_mismatch,
                              progress=request.progress)[name]  # fmt: skip
    source = task_source(store, request.task, request.split)
    items = task_items(ItemSampler([source], batch_size=1))
    wanted = np.arange(len(items), dtype=np.int64)
    if request.rows is not None:
        wanted = items.select(read_rows(Path(request.rows)), request.rows)
    return Prepared(pretrained, source, items, wanted, folder, name)


def task_source(store: Path, task: str, split: str) -> Source:
    """The source of `task` (a task of the store, or TABLE.COLUMN) on `split`.

    Raises:
        ConfigError: no such task, table or column (with the store's tasks named).
    """
    from plurel_ray.store.meta import read_meta
    from plurel_ray.store.sampler import Source

    meta = read_meta(store)
    tasks = [t["name"] for t in meta.get("tasks", [])]
    if task in tasks:
        return Source(store, task=task, split=split)
    table, dot, column = task.partition(".")
    tables = {t["name"] for t in meta.get("tables", []) if t.get("kind") == "db"}
    if dot and table in tables:
        return Source(store, table=table, target=column, split=split)
    raise ConfigError(f"--task {task}: not a task of {store} (tasks: {', '.join(tasks) or 'none'};"
                      " or name a table's column as TABLE.COLUMN)")  # fmt: skip


def read_rows(path: Path) -> pd.DataFrame:
    """The rows of a --rows file (Parquet, or CSV by its suffix)."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())[:200]
        kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
        raise ConfigError(f"--rows {path}: cannot read it as {kind} ({reason})") from None


class ItemPredictor:
    """A Ray Data actor: the model and an `ItemSampler` of one task split, predicting
    the item numbers of each batch ({"item": int64}) → {"item", "prediction"}."""

    def __init__(self, checkpoint: str, source: Source, settings: ContextSettings,
                 device: str, threads: int):  # fmt: skip
        import torch

        from plurel_ray.predict.core import Predictor
        from plurel_ray.predict.pretrained import from_pretrained

        torch.set_num_threads(threads)
        self.predictor = Predictor(from_pretrained(checkpoint), source, settings,
                                   device=device, num_threads=threads)  # fmt: skip

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = batch["item"]
        return {"item": items, PREDICTION_COLUMN: self.predictor.predict(items)}


def run_actors(
    request: PredictRequest, prepared: Prepared, settings: ContextSettings
) -> np.ndarray:
    """The predictions of `prepared.wanted`, in its order, from `request.num_actors`
    model actors over Ray Data.

    Args:
        request: num_actors, and the checkpoint as given (a Hub id downloads per node).
        prepared: the items and the source.
        settings: the context settings, ctx_len resolved.
    """
    import ray

    from plurel_ray.pipeline.ray_stages import ensure_ray

    ensure_ray()
    k = request.num_actors
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    threads = max(1, cpus // k)
    device, resources = ("cuda", {"num_gpus": 1}) if gpus else ("cpu", {"num_cpus": threads})
    checkpoint = request.checkpoint
    if Path(checkpoint).expanduser().exists():
        checkpoint = str(prepared.pretrained.path)
    unique = np.unique(prepared.wanted)
    blocks = min(len(unique), k * BLOCKS_PER_ACTOR)
    dataset = ray.data.from_items([{"item": int(i)} for i in unique], override_num_blocks=blocks)
    result = dataset.map_batches(
        ItemPredictor, fn_constructor_args=(checkpoint, prepared.source, settings, device, threads),
        batch_size=PREDICT_BATCH_SIZE, compute=ray.data.ActorPoolStrategy(size=k), **resources,
    ).to_pandas()  # fmt: skip
    by_item = dict(zip(result["item"].tolist(), result[PREDICTION_COLUMN].tolist(), strict=True))
    return np.array([by_item[int(i)] for i in prepared.wanted], dtype=np.float64)


def prediction_frame(items: TaskItems, wanted: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    """One row per wanted item: its key (and timestamp) and its prediction."""
    frame = items.key_frame().iloc[wanted].reset_index(drop=True)
    frame[PREDICTION_COLUMN] = predictions
    return frame


def file_metadata(
    request: PredictRequest, prepared: Prepared, settings: ContextSettings
) -> dict[str, Any]:
    """What the predictions file records: checkpoint, encoder, context settings, task."""
    items = prepared.items
    return {
        "checkpoint": request.checkpoint, "checkpoint_path": str(prepared.pretrained.path),
        "text_encoder": prepared.pretrained.text_encoder, "d_text": prepared.pretrained.d_text,
        "context_rules": prepared.pretrained.context_rules, "context": settings.to_dict(),
        "dataset": prepared.dataset_name, "task": prepared.source.label, "split": request.split,
        "task_type": items.task_type, "target": items.target, "key_column": items.key_column,
        "time_column": items.time_column,
        "prediction": "probability" if items.sem_type == "boolean" else "target's scale",
    }  # fmt: skip


def write_predictions(frame: pd.DataFrame, out: Path, metadata: dict[str, Any]) -> Path:
    """Write `frame` as Parquet with `metadata` (JSON under METADATA_KEY), atomically:
    into a hidden sibling, renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    recorded = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
    table = table.replace_schema_metadata(recorded)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata `write_predictions` recorded in a predictions file."""
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def summary(values: Sequence[float]) -> str:
    """min/mean/max of predictions, for the one-line report."""
    array = np.asarray(values, dtype=np.float64)
    return f"min {array.min():.4g}, mean {array.mean():.4g}, max {array.max():.4g}"
