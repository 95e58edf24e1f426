"""Checkpoints and generated databases pushed to the Hugging Face Hub, one commit each.

    push_checkpoint("runs/r/step_00000500", "org/rt", recipe=r, metrics=m)  # one commit -> sha
    push_dataset_folder("data/", "org/plurel-dbs")    # one commit per database
    push_shard(OutputRoot("run"), "shards/a1b2-000000.tar", "org/run")  # tar + manifest
    push_run_index(OutputRoot("run"), "org/run")      # index, record, card (packed_card.py)

Endpoint and token: see `plurel_ray.hub.client`. To push in the background, with retries,
see `plurel_ray.hub.uploader.HubUploader`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.hf_api import RepoFile

from plurel_ray.errors import CheckpointError, DatasetError
from plurel_ray.hub.card import model_card
from plurel_ray.hub.client import endpoint_of, hub_api, hub_errors, scrub, token_of
from plurel_ray.hub.packed_card import (
    INDEX_FILE,
    RECORD_FILE,
    SHARDS_DIR,
    indexed_shards,
    manifest_path,
    packed_run_card,
)
from plurel_ray.util.run_files import (
    CONFIG_FILE,
    CONTEXT_RULES_KEY,
    METRICS_FILE,
    RESUME_FILE,
    TEXT_ENCODER_KEY,
    WEIGHTS_FILE,
)

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"


def push_checkpoint(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    recipe: Mapping[str, Any] | None = None,
    data_summary: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    revision: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    token: str | None = None,
    path_in_repo: str = "",
    include_resume: bool = False,
) -> str:
    """Push a checkpoint folder and a generated model card to a model repo, in one commit.

    Uploads model.safetensors, config.json, metrics.jsonl when present (resume.pt only
    with `include_resume`) and README.md; the local folder is only read.

    Args:
        folder: the checkpoint folder (as written by the training loop).
        repo_id: "org/name"; the repo is created (`private`) if it does not exist.
        recipe: the training recipe (e.g. `dataclasses.asdict(recipe)`), shown in the card.
        data_summary: the pretraining data, e.g. {"num_databases": 100, "seeds": [...],
            "config_hash": "…"}; lists of integers are shown as ranges.
        metrics: evaluation metrics by name (nested dicts are joined with "/").
        revision: the branch to commit to (default main); it must exist.
        private: visibility of a newly created repo; an existing repo keeps its own.
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).
        path_in_repo: the folder in the repo for the files and card (default the root,
            whose README.md is the repo's model card).
        include_resume: also push resume.pt (optimizer and RNG state), to resume elsewhere.

    Returns:
        the commit sha.

    Raises:
        CheckpointError: a required file is missing from `folder`.
        HubError: unknown repo or revision, rejected token, Hub unreachable (`transient`).
    """
    folder = Path(folder).expanduser()
    names = [WEIGHTS_FILE, CONFIG_FILE, *([RESUME_FILE] if include_resume else [])]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder} is not a complete checkpoint folder: {missing} missing; pass a folder "
            "written by the training loop (resume.pt only exists in training checkpoints)"
        )
    if (folder / METRICS_FILE).is_file():
        names.append(METRICS_FILE)
    endpoint, token = endpoint_of(endpoint), token_of(token)
    config = json.loads((folder / CONFIG_FILE).read_text())
    step = config.get("step")
    inputs = {key: config[key] for key in (CONTEXT_RULES_KEY, TEXT_ENCODER_KEY) if key in config}
    prefix = path_in_repo.strip("/")
    card = model_card(repo_id, step, recipe, data_summary, metrics, names, prefix, inputs=inputs)
    operations = [CommitOperationAdd(_join(prefix, name), folder / name) for name in names]
    operations.append(CommitOperationAdd(_join(prefix, CARD_FILE), scrub(card, token).encode()))
    api = hub_api(endpoint, token)
    with hub_errors(f"model repo {repo_id} at {endpoint}", revision, token):
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=f"Checkpoint step {step}" if step is not None else f"Add {folder.name}",
            revision=revision,
        )
    logger.info("pushed %s to %s@%s", folder, repo_id, commit.oid[:12])
    return commit.oid


def push_dataset_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    path_in_repo: str | None = None,
    revision: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    token: str | None = None,
) -> str:
    """Push generated RelBench-3 databases to a dataset repo, one commit per database.

    Each database becomes a subfolder holding everything its folder holds (manifest.yaml,
    db/, tasks/, plurel.json, the README.md dataset card, schema.svg when present), so
    `relbench.load_dataset("org/name/<database>")` loads it. Files of an earlier push of
    the same database that the folder no longer has are deleted in the same commit.

    Args:
        folder: one database folder (it has a manifest.yaml), or a folder of them such as
            the output of `plurel-ray generate`.
        repo_id: "org/name"; the dataset repo is created (`private`) if needed.
        path_in_repo: for one database, its folder in the repo (default its folder name);
            for a folder of databases, the folder they go under (default the root).
        revision: the branch to commit to (default main); it must exist.
        private: visibility of a newly created repo.
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the sha of the last commit.

    Raises:
        DatasetError: `folder` holds no database.
        HubError: unknown revision, rejected token, Hub unreachable.
    """
    databases = _database_folders(Path(folder).expanduser(), path_in_repo)
    endpoint, token = endpoint_of(endpoint), token_of(token)
    api = hub_api(endpoint, token)
    oid = ""
    with hub_errors(f"dataset repo {repo_id} at {endpoint}", revision, token):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        for database, prefix in databases:
            files = _files_under(database)
            # At the repo root every other file would look stale: only clean subfolders.
            stale = _remote_files(api, repo_id, prefix, revision) - set(files) if prefix else set()
            operations = [CommitOperationDelete(_join(prefix, p)) for p in sorted(stale)]
            operations += [CommitOperationAdd(_join(prefix, p), database / p) for p in files]
            oid = api.create_commit(
                repo_id,
                operations,
                commit_message=f"Add database {database.name}",
                repo_type="dataset",
                revision=revision,
            ).oid
            logger.info("pushed %s to %s/%s@%s", database, repo_id, prefix, oid[:12])
    return oid


class RunFiles(Protocol):
    """The output root of a packed run, as `pipeline.output.OutputRoot` is one (the hub
    room reads the files of a run and may not import the pipeline)."""

    fs: pafs.FileSystem
    is_local: bool
    uri: str  # for messages

    def join(self, *parts: str) -> str: ...


def push_shard(
    root: RunFiles,
    shard: str,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    token: str | None = None,
) -> str:
    """Push a published shard of a packed output and its manifest to a dataset repo, at
    the same paths (`shards/<id>.tar`, `shards/<id>.json`), in one commit.

    huggingface_hub decides how the tar travels (LFS or Xet on the Hub, as the repo's
    .gitattributes and the preupload answer say); a remote root's files are copied to
    local scratch first and deleted after.

    Args:
        root: the packed output (`OutputRoot`).
        shard: the shard's path in it, `shards/<id>.tar`.
        repo_id: "org/name"; the dataset repo is created (`private`) if needed.
        revision: the branch to commit to (default main); it must exist.
        private: visibility of a newly created repo.
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the commit sha.

    Raises:
        DatasetError: the shard or its manifest is not in `root`.
        HubError: unknown revision, rejected token, Hub unreachable.
    """
    names = [shard, manifest_path(shard)]
    endpoint, token = endpoint_of(endpoint), token_of(token)
    api = hub_api(endpoint, token)
    where = f"dataset repo {repo_id} at {endpoint}"
    with _local_copies(root, names) as files, hub_errors(where, revision, token):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        operations = [CommitOperationAdd(name, files[name]) for name in names]
        oid = api.create_commit(repo_id, operations, commit_message=f"Add shard {shard}",
                                repo_type="dataset", revision=revision).oid  # fmt: skip
    logger.info("pushed %s to %s@%s", shard, repo_id, oid[:12])
    return oid


def push_run_index(
    root: RunFiles,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    token: str | None = None,
) -> str:
    """Push the index, generation record and dataset card of a packed output, with every
    shard the index names that the repo lacks, in one commit: call it when a run has
    published its index. The index on the Hub then never names a shard the repo does not
    hold, and a shard whose own push failed is pushed here.

    Args:
        root: the packed output (`OutputRoot`), its `_index.parquet` published.
        repo_id: "org/name"; the dataset repo is created (`private`) if needed.
        revision: the branch to commit to (default main); it must exist.
        private: visibility of a newly created repo.
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the commit sha (the head's when nothing changed: huggingface_hub leaves
        unchanged files out and makes no empty commit).

    Raises:
        DatasetError: `root` has no readable index or record, or lacks a shard its index names.
        HubError: unknown revision, rejected token, Hub unreachable.
    """
    index_bytes, record_bytes = _read_whole(root, INDEX_FILE), _read_whole(root, RECORD_FILE)
    try:
        index = pq.read_table(pa.BufferReader(index_bytes))
        record = json.loads(record_bytes)
    except (pa.ArrowException, ValueError) as err:
        raise DatasetError(f"{root.join(INDEX_FILE)} or {RECORD_FILE}: unreadable ({err}); "
                           "run `plurel-ray runs verify` on the output") from None  # fmt: skip
    endpoint, token = endpoint_of(endpoint), token_of(token)
    card = scrub(packed_run_card(repo_id, index, record), token).encode()
    api = hub_api(endpoint, token)
    with hub_errors(f"dataset repo {repo_id} at {endpoint}", revision, token):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        there = _remote_files(api, repo_id, SHARDS_DIR, revision)
        shards = indexed_shards(index)
        missing = [path for shard in shards for path in (shard, manifest_path(shard))
                   if path.removeprefix(f"{SHARDS_DIR}/") not in there]  # fmt: skip
        with _local_copies(root, missing) as files:
            operations = [CommitOperationAdd(path, files[path]) for path in missing]
            operations += [CommitOperationAdd(INDEX_FILE, index_bytes),
                           CommitOperationAdd(RECORD_FILE, record_bytes),
                           CommitOperationAdd(CARD_FILE, card)]  # fmt: skip
            oid = api.create_commit(
                repo_id, operations, repo_type="dataset", revision=revision,
                commit_message=f"Index of {index.num_rows:,} databases in {len(shards):,} shards",
            ).oid  # fmt: skip
    logger.info("pushed the index of %s to %s@%s (%d shard files it lacked)",
                root.uri, repo_id, oid[:12], len(missing))  # fmt: skip
    return oid


def _read_whole(root: RunFiles, name: str) -> bytes:
    try:
        with root.fs.open_input_stream(root.join(name)) as src:
            return src.read()
    except FileNotFoundError:
        raise DatasetError(f"{root.join(name)}: missing; push the index of a packed output "
                           "once its run has finished") from None  # fmt: skip


@contextlib.contextmanager
def _local_copies(root: RunFiles, names: list[str]) -> Iterator[dict[str, str]]:
    """Local paths of the files `names` of `root`: themselves on a local root, else copies
    in a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="plurel-ray-push-") as scratch:
        files = {}
        for name in names:
            source = root.join(name)
            if root.fs.get_file_info(source).type != pafs.FileType.File:
                raise DatasetError(f"{source}: missing; push only the shards of a published "
                                   "packed output (`plurel-ray runs verify` it)")  # fmt: skip
            files[name] = source
            if not root.is_local:
                files[name] = f"{scratch}/{name.replace('/', '_')}"
                pafs.copy_files(source, files[name], source_filesystem=root.fs)
        yield files


def _database_folders(folder: Path, path_in_repo: str | None) -> list[tuple[Path, str]]:
    if (folder / "manifest.yaml").is_file():
        return [(folder, (folder.name if path_in_repo is None else path_in_repo).strip("/"))]
    under = (path_in_repo or "").strip("/")
    found = sorted(
        p.parent for p in folder.glob("*/manifest.yaml") if not p.parent.name.startswith(".")
    )
    if not found:
        raise DatasetError(
            f"{folder} holds no database: expected a manifest.yaml in it or in its "
            "subfolders; pass a folder written by `plurel-ray generate`"
        )
    return [(db, _join(under, db.name)) for db in found]


def _files_under(folder: Path) -> list[str]:
    """Relative paths of the files in `folder`, skipping hidden ones (.cache, .tmp-…)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _remote_files(api: HfApi, repo_id: str, prefix: str, revision: str | None) -> set[str]:
    """Paths (relative to the folder `prefix`) of the files the repo has under it."""
    try:
        return {
            entry.path[len(prefix) + 1 :]
            for entry in api.list_repo_tree(
                repo_id, prefix, recursive=True, repo_type="dataset", revision=revision
            )
            if isinstance(entry, RepoFile)
        }
    except RemoteEntryNotFoundError:  # first push of this database
        return set()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name
