"""A background thread that readies the next batches while the current step runs.

It pulls numpy batches from the source, wraps and checks them (`batch_to_tensors`), and on
CUDA pins them and starts their host-to-device copies on a side stream, so that the step
finds its batch on the device. Errors of the source are raised in the consumer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import torch

from plurel_ray.model.batch import batch_to_tensors, move_batch

_DONE = object()


class Prefetcher:
    """Iterate over `(batch on device, non-padding cells)` with `depth` batches in flight.

    Args:
        batches: the source of numpy (or tensor) batches.
        device: where the batches go.
        vocab_size: rows of text_emb, to check compact batches' text ids (None: no check).
        depth: batches prepared ahead.
    """

    def __init__(
        self,
        batches: Iterator[dict],
        device: torch.device,
        vocab_size: int | None = None,
        depth: int = 2,
    ) -> None:
        self._source = batches
        self._device = device
        self._vocab_size = vocab_size
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._thread = threading.Thread(target=self._run, name="batch-prefetch", daemon=True)
        self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> tuple[dict[str, Any], int]:
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # later calls stop too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        batch, tokens, ready = item
        if ready is not None:
            current = torch.cuda.current_stream(self._device)
            current.wait_event(ready)
            for value in batch.values():
                if isinstance(value, torch.Tensor):
                    # The copies were made on the side stream; tell the allocator that
                    # the step's stream uses them now.
                    value.record_stream(current)
        return batch, tokens

    def close(self) -> None:
        """Stop the thread and drop the batches it prepared.

        A thread blocked on a full queue sees the stop within 50 ms; one blocked inside
        the source (a slow sampler) is not waited for beyond a second: it is a daemon and
        stops at its next batch.
        """
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        try:
            for raw in self._source:
                if self._stop.is_set():
                    return
                self._put(self._prepare(raw))
            self._put(_DONE)
        except BaseException as err:  # re-raised in the consumer
            self._put(err)

    def _prepare(self, raw: dict) -> tuple[dict[str, Any], int, torch.cuda.Event | None]:
        batch = batch_to_tensors(raw, self._vocab_size)
        tokens = int((~batch["is_padding"]).sum())
        if self._stream is None:
            return move_batch(batch, self._device), tokens, None
        with torch.cuda.stream(self._stream):
            pinned = {
                k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()
            }
            moved = move_batch(pinned, self._device)
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return moved, tokens, ready

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
