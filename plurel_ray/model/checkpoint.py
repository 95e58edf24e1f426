"""Checkpoints: `model.safetensors` + `config.json` in a folder, written atomically, and
import of the reference's plain PyTorch state-dict `.pt` files.

A checkpoint folder is complete or absent: files are written into a temporary sibling
folder that is renamed into place, so a crash mid-write never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from plurel_ray.errors import CheckpointError, ConfigError
from plurel_ray.model.config import ModelConfig
from plurel_ray.model.transformer import RelationalTransformer
from plurel_ray.util.atomic_dir import atomic_directory
from plurel_ray.util.run_files import CONFIG_FILE, WEIGHTS_FILE

FORMAT = "plurel-ray-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (on the CPU, float32) and the configs saved with it."""

    model: RelationalTransformer
    model_config: ModelConfig
    extra_config: dict[str, Any]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def write_model_files(
    folder: Path, model: nn.Module, model_config: ModelConfig, extra_config: Mapping[str, Any]
) -> None:
    """Write `model.safetensors` and `config.json` into `folder` (not atomically)."""
    if "model" in extra_config:
        raise ConfigError("extra_config must not hold the key 'model': it is the model config")
    state = {
        name: tensor.detach().to("cpu").contiguous()
        for name, tensor in unwrap_model(model).state_dict().items()
    }
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_config.to_dict(),
        **extra_config,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_checkpoint(
    dir: str | os.PathLike,
    model: nn.Module,
    model_config: ModelConfig,
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Save `model` as a checkpoint folder `dir`, atomically.

    Args:
        dir: the checkpoint folder to create (replaced if it exists).
        model: the model (DDP- or compile-wrapped is fine).
        model_config: its sizes, stored under "model" in config.json.
        extra_config: more JSON-serialisable entries for config.json (training config,
            step, versions).

    Returns:
        the folder.
    """
    with atomic_directory(dir) as tmp:
        write_model_files(tmp, model, model_config, extra_config or {})
    return Path(dir)


def load_checkpoint(
    path: str | os.PathLike, *, model_config: ModelConfig | None = None
) -> Checkpoint:
    """Load a checkpoint folder of ours or a reference `.pt` state dict, strictly.

    Args:
        path: a folder with model.safetensors + config.json, or a `.pt` file holding a
            state dict (or {"model": state dict}), loaded with `weights_only=True`.
        model_config: the sizes for a `.pt` file; inferred from its shapes when omitted.
            Ignored for a folder (its config.json says).

    Returns:
        the model (float32, CPU) with its configs.

    Raises:
        CheckpointError: missing file, unreadable content, or parameter names/shapes that
            do not match the model; the message lists the offending names.
    """
    path = Path(path)
    if path.is_dir():
        config = _read_config(path / CONFIG_FILE)
        model_config = _model_config_from(config, path / CONFIG_FILE)
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise CheckpointError(f"{weights} is missing; the checkpoint folder is incomplete")
        state_dict = load_file(str(weights))
        extra = {k: v for k, v in config.items() if k not in ("format", "format_version", "model")}
    elif path.is_file():
        state_dict = _read_state_dict(path)
        model_config = model_config or infer_model_config(state_dict, path)
        extra = {}
    else:
        raise CheckpointError(f"no checkpoint at {path}: expected a folder or a .pt file")
    model = RelationalTransformer(model_config)
    load_state_dict_strict(model, state_dict, source=str(path))
    return Checkpoint(model=model, model_config=model_config, extra_config=extra)


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "state dict"
) -> None:
    """Load `state_dict` into `model`, raising `CheckpointError` that names every missing
    and unexpected key and every shape mismatch."""
    expected = unwrap_model(model).state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{name}: checkpoint {list(state_dict[name].shape)}, model {list(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state_dict and state_dict[name].shape != tensor.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if mismatched:
            problems.append(f"shape mismatches {mismatched}")
        raise CheckpointError(
            f"{source} does not fit a RelationalTransformer: {'; '.join(problems)}. "
            "Pass the model_config it was trained with, or a checkpoint of this architecture"
        )
    unwrap_model(model).load_state_dict(state_dict, strict=True)


def infer_model_config(state_dict: Mapping[str, Tensor], source: str | os.PathLike) -> ModelConfig:
    """Read the sizes off the parameter shapes of a state dict."""
    needed = (
        "enc_dict.text.weight",
        "blocks.0.ffn.w1.weight",
        "blocks.0.attns.col.q_norm.weight",
    )
    absent = [name for name in needed if name not in state_dict]
    if absent:
        raise CheckpointError(
            f"{source}: cannot infer the model sizes, keys {absent} are missing; "
            "pass model_config=ModelConfig(...) explicitly"
        )
    d_model, d_text = state_dict["enc_dict.text.weight"].shape
    head_dim = state_dict["blocks.0.attns.col.q_norm.weight"].shape[0]
    blocks = {int(name.split(".")[1]) for name in state_dict if name.startswith("blocks.")}
    return ModelConfig(
        num_blocks=max(blocks) + 1,
        d_model=int(d_model),
        num_heads=int(d_model) // int(head_dim),
        d_ff=int(state_dict["blocks.0.ffn.w1.weight"].shape[0]),
        d_text=int(d_text),
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint folder is incomplete") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-save the checkpoint") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} config (its 'format' field differs)")
    return config


def _model_config_from(config: Mapping[str, Any], path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{path}: bad 'model' entry ({err})") from None


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike
        raise CheckpointError(
            f"{path} is not a PyTorch state dict loadable with weights_only=True ({err})"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        loaded = loaded["model"]  # the reference's training format wraps the state dict
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} does not hold a state dict (name → tensor)")
    return dict(loaded)
