"""`plurel_ray.from_pretrained`: the one loader of a pretrained Relational Transformer.

    pretrained = from_pretrained("org/plurel-rt@main")   # or a folder, or a reference .pt
    pretrained.model                     # eval mode, on the CPU, float32
    pretrained.text_encoder, pretrained.d_text, pretrained.context_rules, pretrained.ctx_len

A checkpoint folder records its model sizes, the inputs it was trained on (context rules,
text encoder: `train/expectations.py`) and its training config. A reference `.pt` records
none of these: its sizes are read off its shapes and its inputs are those the published
checkpoint was trained on. A Hub model repo `ORG/NAME[@REVISION]` is downloaded first,
once per revision, into the temp dir.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plurel_ray.errors import CheckpointError
from plurel_ray.model.config import ModelConfig
from plurel_ray.model.transformer import RelationalTransformer
from plurel_ray.util.run_files import CONTEXT_RULES_KEY, TEXT_ENCODER_KEY

# A Hugging Face repo id with an optional revision.
HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+(@[\w./-]+)?")
# The reference `.pt` records no training context length; the reference trained on 1024.
REFERENCE_CTX_LEN = 1024


@dataclass(frozen=True)
class Pretrained:
    """A loaded checkpoint and what it expects of its inputs.

    Args:
        model: the model, in eval mode, on the CPU, float32.
        model_config: its sizes.
        path: the local checkpoint folder or `.pt` file (the download, for a Hub repo).
        context_rules: the context rules it was trained under (docs/contexts.md), or None
            when the checkpoint records none.
        text_encoder: the sentence encoder its text cells were embedded by, or None.
        train_config: the training config it records (`TrainConfig.to_dict()`), or None.
    """

    model: RelationalTransformer
    model_config: ModelConfig
    path: Path
    context_rules: str | None
    text_encoder: str | None
    train_config: dict[str, Any] | None

    @property
    def d_text(self) -> int:
        """The width of the text vectors the model reads."""
        return self.model_config.d_text

    @property
    def ctx_len(self) -> int:
        """The context length it was trained on (the reference's 1024 when unrecorded)."""
        return int((self.train_config or {}).get("ctx_len", REFERENCE_CTX_LEN))


def resolve_checkpoint(text: str | os.PathLike, flag: str = "checkpoint") -> Path:
    """The local path of a checkpoint folder, a `.pt` file or a Hub model repo
    `ORG/NAME[@REVISION]` (downloaded first, once per revision, into the temp dir).

    Args:
        text: the path or repo id.
        flag: the flag or argument that gave it, named in errors.

    Raises:
        CheckpointError: neither an existing path nor a repo id.
        HubError: the repo or revision cannot be downloaded.
    """
    path = Path(text).expanduser().resolve()
    if path.exists():
        return path
    if not HUB_REPO.fullmatch(str(text)):
        raise CheckpointError(
            f"{flag} {text}: no such file or folder, and not a Hugging Face repo id "
            "(ORG/NAME or ORG/NAME@REVISION)"
        )
    from plurel_ray.hub.download import download

    repo, _, revision = str(text).partition("@")
    folder = Path(tempfile.gettempdir()) / "plurel-ray-init" / str(text).replace("/", "--")
    return download(repo, revision=revision or None, local_dir=folder)


def from_pretrained(checkpoint: str | os.PathLike, flag: str = "checkpoint") -> Pretrained:
    """Load a pretrained Relational Transformer.

    Args:
        checkpoint: a checkpoint folder, a reference `.pt` state dict, or a Hugging Face
            model repo `ORG/NAME[@REVISION]`.
        flag: the flag or argument that named it, in errors.

    Returns:
        the model in eval mode with its sizes, context rules, text encoder and training
        config.

    Raises:
        CheckpointError: no checkpoint at that path, or it does not hold a Relational
            Transformer.
        HubError: the repo or revision cannot be downloaded.
    """
    from plurel_ray.model.checkpoint import load_checkpoint
    from plurel_ray.train.expectations import checkpoint_inputs

    path = resolve_checkpoint(checkpoint, flag)
    loaded = load_checkpoint(path)
    inputs = checkpoint_inputs(path)
    encoder = inputs.get(TEXT_ENCODER_KEY)
    return Pretrained(
        model=loaded.model.eval(),
        model_config=loaded.model_config,
        path=path,
        context_rules=inputs.get(CONTEXT_RULES_KEY),
        text_encoder=encoder["name"] if isinstance(encoder, dict) else None,
        train_config=loaded.extra_config.get("train"),
    )
