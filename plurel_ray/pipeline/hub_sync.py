"""Checkpoints of a Ray Train run pushed to the Hub from the driver process alone.

Ray writes the runtime environment of every worker and actor it starts to its session
logs (its runtime-env agent's log, readable by every local user): a Hub token handed to the
training workers that way lands on disk in plain text. So no Ray process is given the
token. Rank 0 sends each checkpoint's folder name and metrics through a queue actor
(names and numbers only); a thread of the driver copies the persisted checkpoint out of
the run's storage and pushes it with `HubUploader`, which reads HF_TOKEN (or the
`hf auth login` token) from the driver's own environment.

    sync = HubSync("org/rt", run_path, card={"recipe": ..., "data_summary": ...})
    ... rank 0: sync.queue.put({"dir": "step_00000500", "metrics": {...}}) ...
    sync.close()                     # waits for the pushes; HubError if any failed
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from plurel_ray.errors import HubError

logger = logging.getLogger(__name__)

_SHOWN_ERRORS = 200  # characters of the last push error shown in the HubError


class HubSync:
    """Push every checkpoint rank 0 reports to a Hub model repo, from this process.

    Args:
        repo_id: the model repo, "org/name" (created private if needed).
        run_path: the run's folder in Ray Train's storage (local path or URI); reported
            checkpoints are `<run_path>/<dir>`.
        card: keywords for the model card: `recipe` and `data_summary`.
    """

    def __init__(self, repo_id: str, run_path: str, card: dict[str, Any]) -> None:
        from ray.util.queue import Queue

        from plurel_ray.hub.uploader import HubUploader

        self.repo_id = repo_id
        # pyarrow opens absolute paths and URIs, not relative paths.
        self._run_path = run_path if "://" in run_path else str(Path(run_path).resolve())
        self._card = card
        # num_cpus=0: the queue must never wait for a CPU the training workers hold.
        self.queue = Queue(actor_options={"num_cpus": 0})
        self._uploader = HubUploader(repo_id)
        self._scratch = Path(tempfile.mkdtemp(prefix="plurel-ray-hub-"))
        self._copy_failures: list[str] = []
        self._submitted: list[Path] = []
        self._reported = 0
        self._thread = threading.Thread(target=self._drain, name="hub-sync", daemon=True)
        self._thread.start()

    def close(self, *, check: bool = True) -> None:
        """Push what was reported, then stop the queue.

        Args:
            check: raise when a push failed (False when the run failed already and its
                own error is the one to report).

        Raises:
            HubError: some or all of the checkpoints could not be pushed.
        """
        import ray

        self.queue.put(None)
        self._thread.join()
        self._uploader.close()
        ray.kill(self.queue.actor)
        shutil.rmtree(self._scratch, ignore_errors=True)
        errors = self._copy_failures + [f.error for f in self._uploader.failures]
        if check and errors:
            raise HubError(
                f"{len(errors)} of {self._reported} checkpoint push(es) to {self.repo_id} "
                f"failed (last: {errors[-1][:_SHOWN_ERRORS]}); the checkpoints are in "
                f"{self._run_path}"
            )

    def _drain(self) -> None:
        while (item := self.queue.get()) is not None:
            self._reported += 1
            self._submit(item["dir"], item["metrics"])

    def _submit(self, dir_name: str, metrics: dict) -> None:
        """Copy the files a push uploads of checkpoint `dir_name` to local scratch (Ray
        Train deletes all but the last few while the push may still wait) and queue it."""
        import pyarrow.fs as pafs

        from plurel_ray.util.run_files import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE

        # The uploader pushes in order: copies of the pushes it has finished can go.
        finished = len(self._uploader.commits) + len(self._uploader.failures)
        for done in self._submitted[:finished]:
            shutil.rmtree(done, ignore_errors=True)
        local = self._scratch / dir_name
        try:
            fs, root = pafs.FileSystem.from_uri(self._run_path)
            local.mkdir()
            for name in (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE):
                source = f"{root}/{dir_name}/{name}"
                if name != METRICS_FILE or fs.get_file_info(source).is_file:
                    pafs.copy_files(source, str(local / name), source_filesystem=fs)
        except Exception as err:  # deleted already, storage unreachable: a failed push
            logger.error("cannot read checkpoint %s to push it: %s", dir_name, err)
            self._copy_failures.append(f"{dir_name}: {err}")
            return
        self._submitted.append(local)
        self._uploader.submit(local, metrics=metrics, **self._card)
