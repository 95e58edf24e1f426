"""Python face of the native node store.

For now this only reports the store format compiled into `plurel_ray._native`; the store
itself (preprocess, text vocabulary, embeddings) and the sampler arrive in a later issue.
"""

from plurel_ray import _native
from plurel_ray._native import STORE_FORMAT_VERSION

__all__ = ["STORE_FORMAT_VERSION", "store_format"]


def store_format() -> dict:
    """Return the store format of the loaded native extension.

    Returns:
        dict with "magic" (bytes), "version" (int) and "crate_version" (str).
    """
    return _native.format_info()
