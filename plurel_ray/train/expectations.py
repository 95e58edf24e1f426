"""What a checkpoint expects of its inputs, and the checks against the stores it meets.

A model learns its inputs as the stores present them: contexts built and values
standardised under one set of context rules (docs/contexts.md), text cells embedded by
one sentence encoder. Every checkpoint's config.json records both, as training found
them in its stores:

    {"context_rules": "reference",
     "text_encoder": {"name": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}}

Training from, continuing or evaluating a checkpoint on stores embedded by another
encoder is refused (`EncoderMismatchError`) unless allowed: each text cell would be a
vector the model never learned to read, and nothing else would say so. Evaluating on
stores of other context rules is only warned about, once per evaluation: the model
still reads them, but its scores then belong to neither setting. A reference `.pt` (the
published checkpoint) records nothing; it was trained on the reference rules with
all-MiniLM-L12-v2 (docs/model.md), and is taken to expect those.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plurel_ray.errors import CheckpointError, EncoderMismatchError
from plurel_ray.store.meta import context_rules_of, read_meta
from plurel_ray.util.run_files import CONFIG_FILE, CONTEXT_RULES_KEY, TEXT_ENCODER_KEY

# What the published checkpoint was trained on (PluRel's reference pipeline).
REFERENCE_PT_INPUTS = {
    CONTEXT_RULES_KEY: "reference",
    TEXT_ENCODER_KEY: {"name": "sentence-transformers/all-MiniLM-L12-v2", "dim": 384},
}
_ALLOW = "--allow-encoder-mismatch"


class ContextRulesWarning(UserWarning):
    """A checkpoint is evaluated on stores of other context rules than it was trained on."""


def store_inputs(store: str | os.PathLike) -> dict[str, Any]:
    """The inputs a node store presents: its context rules and, once embedded, its text
    encoder ({"name", "dim"}; absent before `embed`).

    Args:
        store: the node store folder.

    Raises:
        StoreError: its meta.json is missing or damaged.
    """
    meta = read_meta(store)
    inputs: dict[str, Any] = {CONTEXT_RULES_KEY: context_rules_of(meta)}
    if embedding := meta.get("embedding"):
        inputs[TEXT_ENCODER_KEY] = {"name": embedding["model"], "dim": embedding["dim"]}
    return inputs


def training_inputs(stores: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """What a checkpoint trained on `stores` records in its config.json: the inputs of
    the first store (the sampler has checked that they all share context rules and one
    encoder before training starts).

    Args:
        stores: the training stores, at least one.
    """
    return store_inputs(stores[0])


def checkpoint_inputs(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The inputs `checkpoint` expects: those its config.json records (a checkpoint
    written before they were recorded gives {}: nothing to check), or `REFERENCE_PT_INPUTS`
    for a reference `.pt` file.

    Args:
        checkpoint: a checkpoint folder or a `.pt` file.

    Raises:
        CheckpointError: config.json is not valid JSON.
    """
    path = Path(checkpoint)
    if path.is_file():
        return dict(REFERENCE_PT_INPUTS)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        return {}  # loading the checkpoint says what is missing
    except ValueError as err:
        raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        return {}
    return {key: config[key] for key in (CONTEXT_RULES_KEY, TEXT_ENCODER_KEY) if key in config}


def check_text_encoder(
    checkpoint: str | os.PathLike,
    stores: Sequence[str | os.PathLike],
    *,
    allow_mismatch: bool = False,
) -> None:
    """Refuse `stores` embedded by another text encoder than `checkpoint` expects.

    Args:
        checkpoint: a checkpoint folder or a reference `.pt`.
        stores: the stores it is about to train or be evaluated on.
        allow_mismatch: check nothing (`--allow-encoder-mismatch`).

    Raises:
        EncoderMismatchError: one line naming the checkpoint, the store and both encoders.
    """
    expected = checkpoint_inputs(checkpoint).get(TEXT_ENCODER_KEY)
    if allow_mismatch or expected is None:
        return
    for store in dict.fromkeys(str(s) for s in stores):
        found = store_inputs(store).get(TEXT_ENCODER_KEY)
        if found is not None and found != expected:
            raise EncoderMismatchError(
                f"{checkpoint} expects text embedded by {_encoder(expected)}, but {store} is "
                f"embedded by {_encoder(found)}; re-embed the stores (plurel-ray embed STORE "
                f"--text-model {expected['name']}) or pass {_ALLOW}"
            )


def check_text_width(
    checkpoint: str | os.PathLike, d_text: int, stores: Sequence[str | os.PathLike]
) -> None:
    """Refuse stores whose text vectors are not `d_text` wide: the model's text input
    layer could not read them at all, so --allow-encoder-mismatch does not lift this.

    Args:
        checkpoint: the checkpoint, named in the message.
        d_text: its model's text width (`ModelConfig.d_text`).
        stores: the stores it is about to read; stores not embedded yet are skipped.

    Raises:
        EncoderMismatchError: one line naming the checkpoint, the store and both widths.
    """
    for store in dict.fromkeys(str(s) for s in stores):
        found = store_inputs(store).get(TEXT_ENCODER_KEY)
        if found is not None and found["dim"] != d_text:
            raise EncoderMismatchError(
                f"{checkpoint} reads {d_text}-d text vectors, but {store} is embedded by "
                f"{_encoder(found)}; re-embed the store with a {d_text}-d encoder "
                "(plurel-ray embed STORE --text-model NAME)"
            )


def warn_context_rules(checkpoint: str | os.PathLike, stores: Sequence[str | os.PathLike]) -> None:
    """Warn once (a `ContextRulesWarning`) when `stores` were written under other context
    rules than `checkpoint` was trained under; silent when they agree or it records none.

    Args:
        checkpoint: a checkpoint folder or a reference `.pt`.
        stores: its evaluation stores.
    """
    expected = checkpoint_inputs(checkpoint).get(CONTEXT_RULES_KEY)
    if expected is None:
        return
    for store in dict.fromkeys(str(s) for s in stores):
        found = store_inputs(store)[CONTEXT_RULES_KEY]
        if found != expected:
            warnings.warn(
                f"{checkpoint} was trained under context rules {expected!r}, but its "
                f"evaluation store {store} was written under {found!r}: its scores belong "
                "to neither setting (docs/contexts.md)",
                ContextRulesWarning,
                stacklevel=2,
            )
            return


def _encoder(record: Any) -> str:
    if isinstance(record, dict) and "name" in record:
        return f"{record['name']} ({record.get('dim')}-d)"
    return repr(record)
