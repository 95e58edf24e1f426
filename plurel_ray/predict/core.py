"""The prediction core: a checkpoint's answers for the items of one task split, without
Ray (`pipeline/predict.py` spreads it over Ray Data actors).

    predictor = Predictor(from_pretrained("org/rt"), Source(store, task="churn", split="test"),
                          ContextSettings(ctx_len=1024, max_bfs_width=128, seed=0))
    predictor.items.key_frame()             # which row each item is
    predictor.predict([0, 1, 2])            # probabilities, or values on the target's scale

Every item's context is drawn from (context seed, item) alone (`store.item_sampler`), and
the model runs in eval mode, so an item's prediction is a function of (checkpoint, store,
task split, item, context settings) only — not of the batch it shares or of how many
actors split the items (on one device type: float rounding differs between devices).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plurel_ray.store.sampler import DEFAULT_MAX_BFS_WIDTH, Source

if TYPE_CHECKING:
    from plurel_ray.predict.items import TaskItems
    from plurel_ray.predict.pretrained import Pretrained

# Items per forward pass: results do not depend on it, so it is chosen for memory alone.
PREDICT_BATCH_SIZE = 32


@dataclass(frozen=True)
class ContextSettings:
    """How each item's context is sampled (docs/contexts.md).

    Args:
        ctx_len: cells per context; None: the length the checkpoint was trained on.
        max_bfs_width: database children followed per row at most.
        seed: the context seed; item i's context is drawn from (seed, i). Averaging
            several seeds is an ensemble.
    """

    ctx_len: int | None = None
    max_bfs_width: int = DEFAULT_MAX_BFS_WIDTH
    seed: int = 0

    def resolved(self, pretrained: Pretrained) -> ContextSettings:
        """These settings with `ctx_len` filled in from the checkpoint."""
        return dataclasses.replace(self, ctx_len=self.ctx_len or pretrained.ctx_len)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (recorded in a predictions file)."""
        return dataclasses.asdict(self)


class Predictor:
    """A checkpoint's predictions for the items of one task split.

    Args:
        pretrained: the checkpoint (`predict.pretrained.from_pretrained`).
        source: the task split (a task, or a table and target; with its split).
        settings: the context settings.
        device: "auto" (a GPU when there is one), "cpu" or "cuda".
        batch_size: items per forward pass.
        num_threads: threads building contexts (None: all cores).

    Raises:
        StoreError, SamplerError: the store is unreadable or the task has no items.
        ConfigError: the target is not a number or boolean column.
    """

    def __init__(
        self,
        pretrained: Pretrained,
        source: Source,
        settings: ContextSettings = ContextSettings(),
        *,
        device: str = "auto",
        batch_size: int = PREDICT_BATCH_SIZE,
        num_threads: int | None = None,
    ):
        from plurel_ray.predict.items import task_items
        from plurel_ray.store.item_sampler import ItemSampler
        from plurel_ray.train.precision import resolve_device, resolve_precision

        self.settings = settings.resolved(pretrained)
        self.sampler = ItemSampler([source], batch_size=batch_size, ctx_len=self.settings.ctx_len,
                                   max_bfs_width=self.settings.max_bfs_width,
                                   seed=self.settings.seed, num_threads=num_threads)  # fmt: skip
        self.items: TaskItems = task_items(self.sampler)
        self.device = resolve_device(device)
        self.precision = resolve_precision("auto", self.device)
        self.model = pretrained.model.to(self.device).eval()
        self._text = None

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, items: Sequence[int]) -> np.ndarray:
        """The model's outputs for `items` (item numbers): boolean logits or standardised
        numbers, float64, in the order given."""
        from plurel_ray.train.evaluate import predict_items

        items = np.asarray(items, dtype=np.int64)
        if self._text is None:
            self._text = self.sampler.embedding_matrix()
        batches = self._batches(items)
        found = predict_items(self.model, batches, self._text, self.items.sem_type,
                              self.precision)  # fmt: skip
        if not np.array_equal(found.positions, np.arange(len(items))):
            raise AssertionError("an item's context lost its target cell")  # a sampler bug
        return found.predictions

    def predict(self, items: Sequence[int]) -> np.ndarray:
        """The predictions for `items` (item numbers), in the order given: a probability
        for a binary task, a value on the target's own scale for a regression task."""
        return self.items.on_target_scale(self.raw(items))

    def _batches(self, items: np.ndarray) -> Iterator[tuple[int, dict]]:
        size = self.sampler.batch_size
        for first in range(0, len(items), size):
            yield first, self.sampler.batch_of_items(items[first : first + size].tolist())
