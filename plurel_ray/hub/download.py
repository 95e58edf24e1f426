"""Repos of the Hugging Face Hub read back: a revision into a folder, or a model into the
shared Hugging Face cache.

    download("org/rt", revision="<sha>", local_dir="ckpt")   # a checkpoint, at one commit
    cached_model("sentence-transformers/all-MiniLM-L6-v2")   # downloaded once per machine

Endpoint and token: see `plurel_ray.hub.client`.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from plurel_ray import __version__
from plurel_ray.hub.card import LIBRARY_NAME
from plurel_ray.hub.client import endpoint_of, hub_api, hub_errors, token_of


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    local_dir: str | os.PathLike,
    repo_type: str = "model",
    endpoint: str | None = None,
    token: str | None = None,
) -> Path:
    """Download every file of a repo at a revision into `local_dir`.

    huggingface_hub keeps its download metadata in `local_dir/.cache/huggingface/`. Files
    already there and unchanged are not fetched again; use a fresh folder per revision, as
    files that exist only in another revision are not removed.

    Args:
        repo_id: "org/name".
        revision: a branch, tag or commit sha (default main).
        local_dir: the folder to fill (created if needed).
        repo_type: "model" (checkpoints) or "dataset" (databases).
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        `local_dir`.

    Raises:
        HubError: unknown repo or revision, rejected token, Hub unreachable.
    """
    endpoint, token = endpoint_of(endpoint), token_of(token)
    with hub_errors(f"{repo_type} repo {repo_id} at {endpoint}", revision, token):
        # Resolve the revision first: on an unknown repo snapshot_download returns a
        # non-empty local_dir as if it were the download (huggingface_hub 2.4 treats every
        # HTTP error as "offline"). A commit sha also pins all files to one commit.
        api = hub_api(endpoint, token)
        sha = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        path = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=sha,
            local_dir=Path(local_dir).expanduser(),
            endpoint=endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )
    return Path(path)


def cached_model(repo_id: str, *, endpoint: str | None = None, token: str | None = None) -> Path:
    """The files of model repo `repo_id` (its main branch) in the Hugging Face cache
    (HF_HUB_CACHE), downloaded on first use; once there, they are read without a request,
    so a sentence encoder from the Hub costs one download per machine.

    Args:
        repo_id: "org/name".
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the snapshot folder in the cache.

    Raises:
        HubError: not cached, and the repo is unknown or the Hub unreachable.
    """
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        pass  # not cached yet (or not a repo id: the Hub's answer below says so)
    endpoint, token = endpoint_of(endpoint), token_of(token)
    with hub_errors(f"model repo {repo_id} at {endpoint}", None, token):
        # Asked first: on an unknown repo snapshot_download reports "offline", not "unknown".
        hub_api(endpoint, token).repo_info(repo_id)
        path = snapshot_download(
            repo_id,
            endpoint=endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )
    return Path(path)
