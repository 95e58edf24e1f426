"""Training checkpoints: the model checkpoint plus `resume.pt`, everything needed to go on
exactly where a run stopped (optimizer, scheduler, step, RNG states, data position).

Everything in `resume.pt` is tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from plurel_ray.errors import CheckpointError
from plurel_ray.model.checkpoint import write_model_files
from plurel_ray.model.config import ModelConfig
from plurel_ray.train.config import TrainConfig
from plurel_ray.util.atomic_dir import atomic_directory
from plurel_ray.util.run_files import RESUME_FILE

_STATE_KEYS = ["data_position", "optimizer", "rng", "scheduler", "step"]
_REMEDY = "delete its checkpoint folder to resume from the one before, or start a new run"


def resume_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    data_position: int,
) -> dict[str, Any]:
    """Snapshot of a run between two steps.

    Args:
        optimizer, scheduler: their states are copied.
        step: optimizer steps taken.
        data_position: batches consumed from the source; a resumed run must be given a
            source that starts at this batch.
    """
    np_state = np.random.get_state(legacy=False)
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "data_position": data_position,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": {
                "bit_generator": np_state["bit_generator"],
                "key": np_state["state"]["key"].tolist(),
                "pos": int(np_state["state"]["pos"]),
                "has_gauss": int(np_state["has_gauss"]),
                "gauss": float(np_state["gauss"]),
            },
            "python": _to_lists(random.getstate()),
        },
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Put the torch, CUDA, numpy and python global RNGs back as `resume_state` found them."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    np_rng = rng["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_rng["bit_generator"],
            "state": {"key": np.array(np_rng["key"], dtype=np.uint32), "pos": np_rng["pos"]},
            "has_gauss": np_rng["has_gauss"],
            "gauss": np_rng["gauss"],
        }
    )
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_checkpoint(
    dir: str | os.PathLike,
    model: nn.Module,
    model_config: ModelConfig,
    train_config: TrainConfig,
    state: dict[str, Any],
    inputs: Mapping[str, Any] | None = None,
) -> Path:
    """Write model.safetensors, config.json and resume.pt into `dir`, atomically.

    Args:
        dir: the checkpoint folder to create.
        model, model_config, train_config: what config.json and the weights record.
        state: `resume_state(...)`, written as resume.pt.
        inputs: the context rules and text encoder of the training stores
            (`expectations.training_inputs`), recorded in config.json.
    """
    extra = {"train": train_config.to_dict(), "step": state["step"], **(inputs or {})}
    with atomic_directory(dir) as tmp:
        write_model_files(tmp, model, model_config, extra)
        torch.save(state, tmp / RESUME_FILE)
    return Path(dir)


def load_resume_state(dir: str | os.PathLike) -> dict[str, Any]:
    """Read `resume.pt` of a training checkpoint folder (the `start_state` of train_loop).

    Args:
        dir: the checkpoint folder.

    Raises:
        CheckpointError: resume.pt is missing, unreadable or not a resume state.
    """
    path = Path(dir) / RESUME_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: {dir} is a model checkpoint, not a training checkpoint; "
            "resume from a folder written by train_loop"
        )
    return _load(path, mmap=False)


def check_resume_state(dir: str | os.PathLike) -> None:
    """Check that `resume.pt` of a checkpoint folder loads, without reading its tensors
    into memory (they are memory-mapped), e.g. before handing the folder to workers.

    Args:
        dir: the checkpoint folder.

    Raises:
        CheckpointError: as `load_resume_state`.
    """
    path = Path(dir) / RESUME_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; {_REMEDY}")
    _load(path, mmap=True)


def _load(path: Path, mmap: bool) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises pickle, zip, EOF and runtime errors alike
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise CheckpointError(f"{path} is corrupt ({reason}); {_REMEDY}") from None
    missing = sorted(set(_STATE_KEYS) - set(state)) if isinstance(state, dict) else _STATE_KEYS
    if missing:
        raise CheckpointError(f"{path} is not a resume state (no {', '.join(missing)}); {_REMEDY}")
    return state


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value
