"""The training loop, usable without Ray: AdamW, one-cycle schedule, clipping, mixed
precision, optional torch.compile, per-step metrics, atomic resumable checkpoints.

Ray Train (in `plurel_ray.pipeline`) calls `train_loop` on every worker with a
DDP-wrapped model and its rank; nothing here knows about Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from plurel_ray.model.checkpoint import unwrap_model
from plurel_ray.model.loss import masked_loss
from plurel_ray.model.masks import AttentionMasks
from plurel_ray.train.config import TrainConfig
from plurel_ray.train.eval_log import EvalLog
from plurel_ray.train.eval_schedule import EvalSchedule
from plurel_ray.train.metrics_log import MetricsLog
from plurel_ray.train.optim import build_optimizer, build_scheduler
from plurel_ray.train.precision import autocast, prepare_model, resolve_device, resolve_precision
from plurel_ray.train.prefetch import Prefetcher
from plurel_ray.train.resume import restore_rng, resume_state, save_training_checkpoint
from plurel_ray.util.run_files import METRICS_FILE

CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainResult:
    """What a `train_loop` call did.

    Attributes:
        step: optimizer steps taken in total (including those before a resume).
        data_position: batches consumed in total.
        losses: the loss of every step this call took.
        metrics: the last step's metrics (loss, lr, grad_norm, tokens_per_s, …).
        checkpoints: the checkpoint folders this call wrote (rank 0 only).
    """

    step: int
    data_position: int
    losses: tuple[float, ...]
    metrics: dict[str, Any]
    checkpoints: tuple[Path, ...]


def forward_loss(
    model: nn.Module, batch: Mapping[str, Any], text_emb: Tensor | None, masks: AttentionMasks
) -> Tensor:
    """The masked-cell loss of `model` on `batch` (the part torch.compile compiles)."""
    return masked_loss(model(batch, text_emb, masks), batch)


def train_loop(
    model: nn.Module,
    batches: Iterator[dict],
    text_emb: np.ndarray | Tensor | None,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    start_state: dict[str, Any] | None = None,
    on_checkpoint: Callable[[int, Path | None], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    bar_factory: Callable[..., Any] = tqdm,
    inputs: Mapping[str, Any] | None = None,
    eval_schedule: EvalSchedule | None = None,
    on_evaluate: Callable[[int, nn.Module], list[dict] | None] | None = None,
) -> TrainResult:
    """Train `model` for `cfg.steps` steps or until `batches` runs out.

    Args:
        model: a RelationalTransformer, moved to the device (and to bfloat16 for
            precision "bf16-pure") in place; a DDP-wrapped one must be there already.
        batches: numpy batches of docs/contexts.md (compact or full form). On resume it must start
            at `start_state["data_position"]`.
        text_emb: [V, d_text] vocabulary embeddings for compact batches (None: full form).
        cfg: the training configuration.
        run_dir: metrics.jsonl and checkpoints/step_XXXXXXXX/ go here.
        start_state: `load_resume_state(checkpoint)` to continue a run; load the model
            weights from the same checkpoint. metrics.jsonl in `run_dir` keeps the steps
            up to the checkpoint's and continues from there (a fresh run starts it anew).
        on_checkpoint: called as (step, folder) after each checkpoint on every rank; the
            folder is None on ranks other than 0, which do not write.
        rank, world_size: this worker's place in data-parallel training; rank 0 alone
            writes metrics and checkpoints and shows a progress bar.
        progress: show that bar (metrics.jsonl is written either way).
        bar_factory: makes that bar, called with tqdm's keywords (total, initial, desc,
            disable): tqdm itself, or one that shows it elsewhere (a Ray worker's
            `quiet.RemoteBar`, shown by the driver).
        inputs: the context rules and text encoder of the training stores, recorded in
            every checkpoint's config.json (`expectations.training_inputs`).
        eval_schedule: the steps `on_evaluate` is called at: step 0 before the first
            update (not on resume: the checkpoint's step was evaluated before it was
            written), and a due step after its update, before its checkpoint.
        on_evaluate: called as (step, unwrapped model in eval mode) on every rank; rank
            0's returns the task rows (`pipeline.pretrain_eval.EvalTask.score`), which
            go to eval.jsonl and may replace best/ in `run_dir` (`eval_log.EvalLog`);
            every checkpoint then carries both.

    Returns:
        the steps taken, their losses and the last metrics.
    """
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = unwrap_model(model)
    prepare_model(raw, device, precision)
    model.train()
    text = None if text_emb is None else torch.as_tensor(text_emb).to(device)

    optimizer = build_optimizer(model, cfg, device)
    scheduler = build_scheduler(optimizer, cfg)
    step = data_position = 0
    if start_state is not None:
        optimizer.load_state_dict(start_state["optimizer"])
        scheduler.load_state_dict(start_state["scheduler"])
        step, data_position = start_state["step"], start_state["data_position"]
        restore_rng(start_state["rng"])

    loss_fn = torch.compile(forward_loss, dynamic=False) if cfg.compile else forward_loss
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    bar = bar_factory(total=cfg.steps, initial=step, desc="train",
                      disable=rank != 0 or not progress)  # fmt: skip
    log = MetricsLog(
        run_dir / METRICS_FILE if rank == 0 else None,
        world_size,
        bar if rank == 0 else None,
        defer=device.type == "cuda",
        start_step=step,
    )
    evaluations = None
    if on_evaluate is not None and eval_schedule is not None and eval_schedule.active:
        evaluations = EvalLog(run_dir, step) if rank == 0 else None
    extra_config = {"train": cfg.to_dict(), **(inputs or {})}

    def evaluate(at: int) -> None:
        log.flush()
        started = time.perf_counter()
        model.eval()
        rows = on_evaluate(at, raw)
        model.train()
        if evaluations is not None and rows is not None:
            evaluations.record(at, rows, time.perf_counter() - started, raw, extra_config)
        log.restart_clock()  # the evaluation's time is no step's

    def due(at: int) -> bool:
        return on_evaluate is not None and eval_schedule is not None and eval_schedule.due(at)

    vocab_size = None if text is None else text.shape[0]
    prefetcher = Prefetcher(batches, device, vocab_size)
    checkpoints: list[Path] = []
    try:
        if start_state is None and due(step):
            evaluate(step)  # before any update: the zero-shot score
        while step < cfg.steps:
            waited_from = time.perf_counter()
            try:
                batch, tokens = next(prefetcher)
            except StopIteration:
                break
            log.add_wait(time.perf_counter() - waited_from)

            masks = raw.attention_masks(batch)
            with autocast(device, precision):
                loss = loss_fn(model, batch, text, masks)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            data_position += 1
            log.record(step, loss, grad_norm, lr, tokens)
            if due(step):
                evaluate(step)

            if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                log.flush()
                folder = run_dir / CHECKPOINTS_DIR / f"step_{step:08d}"
                if rank == 0:
                    state = resume_state(optimizer, scheduler, step, data_position)
                    save_training_checkpoint(folder, raw, raw.config, cfg, state, inputs)
                    if evaluations is not None:
                        evaluations.copy_into(folder)
                    checkpoints.append(folder)
                if on_checkpoint is not None:
                    on_checkpoint(step, folder if rank == 0 else None)
                log.restart_clock()
    finally:
        prefetcher.close()
        log.close()
        bar.close()
    return TrainResult(
        step=step,
        data_position=data_position,
        losses=tuple(log.losses),
        metrics=dict(log.last),
        checkpoints=tuple(checkpoints),
    )
