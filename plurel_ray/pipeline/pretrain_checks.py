"""Checks the driver makes before Ray Train starts a run (`pretrain.run_pretraining`):
the resume state is readable and the checkpoint the run starts from or resumes expects
the text encoder of the run's stores. Each failure is one typed error here, rather than
a worker failure that Ray retries `max_failures` times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plurel_ray.pipeline.pretrain import PretrainRequest

# Where Ray Train records a run's checkpoints, the latest one first to resume from.
_RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"


def check_before_fit(request: PretrainRequest) -> None:
    """Raise CheckpointError for a corrupt resume state and EncoderMismatchError for a
    checkpoint expecting another text encoder than the stores' (unless allowed)."""
    _check_resume_state(request)
    _check_text_encoder(request)


def _check_resume_state(request: PretrainRequest) -> None:
    """Read the resume state Ray Train will restore the run from, here in the driver: a
    corrupt resume.pt is then one CheckpointError naming it, not a worker failure that
    Ray retries `max_failures` times. Only local storage is checked before the run."""
    from plurel_ray.train.resume import check_resume_state

    if (latest := latest_checkpoint(request)) is not None:
        check_resume_state(latest)


def latest_checkpoint(request: PretrainRequest) -> Path | None:
    """The checkpoint folder Ray Train will resume the run from; None for a new run, and
    for storage that is not local (not looked into before the run)."""
    if "://" in request.storage_path:
        return None
    run = Path(request.storage_path) / request.name
    try:
        snapshot = json.loads((run / _RAY_SNAPSHOT).read_text())
        return run / snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a new run, or a snapshot Ray reads (and reports on) itself


def _check_text_encoder(request: PretrainRequest) -> None:
    """Refuse to start from, or go on with, a checkpoint that expects text from another
    encoder than the one that embedded the sources' stores (`expectations`). Stores on
    object storage are not checked: the driver does not fetch them."""
    from plurel_ray.train.expectations import check_text_encoder

    stores = [s.store for s in request.sources if "://" not in str(s.store)]
    allow = request.allow_encoder_mismatch
    if (latest := latest_checkpoint(request)) is not None:
        check_text_encoder(latest, stores, allow_mismatch=allow)  # resumed
    elif request.init_checkpoint is not None:
        check_text_encoder(request.init_checkpoint, stores, allow_mismatch=allow)
