"""Per-step training metrics; on CUDA read one step late so the GPU never waits for the host.

Reading a loss off the GPU (`.item()`) waits for its step to finish. Reading step k−1's
values after step k has been queued keeps the GPU busy while the host logs, fetches the
next batch and builds its masks. A step's time is the wall time between two reads, and
its data_wait_frac the share of that time the loop spent waiting for a batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm


@dataclass
class _Pending:
    step: int
    loss: torch.Tensor
    grad_norm: torch.Tensor
    lr: float
    tokens: int


class MetricsLog:
    """Collect loss, lr, grad_norm, tokens/s and data_wait_frac per step.

    Args:
        path: metrics.jsonl to append to (None: keep in memory only, as on ranks ≠ 0).
        world_size: ranks training in lock-step; tokens/s counts all of them.
        bar: progress bar to update (None: none).
        defer: read each step's values only once the next step is queued (CUDA); on the
            CPU steps run synchronously and are read at once.
        start_step: the step training starts after (a resumed checkpoint's, else 0): the
            records of later steps already in `path` are dropped, so a run killed after its
            checkpoint and resumed logs each step exactly once.
    """

    def __init__(
        self,
        path: Path | None,
        world_size: int,
        bar: tqdm | None,
        defer: bool,
        start_step: int = 0,
    ) -> None:
        if path is not None:
            keep_through(path, start_step)
        self._file = path.open("a") if path is not None else None
        self._world_size = world_size
        self._bar = bar
        self._defer = defer
        self._pending: _Pending | None = None
        self._last_read = time.perf_counter()
        self._wait_s = 0.0
        self.losses: list[float] = []
        self.last: dict[str, Any] = {}

    def add_wait(self, seconds: float) -> None:
        """Count time spent waiting for a batch."""
        self._wait_s += seconds

    def record(self, step: int, loss, grad_norm, lr: float, tokens: int) -> None:
        """Queue this step's values; write out the previous step's (deferred) or these."""
        self.flush()
        self._pending = _Pending(step, loss.detach(), grad_norm.detach(), lr, tokens)
        if not self._defer:
            self.flush()

    def flush(self) -> None:
        """Write out the queued step (waiting for it to finish on the device)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        loss, grad_norm = float(pending.loss), float(pending.grad_norm)
        now = time.perf_counter()
        step_time = max(now - self._last_read, 1e-9)
        self._last_read = now
        self.last = {
            "step": pending.step,
            "loss": loss,
            "lr": pending.lr,
            "grad_norm": grad_norm,
            "tokens": pending.tokens,
            "step_time_s": step_time,
            "tokens_per_s": pending.tokens * self._world_size / step_time,
            "data_wait_frac": min(1.0, self._wait_s / step_time),
        }
        self._wait_s = 0.0
        self.losses.append(loss)
        if self._file is not None:
            self._file.write(json.dumps(self.last) + "\n")
            self._file.flush()
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{self.last['tokens_per_s']:.3g}")

    def restart_clock(self) -> None:
        """Start timing afresh (after a pause such as a checkpoint write)."""
        self._last_read = time.perf_counter()
        self._wait_s = 0.0

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()


def keep_through(path: Path, step: int) -> None:
    """Rewrite `path` (JSON lines with a "step") keeping the records of steps up to
    `step`, atomically; a line cut short by a kill mid-write is dropped with them.

    Args:
        path: metrics.jsonl or eval.jsonl; nothing happens when it does not exist.
        step: the last step to keep (a resumed checkpoint's).
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        recorded = record.get("step") if isinstance(record, dict) else None
        if isinstance(recorded, int) and recorded <= step:
            kept.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)
