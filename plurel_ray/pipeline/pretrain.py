"""Pretraining on Ray Train: sampler actors feed `TorchTrainer` workers.

    request = PretrainRequest(sources=[...], recipe=recipe("tiny", steps=300), name="run1")
    result = run_pretraining(request)         # result.checkpoint: model.safetensors + …

Why actors addressed by batch index rather than a Ray Data stream: each rank gets one
`SamplerActor` holding the native sampler built for (rank, world size), so ranks draw
disjoint items and the sampler's own epoch shuffle applies. A batch is a pure function
of (seed, batch index, rank, world size), so the data position is a single integer in
the checkpoint: resuming at step s asks for batch s, bit for bit what an uninterrupted
run would have seen. A stream would need its iterator state checkpointed and replayed.
The worker keeps `prefetch` requests in flight, so the actor builds the next batches
(GIL released, in its own process) while the step runs, and numpy arrays reach the
worker through the object store without a copy on the same node. The driver owns the
actors, so they outlive worker restarts (`FailureConfig`). With an evaluation schedule,
each actor also serves its rank's share of the held-out tasks (`train_eval.py`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
from ray.train import (
    Checkpoint,
    CheckpointConfig,
    FailureConfig,
    RunConfig,
    ScalingConfig,
    TrainingFailedError,
)

from plurel_ray.errors import ConfigError, PlurelError
from plurel_ray.pipeline.pretrain_checks import check_before_fit
from plurel_ray.pipeline.pretrain_eval import EvalTask, eval_tasks
from plurel_ray.pipeline.quiet import RemoteBar, StepBar
from plurel_ray.pipeline.resources import RunResources, wait_for_resources
from plurel_ray.store.sampler import Source
from plurel_ray.train.config import Recipe, TrainConfig
from plurel_ray.train.eval_schedule import EvalSchedule
from plurel_ray.train.expectations import training_inputs
from plurel_ray.util.run_files import METRICS_FILE

# The splits scored during training; best/ is chosen on val.
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class PretrainRequest:
    """A pretraining run, as plain data.

    Args:
        sources: the sampler sources (`plurel_ray.store.Source`: store, task, split).
        recipe: the model and training configuration.
        name: the run name; rerunning with the same name and storage resumes it.
        storage_path: where Ray Train keeps checkpoints (local folder or s3://…).
        resources: data-parallel workers (DDP; with a GPU each they use NCCL, else
            gloo), CPUs per worker and per sampler actor, restarts from the last
            checkpoint, and the longest wait for an autoscaler.
        prefetch: batch requests each worker keeps in flight.
        init_checkpoint: weights to start from (a checkpoint folder or a reference `.pt`).
        max_bfs_width: the sampler's width limit (docs/contexts.md).
        hub_repo: a Hugging Face model repo every checkpoint is pushed to, in the
            background from the driver process, which alone holds the token (retried; a
            failed push never stops training, but `run_pretraining` then raises HubError).
        data_summary: what the model card says about the data (databases, seeds,
            config hash).
        progress: rank 0's training progress bar.
        allow_encoder_mismatch: start from or resume a checkpoint whose text encoder is
            not the one that embedded the sources' stores (refused by default).
        eval_sources: the held-out tasks scored on val and test during training.
        eval_every, eval_pow2: when (`train.eval_schedule.EvalSchedule`); neither: never.
        eval_max_items: items per task and split (None: every item).
    """

    sources: Sequence[Source]
    recipe: Recipe
    name: str
    storage_path: str = field(default_factory=lambda: str(Path("runs").resolve()))
    resources: RunResources = field(default_factory=RunResources)
    prefetch: int = 4
    init_checkpoint: str | None = None
    max_bfs_width: int = 128
    hub_repo: str | None = None
    data_summary: dict | None = None
    progress: bool = True
    allow_encoder_mismatch: bool = False
    eval_sources: Sequence[Source] = ()
    eval_every: int = 0
    eval_pow2: bool = False
    eval_max_items: int | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("a pretraining run needs at least one sampler source")
        if self.prefetch < 1:
            raise ConfigError("prefetch must be ≥ 1")
        if self.eval_max_items is not None and self.eval_max_items < 1:
            raise ConfigError(f"--eval-max-items must be ≥ 1, got {self.eval_max_items}")

    def eval_schedule(self) -> EvalSchedule | None:
        """The evaluation schedule, None when there is none or nothing to evaluate."""
        schedule = EvalSchedule(self.eval_every, self.eval_pow2, self.recipe.train.steps)
        return schedule if schedule.active and self.eval_sources else None


@ray.remote
class SamplerActor:
    """The native sampler of one training rank, serving batches by index, and the rank's
    evaluation samplers, one per held-out task and split (None where it has no items)."""

    def __init__(self, sources: list[Source], options: dict,
                 tasks: Sequence[EvalTask] = (), origins: dict | None = None) -> None:  # fmt: skip
        from plurel_ray.store.sampler import Sampler

        stores = {str(s.store) for s in (*sources, *(t.source for t in tasks))}
        local = _local_stores(stores, origins or {})
        self.sampler = Sampler([dataclasses.replace(s, store=local[str(s.store)])
                                for s in sources], **options)  # fmt: skip
        # Read here, where every store is on local disk.
        self._inputs = training_inputs(sorted({local[str(s.store)] for s in sources}))
        options = {k: options[k] for k in ("batch_size", "ctx_len", "max_bfs_width", "rank",
                                           "world_size")}  # fmt: skip
        self.eval_samplers = [
            dataclasses.replace(task, source=dataclasses.replace(
                task.source, store=local[str(task.source.store)])).sampler(**options)
            if task.scored else None
            for task in tasks
        ]  # fmt: skip

    def eval_num_items(self) -> list[int]:
        """Items of each evaluation task (0: none, or not scored)."""
        return [0 if s is None else s.num_items for s in self.eval_samplers]

    def eval_embedding_matrix(self, task: int):
        return self.eval_samplers[task].embedding_matrix()

    def eval_batch(self, task: int, index: int) -> dict:
        return self.eval_samplers[task].batch(index, compact=True)

    def batch(self, index: int) -> dict:
        return self.sampler.batch(index, compact=True)

    def embedding_matrix(self):
        return self.sampler.embedding_matrix()

    def training_inputs(self) -> dict:
        """The context rules and text encoder of the stores (what checkpoints record)."""
        return self._inputs


def _store_origins(stores: set[str]) -> dict[str, dict]:
    """Store path → where it was unpacked from, for the stores of a packed run that the
    driver unpacked into its cache (`packed_stores.store_origin`)."""
    from plurel_ray.pipeline.packed_stores import store_origin

    origins = {store: store_origin(store) for store in sorted(stores) if "://" not in store}
    return {store: origin for store, origin in origins.items() if origin is not None}


def _local_stores(stores: set[str], origins: dict[str, dict]) -> dict[str, str]:
    """Store path → a local path, since the sampler memory-maps a store's files: stores
    on object storage (s3://, gs://) are copied to this node's disk once; a store of a
    packed run (`origins`) that this node's disk lacks is unpacked from its shard into
    this node's cache (a node other than the driver's)."""
    from plurel_ray.pipeline.output import OutputRoot
    from plurel_ray.pipeline.packed_stores import unpack_origins
    from plurel_ray.store.meta import META_FILE

    lacking = [store for store in sorted(stores)
               if store in origins and not (Path(store) / META_FILE).is_file()]  # fmt: skip
    unpacked = unpack_origins([origins[store] for store in lacking])
    local = {store: str(path) for store, path in zip(lacking, unpacked, strict=True)}
    scratch = Path(tempfile.gettempdir()) / "plurel-ray-stores"
    for store in sorted(stores.difference(local)):
        root = OutputRoot(store)
        local[store] = store if root.is_local else str(root.fetch("", scratch))
    return local


def _batches(actor, start: int, prefetch: int) -> Iterator[dict]:
    """Batches `start, start+1, …` of `actor`, with `prefetch` requests in flight."""
    pending = collections.deque(actor.batch.remote(i) for i in range(start, start + prefetch))
    index = start + prefetch
    while True:
        ref = pending.popleft()
        pending.append(actor.batch.remote(index))
        index += 1
        yield ray.get(ref)


def _train_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: resume or initialise, then `train_loop`."""
    import torch
    from ray.train.torch import prepare_model

    from plurel_ray.model.checkpoint import load_checkpoint
    from plurel_ray.model.config import ModelConfig
    from plurel_ray.model.transformer import init_model
    from plurel_ray.train.config import TrainConfig
    from plurel_ray.train.eval_log import restore
    from plurel_ray.train.loop import train_loop
    from plurel_ray.train.precision import resolve_device, resolve_precision
    from plurel_ray.train.resume import load_resume_state

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    model_config = ModelConfig.from_dict(config["model"])
    train_config = TrainConfig(**{**config["train"], "betas": tuple(config["train"]["betas"])})
    torch.manual_seed(train_config.seed)
    model = init_model(model_config, train_config.seed)
    start_state = None
    run_dir = Path(tempfile.mkdtemp(prefix=f"plurel-train-rank{rank}-"))
    if (checkpoint := ray.train.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            model.load_state_dict(load_checkpoint(folder).model.state_dict())
            start_state = load_resume_state(folder)
            history = Path(folder) / METRICS_FILE
            if rank == 0 and history.is_file():
                # The resumed run continues the checkpoint's curve (train_loop drops any
                # step after the checkpoint's), so metrics.jsonl holds every step once.
                shutil.copy(history, run_dir / METRICS_FILE)
            if rank == 0:
                restore(Path(folder), run_dir)  # eval.jsonl and best/, continued alike
    elif config["init_checkpoint"] is not None:
        loaded = load_checkpoint(config["init_checkpoint"], model_config=model_config)
        model.load_state_dict(loaded.model.state_dict())
    if world_size > 1:
        # DDP wraps a model already on its device; train_loop then finds it in place.
        model = prepare_model(model, move_to_device=train_config.device != "cpu")

    actor = config["samplers"][rank]
    text_emb = np.array(ray.get(actor.embedding_matrix.remote()))  # writable: torch needs it
    inputs = ray.get(actor.training_inputs.remote())
    start = 0 if start_state is None else start_state["data_position"]
    # The driver pushes to the Hub (`HubSync`): rank 0 only says which checkpoint is new.
    hub_queue = config["hub_queue"] if rank == 0 else None

    def report(step: int, folder: Path | None) -> None:
        metrics = {"step": step}
        if folder is not None:
            log = run_dir / METRICS_FILE
            shutil.copy(log, folder / METRICS_FILE)  # the run's curve travels with it
            metrics.update(json.loads(log.read_text().splitlines()[-1]))
        name = f"step_{step:08d}"
        ray.train.report(
            metrics,
            checkpoint=None if folder is None else Checkpoint.from_directory(folder),
            checkpoint_dir_name=name,
        )
        if hub_queue is not None and folder is not None:
            hub_queue.put({"dir": name, "metrics": metrics})  # persisted once report returns

    schedule, on_evaluate = config["eval_schedule"], None
    if schedule is not None:
        from plurel_ray.pipeline.train_eval import make_evaluator

        precision = resolve_precision(train_config.precision, resolve_device(train_config.device))
        on_evaluate = make_evaluator(
            actor, config["eval_tasks"], batch_size=train_config.batch_size,
            max_items=config["eval_max_items"], precision=precision, rank=rank,
            world_size=world_size,
        )  # fmt: skip
    # Rank 0's bar is shown by the driver (`quiet.StepBar`): Ray relays no worker output
    # unless --verbose.
    board = config["step_board"]
    try:
        train_loop(model, _batches(actor, start, config["prefetch"]), text_emb, train_config,
                   run_dir, start_state=start_state, on_checkpoint=report, rank=rank,
                   world_size=world_size, progress=board is not None,
                   bar_factory=RemoteBar.factory(board), inputs=inputs,
                   eval_schedule=schedule, on_evaluate=on_evaluate)  # fmt: skip
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_pretraining(request: PretrainRequest) -> ray.train.Result:
    """Train `request.recipe` on its sources with `request.resources.num_workers` Ray
    Train workers.

    Returns:
        Ray Train's result: `.checkpoint` is the last checkpoint folder (model.safetensors,
        config.json, resume.pt, metrics.jsonl; with an evaluation schedule eval.jsonl and
        best/, also put into the run folder), `.metrics` the last reported metrics.

    Raises:
        ConfigError: the cluster cannot fit the workers and samplers (checked before
            any actor starts; on an autoscaling cluster after `resource_wait_s`).
        CheckpointError: the checkpoint the run resumes from is corrupt.
        EncoderMismatchError: the checkpoint it starts from or resumes expects text from
            another encoder than the stores' (unless `allow_encoder_mismatch`).
        PlurelError: another typed error a training worker raised.
        HubError: with `hub_repo`, a checkpoint could not be pushed (after training).
    """
    from plurel_ray.pipeline.ray_stages import ensure_ray

    ensure_ray()
    resources = request.resources
    wait_for_resources(resources)
    train = request.recipe.train
    if request.recipe.train.checkpoint_every == 0:
        train = dataclasses.replace(train, checkpoint_every=train.steps)  # resumable at the end
    options = {
        "batch_size": train.batch_size, "ctx_len": train.ctx_len,
        "max_bfs_width": request.max_bfs_width, "seed": train.seed,
        "world_size": resources.num_workers,
    }  # fmt: skip
    schedule = request.eval_schedule()
    tasks = []
    if schedule is not None:
        tasks = [task for split in EVAL_SPLITS for task in eval_tasks(request.eval_sources, split)]
    # Every exit — an error, Ctrl-C, a failed fit — kills the samplers: on a cluster that
    # outlives the driver's Ray session, they would otherwise keep their CPUs.
    samplers: list = []
    origins = _store_origins({str(s.store) for s in (*request.sources, *(t.source for t in tasks))})
    try:
        for rank in range(resources.num_workers):
            samplers.append(SamplerActor.options(num_cpus=resources.sampler_cpus).remote(
                list(request.sources), {**options, "rank": rank}, tasks, origins
            ))  # fmt: skip
        result = _fit(request, train, samplers, schedule, tasks)
    finally:
        for actor in samplers:
            ray.kill(actor)
    if schedule is not None and result.checkpoint is not None:
        from plurel_ray.pipeline.train_eval import publish_eval_files

        publish_eval_files(result.checkpoint)
    return result


def _fit(request: PretrainRequest, train: TrainConfig, samplers: list,
         schedule: EvalSchedule | None, tasks: list[EvalTask]) -> ray.train.Result:  # fmt: skip
    """Build the TorchTrainer of `request` over `samplers` (and its evaluation `schedule`
    of `tasks`) and run it to the end."""
    from ray.train.torch import TorchConfig, TorchTrainer

    check_before_fit(request)
    resources = request.resources
    sync = None
    if request.hub_repo is not None:
        from plurel_ray.pipeline.hub_sync import HubSync

        card = {"recipe": dataclasses.asdict(request.recipe),
                "data_summary": request.data_summary}  # fmt: skip
        sync = HubSync(request.hub_repo, f"{request.storage_path}/{request.name}", card)
    bar = StepBar("train", enabled=request.progress)
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={
            "model": request.recipe.model.to_dict(),
            "train": {**train.to_dict(), "device": "cuda" if resources.use_gpu else "cpu"},
            "samplers": samplers,
            "prefetch": request.prefetch,
            "step_board": bar.board,
            "init_checkpoint": request.init_checkpoint,
            "hub_queue": None if sync is None else sync.queue,
            "eval_schedule": schedule,
            "eval_tasks": tasks,
            "eval_max_items": request.eval_max_items,
        },
        torch_config=TorchConfig(backend="nccl" if resources.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=resources.num_workers,
            use_gpu=resources.use_gpu,
            resources_per_worker=resources.worker_resources(),
        ),
        run_config=RunConfig(
            name=request.name,
            storage_path=request.storage_path,
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=3),
        ),
    )
    try:
        with bar:
            result = trainer.fit()
    except TrainingFailedError as err:
        if sync is not None:
            sync.close(check=False)  # push what was reported; the run's error comes first
        raise _user_error(err) or err from None
    except BaseException:
        if sync is not None:
            sync.close(check=False)
        raise
    if sync is not None:
        sync.close()  # raises HubError when a push failed: the job must not look green
    return result


def _user_error(err: TrainingFailedError) -> PlurelError | None:
    """The typed error a worker raised (a bad checkpoint, store or source), if any: the
    job reports it in one line rather than Ray's traceback."""
    failures = getattr(err, "worker_failures", {}) or {}
    for failure in failures.values():
        while failure is not None:
            if isinstance(failure, PlurelError):
                return failure
            failure = failure.__cause__
    return None
