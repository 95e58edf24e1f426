"""Python face of the native node store (docs/store-format.md, docs/contexts.md).

    store = preprocess("data/plurel-0", "stores/")          # RelBench-3 folder → node store
    embed([store])                                           # text vocabulary → MiniLM vectors
    sampler = Sampler([Source(store, task="table_1-feature_3")], batch_size=128)
    batch = sampler.batch(0)                                 # dict of numpy arrays

Imports are lazy: `plurel_ray.store.embed` pulls in the tokenizer, which a sampler-only
process does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plurel_ray import _native
from plurel_ray._native import STORE_FORMAT_VERSION

if TYPE_CHECKING:
    from plurel_ray.store.embed import EmbedReport, embed
    from plurel_ray.store.preprocess import preprocess
    from plurel_ray.store.sampler import Sampler, Source

__all__ = [
    "STORE_FORMAT_VERSION",
    "EmbedReport",
    "Sampler",
    "Source",
    "embed",
    "preprocess",
    "store_format",
]

_LAZY = {
    "EmbedReport": "plurel_ray.store.embed",
    "embed": "plurel_ray.store.embed",
    "preprocess": "plurel_ray.store.preprocess",
    "Sampler": "plurel_ray.store.sampler",
    "Source": "plurel_ray.store.sampler",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Importing `plurel_ray.store.preprocess` (or `.embed`) binds the submodule to the
        # package attribute of the same name; the function must win.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plurel_ray.store' has no attribute {name!r}")


def store_format() -> dict:
    """Return the store format of the loaded native extension.

    Returns:
        dict with "magic" (bytes), "version" (int) and "crate_version" (str).
    """
    return _native.format_info()
