"""Checkpoints and datasets to and from the Hugging Face Hub.

    push_checkpoint("runs/r/step_00000500", "org/rt", recipe=r, metrics=m)  # one commit -> sha
    uploader = HubUploader("org/rt")            # in the driver: pushes in the background
    uploader.submit(folder, metrics=m)          # returns at once; retries 5xx with backoff
    uploader.close(timeout=600)
    push_dataset_folder("data/", "org/plurel-dbs")    # one commit per database
    download("org/rt", revision="<sha>", local_dir="ckpt")

Endpoint: `endpoint=`, else HF_ENDPOINT read at call time (huggingface_hub reads it once,
at import), else huggingface.co. Token: `token=`, else HF_TOKEN, else the login of
`hf auth login`. The token travels only in the Authorization header: it is removed from
every message this module logs or raises and from the model card.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    get_token,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile

# huggingface_hub 2.x moved from httpx to httpx2; this alias follows whichever it uses.
from huggingface_hub.utils import httpx

from plurel_ray import __version__
from plurel_ray.errors import CheckpointError, ConfigError, DatasetError, HubError
from plurel_ray.hub.card import LIBRARY_NAME, model_card
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
# HTTP statuses after which the same push may well succeed.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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
        endpoint: the Hub URL (see the module docstring).
        token: the access token (see the module docstring).
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
    endpoint, token = _endpoint(endpoint), _token(token)
    config = json.loads((folder / CONFIG_FILE).read_text())
    step = config.get("step")
    inputs = {key: config[key] for key in (CONTEXT_RULES_KEY, TEXT_ENCODER_KEY) if key in config}
    prefix = path_in_repo.strip("/")
    card = model_card(repo_id, step, recipe, data_summary, metrics, names, prefix, inputs=inputs)
    operations = [CommitOperationAdd(_join(prefix, name), folder / name) for name in names]
    operations.append(CommitOperationAdd(_join(prefix, CARD_FILE), _scrub(card, token).encode()))
    api = _api(endpoint, token)
    with _hub_errors(f"model repo {repo_id} at {endpoint}", revision, token):
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=f"Checkpoint step {step}" if step is not None else f"Add {folder.name}",
            revision=revision,
        )
    logger.info("pushed %s to %s@%s", folder, repo_id, commit.oid[:12])
    return commit.oid


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
        endpoint: the Hub URL (see the module docstring).
        token: the access token (see the module docstring).

    Returns:
        `local_dir`.

    Raises:
        HubError: unknown repo or revision, rejected token, Hub unreachable.
    """
    endpoint, token = _endpoint(endpoint), _token(token)
    with _hub_errors(f"{repo_type} repo {repo_id} at {endpoint}", revision, token):
        # Resolve the revision first: on an unknown repo snapshot_download returns a
        # non-empty local_dir as if it were the download (huggingface_hub 2.4 treats every
        # HTTP error as "offline"). A commit sha also pins all files to one commit.
        sha = _api(endpoint, token).repo_info(repo_id, repo_type=repo_type, revision=revision).sha
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
        endpoint: the Hub URL (see the module docstring).
        token: the access token (see the module docstring).

    Returns:
        the snapshot folder in the cache.

    Raises:
        HubError: not cached, and the repo is unknown or the Hub unreachable.
    """
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        pass  # not cached yet (or not a repo id: the Hub's answer below says so)
    endpoint, token = _endpoint(endpoint), _token(token)
    with _hub_errors(f"model repo {repo_id} at {endpoint}", None, token):
        # Asked first: on an unknown repo snapshot_download reports "offline", not "unknown".
        _api(endpoint, token).repo_info(repo_id)
        path = snapshot_download(
            repo_id,
            endpoint=endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )
    return Path(path)


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
        endpoint: the Hub URL (see the module docstring).
        token: the access token (see the module docstring).

    Returns:
        the sha of the last commit.

    Raises:
        DatasetError: `folder` holds no database.
        HubError: unknown revision, rejected token, Hub unreachable.
    """
    databases = _database_folders(Path(folder).expanduser(), path_in_repo)
    endpoint, token = _endpoint(endpoint), _token(token)
    api = _api(endpoint, token)
    oid = ""
    with _hub_errors(f"dataset repo {repo_id} at {endpoint}", revision, token):
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


@dataclass(frozen=True)
class PushFailure:
    """A push that failed for good; `error` never contains the token."""

    folder: Path
    repo_id: str
    error: str
    attempts: int


class HubUploader:
    """Push folders from a background thread, so training (or generation) never waits for
    the Hub: checkpoints by default, or anything `push` publishes.

    Create it in the driver process, which alone holds the token (Ray logs the
    runtime_env of its workers and actors). `submit` queues a push and returns at once;
    one worker thread pushes in order, retrying transient failures (HTTP 5xx, 429,
    connection errors) with exponential backoff. A push that fails for good (unknown revision,
    rejected token, or out of attempts) is logged and appended to `failures`; it is never
    raised into training. The folder is read when its push runs, not copied at submit:
    keep it until `close` (atomic checkpoint folders are never rewritten in place).

    Args:
        repo_id: the model repo, "org/name" (created if needed).
        push: what one push does, called as `push(folder, repo_id, **keywords)` and
            returning the commit oid: `push_checkpoint` or `push_dataset_folder`.
        attempts: tries per push, the first included.
        base_delay: seconds before the first retry; doubled after each.
        max_delay: the longest wait between two tries.
        private: visibility of a newly created repo.
        endpoint: the Hub URL (see the module docstring).
        token: the access token (see the module docstring).
    """

    def __init__(
        self,
        repo_id: str,
        *,
        push: Callable[..., str] | None = None,
        attempts: int = 5,
        base_delay: float = 2.0,
        max_delay: float = 60.0,
        private: bool = True,
        endpoint: str | None = None,
        token: str | None = None,
    ) -> None:
        if attempts < 1 or base_delay < 0 or max_delay < 0:
            raise ConfigError(
                f"HubUploader needs attempts ≥ 1 and delays ≥ 0, got attempts={attempts}, "
                f"base_delay={base_delay}, max_delay={max_delay}"
            )
        self.repo_id = repo_id
        self._push_fn = push or push_checkpoint
        # Appended to by the worker thread; read them after `close`.
        self.failures: list[PushFailure] = []
        self.commits: list[str] = []
        self._attempts, self._base_delay, self._max_delay = attempts, base_delay, max_delay
        self._options = {"private": private, "endpoint": endpoint, "token": _token(token)}
        self._queue: queue.Queue[tuple[Path, dict[str, Any]] | None] = queue.Queue()
        self._closed = False
        # A daemon thread: a Hub that hangs must not keep a finished training process alive.
        self._thread = threading.Thread(target=self._work, name="hub-uploader", daemon=True)
        self._thread.start()

    def submit(self, folder: str | os.PathLike, **push_kwargs: Any) -> None:
        """Queue a push of `folder`; returns at once.

        Args:
            folder: the checkpoint folder.
            **push_kwargs: keywords of `push` (for `push_checkpoint`: recipe,
                data_summary, metrics, revision, path_in_repo, include_resume; private,
                endpoint and token override the uploader's); checked here, so a typo
                raises TypeError now rather than failing the push later.
        """
        if self._closed:
            raise RuntimeError("HubUploader.submit after close()")
        inspect.signature(self._push_fn).bind(folder, self.repo_id, **push_kwargs)
        self._queue.put((Path(folder), push_kwargs))

    def close(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: no limit) for the queued pushes.

        Returns:
            True when all pushes have finished (succeeded or failed).
        """
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> HubUploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            self._push(*item)

    def _push(self, folder: Path, push_kwargs: dict[str, Any]) -> None:
        token = self._options["token"]
        for attempt in range(1, self._attempts + 1):
            try:
                oid = self._push_fn(folder, self.repo_id, **{**self._options, **push_kwargs})
            except HubError as err:
                if err.transient and attempt < self._attempts:
                    delay = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
                    logger.warning(
                        "push of %s to %s failed (try %d of %d), retrying in %.1f s: %s",
                        folder, self.repo_id, attempt, self._attempts, delay, err,
                    )  # fmt: skip
                    time.sleep(delay)
                    continue
                self._fail(folder, str(err), attempt)
            except Exception as err:  # a missing file or a bug must not stop training either
                self._fail(folder, _scrub(f"{type(err).__name__}: {err}", token), attempt)
            else:
                self.commits.append(oid)
            return

    def _fail(self, folder: Path, error: str, attempts: int) -> None:
        logger.error(
            "giving up pushing %s to %s after %d tries: %s", folder, self.repo_id, attempts, error
        )
        self.failures.append(PushFailure(folder, self.repo_id, error, attempts))


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


def _endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _token(token: str | None) -> str | None:
    return token or get_token()


def _api(endpoint: str, token: str | None) -> HfApi:
    return HfApi(
        endpoint=endpoint, token=token, library_name=LIBRARY_NAME, library_version=__version__
    )


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "hf_***") if token else text


@contextlib.contextmanager
def _hub_errors(where: str, revision: str | None, token: str | None) -> Iterator[None]:
    """Turn the client's errors into one-line `HubError`s that say what to fix."""
    try:
        yield
    except Exception as err:
        hub_error = _as_hub_error(err, where, revision, token)
        if hub_error is None:
            raise
        # `from None`: the client's exception holds the request, Authorization header included.
        raise hub_error from None


def _as_hub_error(
    err: Exception, where: str, revision: str | None, token: str | None
) -> HubError | None:
    detail = _scrub(" ".join(str(err).split()), token)
    if isinstance(err, RevisionNotFoundError):
        return HubError(
            f"{where} has no revision {revision or 'main'!r}: pass a branch, tag or commit "
            "sha that it has"
        )
    if isinstance(err, RepositoryNotFoundError):
        return HubError(
            f"{where} does not exist or your token cannot see it: check the repo id and "
            "type (model or dataset), and set HF_TOKEN or run `hf auth login` for a private repo"
        )
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code
        if status in (401, 403):
            return HubError(
                f"{where} refused the token (HTTP {status}): set HF_TOKEN or run `hf auth "
                "login` with a token that has access (write access to push)"
            )
        if status in TRANSIENT_STATUS or status >= 500:
            return HubError(f"{where} failed (HTTP {status}), try again: {detail}", transient=True)
        return HubError(f"{where} answered HTTP {status}: {detail}")
    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"HF_HUB_OFFLINE is set: unset it to reach {where}")
    if isinstance(err, (httpx.TransportError, LocalEntryNotFoundError)):
        # LocalEntryNotFoundError: snapshot_download's word for "the Hub did not answer".
        return HubError(
            f"cannot reach {where} ({detail}); check the network and HF_ENDPOINT",
            transient=True,
        )
    if isinstance(err, HFValidationError):
        return HubError(f"{where}: {detail}")
    return None
