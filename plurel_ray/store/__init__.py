"""Python face of the native node store (docs/store-format.md, docs/contexts.md).

    store = preprocess("data/plurel-0", "stores/")          # RelBench-3 folder → node store
    embed([store])                                           # text vocabulary → MiniLM vectors
    sampler = Sampler([Source(store, task="table_1-feature_3")], batch_size=128)
    batch = sampler.batch(0)                                 # dict of numpy arrays

Imports are lazy: embedding pulls in torch and the tokenizer, which a sampler-only process
does not need. The functions live in modules named differently from them
(`preprocessing.preprocess`, `embedding.embed`): a submodule named like a package attribute
would replace that attribute once imported, so `from plurel_ray.store import preprocess`
would give a module or a function depending on what was imported before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plurel_ray import _native
from plurel_ray._native import STORE_FORMAT_VERSION

if TYPE_CHECKING:
    from plurel_ray.store.embedding import EmbedReport, embed
    from plurel_ray.store.preprocessing import preprocess
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
    "EmbedReport": "plurel_ray.store.embedding",
    "embed": "plurel_ray.store.embedding",
    "preprocess": "plurel_ray.store.preprocessing",
    "Sampler": "plurel_ray.store.sampler",
    "Source": "plurel_ray.store.sampler",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plurel_ray.store' has no attribute {name!r}")


def store_format() -> dict:
    """Return the store format of the loaded native extension.

    Returns:
        dict with "magic" (bytes), "version" (int) and "crate_version" (str).
    """
    return _native.format_info()
