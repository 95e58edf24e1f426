"""Explicit, path-derived randomness.

A database is a pure function of (seed, config, generator version). Every random
decision draws from a `numpy.random.Generator` derived from the seed and a stable path
naming the component ("table", 3, "scm", "noise", 17), so components do not share
streams, adding a draw in one place cannot shift another, and work can be split across
processes without changing a value. Python's `hash()` is salted per process, so path
strings are hashed with BLAKE2b instead.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

PathPart = int | str


def _check_part(part: PathPart) -> PathPart:
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise TypeError(f"rng path parts must be int or str, got {part!r}")
    if isinstance(part, int) and part < 0:
        raise ValueError(f"rng path ints must be non-negative, got {part}")
    return part


def derive_rng(seed: int, *path: PathPart) -> np.random.Generator:
    """The generator for component `path` of the database made from `seed`.

    The whole path is hashed as one canonical JSON list, so paths that differ in any
    part, length or type ("1" vs 1) get unrelated streams. (Passing the parts to
    `SeedSequence` directly would not: it zero-pads and splits big ints, making
    `(7,)` and `(7, 0)` collide.)

    Args:
        seed: the database seed (a non-negative integer).
        path: ints and strings naming the component, e.g. ("table", 2, "fk", "table_0").
    """
    key = json.dumps([_check_part(seed), *(_check_part(p) for p in path)])
    digest = hashlib.blake2b(key.encode(), digest_size=32).digest()
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "little")))
    )
