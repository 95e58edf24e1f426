"""The seeds of a generation run, held as ranges so `0-1000000000` costs a few bytes.

    Seeds.parse("3,5,9-12")          # 3, 5, 9, 10, 11, 12 — in the order written
    Seeds.of(range(100))             # what GenerationRequest makes of any seed sequence

A run's seeds are distinct, non-negative and at most `SEEDS_PER_RUN` many
(docs/limits.md). Distinctness is checked by range overlap and the count by range
lengths, so neither expands a range into a list.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain, pairwise

from plurel_ray.errors import DatasetError
from plurel_ray.limits import SEEDS_PER_RUN


class Seeds(Sequence[int]):
    """Distinct non-negative seeds as consecutive ranges, iterated in the given order.

    Args:
        ranges: non-empty ranges of step 1; together at most `SEEDS_PER_RUN` seeds, none
            shared by two ranges.
    """

    def __init__(self, ranges: Iterable[range]) -> None:
        self.ranges: tuple[range, ...] = tuple(r for r in ranges if len(r) > 0)
        if any(r.step != 1 for r in self.ranges):
            raise DatasetError("seed ranges must have step 1")
        if not self.ranges:
            raise DatasetError("no seeds to generate: give --num-dbs ≥ 1 or a non-empty --seeds")
        if min(r.start for r in self.ranges) < 0:
            raise DatasetError("seeds must be non-negative integers")
        # Start offset of each range in the sequence, plus the total at the end.
        self._offsets = [0, *accumulate(len(r) for r in self.ranges)]
        limit = SEEDS_PER_RUN.value
        if len(self) > limit:
            raise DatasetError(
                f"{len(self):,} seeds asked for (--num-dbs, --seeds); a run makes at most "
                f"{limit:,} databases (docs/limits.md): split it into several runs"
            )
        by_start = sorted(self.ranges, key=lambda r: r.start)
        for before, after in pairwise(by_start):
            if after.start < before.stop:
                raise DatasetError(f"seed {after.start} is listed twice; seeds must be distinct")

    @classmethod
    def parse(cls, text: str) -> Seeds:
        """`"3,5,9-12"` as Seeds: comma-separated seeds and inclusive `lo-hi` ranges.

        Args:
            text: the `--seeds` value.
        """
        ranges = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, sep, hi = part.partition("-")
            try:
                first, last = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise DatasetError(f"bad seed {part!r} in --seeds {text!r}") from None
            if first < 0 or last < first:
                raise DatasetError(
                    f"bad seed range {part!r} in --seeds {text!r}: need 0 <= lo <= hi"
                )
            ranges.append(range(first, last + 1))
        if not ranges:
            raise DatasetError(f"--seeds {text!r} names no seed")
        return cls(ranges)

    @classmethod
    def of(cls, seeds: Iterable[int]) -> Seeds:
        """`seeds` as Seeds: a Seeds as is, a step-1 range without expanding it, any other
        iterable of integers run by run.

        Args:
            seeds: the seeds in the order to generate them.
        """
        if isinstance(seeds, Seeds):
            return seeds
        if isinstance(seeds, range) and seeds.step == 1:
            return cls([seeds])
        if isinstance(seeds, Sequence) and len(seeds) > SEEDS_PER_RUN.value:
            return cls([range(len(seeds))])  # the count error, without reading them all
        ranges: list[range] = []
        for seed in seeds:
            seed = int(seed)
            if ranges and seed == ranges[-1].stop:
                ranges[-1] = range(ranges[-1].start, seed + 1)
            else:
                ranges.append(range(seed, seed + 1))
        return cls(ranges)

    def __len__(self) -> int:
        return self._offsets[-1]

    def __iter__(self) -> Iterator[int]:
        return chain.from_iterable(self.ranges)

    def __getitem__(self, index: int) -> int:  # type: ignore[override]
        if not isinstance(index, int):
            raise TypeError("Seeds are indexed by int only")
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"seed index {index} out of range")
        which = bisect.bisect_right(self._offsets, index) - 1
        return self.ranges[which][index - self._offsets[which]]

    def __contains__(self, seed: object) -> bool:
        return any(seed in r for r in self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Seeds) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __repr__(self) -> str:
        shown = ",".join(str(r.start) if len(r) == 1 else f"{r.start}-{r.stop - 1}"
                         for r in self.ranges[:10])  # fmt: skip
        return f"Seeds('{shown}{',…' if len(self.ranges) > 10 else ''}')"
