"""Contexts of chosen items, each seeded by (seed, item) alone (docs/contexts.md).

`Sampler.batch(index)` serves training and evaluation: epoch shuffles sharded over ranks,
a sequence's context drawn from (seed, epoch, slot). A prediction must not depend on
which other items share its batch or on how many workers split the items, so
`ItemSampler.batch_of_items(items)` builds the contexts of the items it is given, item
`i`'s drawn from (seed, i): the same sequence in any batch, on any actor.

    sampler = ItemSampler([Source(store, task="churn", split="test")], batch_size=32)
    sources, nodes = sampler.item_nodes()     # which row item i is
    batch = sampler.batch_of_items([7, 3, 12])  # 3 real sequences, the rest padding
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from plurel_ray.errors import SamplerError
from plurel_ray.store.sampler import Sampler, Source, _check_int, _native_errors


class ItemSampler(Sampler):
    """A `Sampler` that also builds the contexts of given items (same arguments;
    `rank` and `world_size` play no part in `batch_of_items`)."""

    def __init__(self, sources: Sequence[Source], **kwargs: Any):
        self.sources = tuple(sources)
        super().__init__(self.sources, **kwargs)

    def item_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(source index, store node id) of every item, two uint32 arrays in item order:
        the sources in the order given, each one's rows in node (file row) order."""
        return self._native.item_nodes()

    def batch_of_items(self, items: Sequence[int], compact: bool = True) -> dict:
        """The batch holding the contexts of `items` (item numbers, at most batch_size),
        in that order, then padding; `true_batch_size` is len(items). Fields: the
        `store.sampler` module docstring.

        Args:
            items: item numbers in [0, num_items).
            compact: ids only (True) or also the bfloat16 embeddings.

        Raises:
            SamplerError: more items than batch_size, an item out of range, compact=False
                without embeddings in every store.
        """
        numbers = [_check_int("item", item, 0) for item in items]
        if not compact and self._no_embeddings:
            raise SamplerError(self._embedding_hint())
        with _native_errors():
            return self._native.batch_of_items(numbers, compact)
