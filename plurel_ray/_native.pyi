"""Type stub for the Rust extension `plurel_ray._native` (native/src/lib.rs)."""

from typing import TypedDict

__version__: str
STORE_FORMAT_VERSION: int
STORE_MAGIC: bytes

class _FormatInfo(TypedDict):  # stub-only helper type
    magic: bytes
    version: int
    crate_version: str

def format_info() -> _FormatInfo:
    """Describe the store format this build reads and writes."""

def check_header(data: bytes) -> int:
    """Validate a 16-byte store header and return its format version.

    Raises:
        ValueError: the header is too short, has a bad magic, or an unsupported version.
    """
