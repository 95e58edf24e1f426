"""Pushes that run in the background, so training (or generation) never waits for the Hub.

    uploader = HubUploader("org/rt")            # in the driver: pushes in the background
    uploader.submit(folder, metrics=m)          # returns at once
    uploader.close()                            # waits; then read uploader.failures

The pushes run on huggingface_hub's own background runner (`HfApi.run_as_future`: one
thread per client, so they run one at a time, in the order submitted) and its requests
are retried by huggingface_hub's own backoff (`plurel_ray.hub.client`). What it sends
once is retried here (see `HubUploader`).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plurel_ray.errors import ConfigError, HubError
from plurel_ray.hub.client import UnretriedHubError, endpoint_of, hub_api, scrub, token_of
from plurel_ray.hub.push import push_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushFailure:
    """A push that failed for good; `error` never contains the token."""

    folder: Path
    repo_id: str
    error: str
    attempts: int


class HubUploader:
    """Push folders in the background: checkpoints by default, or anything `push` publishes.

    Create it in the driver process, which alone holds the token (Ray logs the
    runtime_env of its workers and actors). `submit` hands a push to huggingface_hub's
    background runner and returns at once; pushes run one at a time, in order. A push
    that fails for good (unknown revision, rejected token, out of attempts) is logged and
    appended to `failures`; it is never raised into training. The folder is read when its
    push runs, not copied at submit: keep it until `close` (atomic checkpoint folders are
    never rewritten in place).

    Retries: huggingface_hub retries the preupload, LFS upload and tree listing requests
    itself; a failure of those reaches us after its backoff and is final. It sends the
    repo creation, the model card check and the commit once (a commit whose answer was
    lost would otherwise be made twice), so an HTTP 5xx or 429 or a connection error there
    (`UnretriedHubError`) makes the whole push run again here, after an exponential
    backoff. Running a push again is safe: the repo is created only if missing, and
    huggingface_hub leaves out of a commit the files the branch already holds, so a commit
    that did land is not repeated.

    Args:
        repo_id: the repo, "org/name" (created if needed).
        push: what one push does, called as `push(folder, repo_id, **keywords)` and
            returning the commit oid: `push_checkpoint` or `push_dataset_folder`.
        attempts: tries per push, the first included.
        base_delay: seconds before the first retry; doubled after each.
        max_delay: the longest wait between two tries.
        private: visibility of a newly created repo.
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).
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
        # Appended to as pushes finish, in order; read them after `close`.
        self.failures: list[PushFailure] = []
        self.commits: list[str] = []
        self._attempts, self._base_delay, self._max_delay = attempts, base_delay, max_delay
        self._options = {"private": private, "endpoint": endpoint, "token": token_of(token)}
        # Only its background runner is used: each push makes its own client.
        self._runner = hub_api(endpoint_of(endpoint), self._options["token"])
        self._pending: list[tuple[Path, Future[None]]] = []
        self._stop = threading.Event()  # set when `close` gives up waiting
        self._closed = False

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
        future = self._runner.run_as_future(self._push, Path(folder), push_kwargs)
        self._pending.append((Path(folder), future))

    def close(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: no limit) for the queued pushes.

        Python waits for huggingface_hub's runner thread at exit, so when the time is up
        the pushes not yet started are cancelled (and counted as failures) and the running
        one is not tried again: a slow Hub then holds the process for one request at most.

        Args:
            timeout: seconds to wait, or None.

        Returns:
            True when all pushes have finished (succeeded or failed).
        """
        self._closed = True
        futures = [future for _, future in self._pending]
        _, not_done = concurrent.futures.wait(futures, timeout)
        if not not_done:
            return True
        self._stop.set()
        for folder, future in self._pending:
            if future.cancel():
                self._fail(folder, f"not pushed: close() stopped waiting after {timeout} s", 0)
        return False

    def __enter__(self) -> HubUploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _push(self, folder: Path, push_kwargs: dict[str, Any]) -> None:
        token = self._options["token"]
        for attempt in range(1, self._attempts + 1):
            try:
                oid = self._push_fn(folder, self.repo_id, **{**self._options, **push_kwargs})
            except UnretriedHubError as err:
                delay = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
                if attempt < self._attempts and not self._stop.is_set():
                    logger.warning(
                        "push of %s to %s failed (try %d of %d), retrying in %.1f s: %s",
                        folder, self.repo_id, attempt, self._attempts, delay, err,
                    )  # fmt: skip
                    if not self._stop.wait(delay):  # set: `close` gave up waiting
                        continue
                self._fail(folder, str(err), attempt)
            except HubError as err:  # permanent, or retried by huggingface_hub already
                self._fail(folder, str(err), attempt)
            except Exception as err:  # a missing file or a bug must not stop training either
                self._fail(folder, scrub(f"{type(err).__name__}: {err}", token), attempt)
            else:
                self.commits.append(oid)
            return

    def _fail(self, folder: Path, error: str, attempts: int) -> None:
        logger.error(
            "giving up pushing %s to %s after %d tries: %s", folder, self.repo_id, attempts, error
        )
        self.failures.append(PushFailure(folder, self.repo_id, error, attempts))
