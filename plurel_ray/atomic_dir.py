"""Directories that appear whole or not at all: build beside the target, rename into place.

Dataset folders and node stores are both written this way, so a crash, Ctrl-C or error
leaves either the previous directory or the complete new one, plus at most a hidden
temporary sibling that the failing writer removes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from plurel_ray.errors import PlurelError


def temporary_sibling(out: Path) -> Path:
    """A fresh path beside `out` to build into: `<out>.tmp-<uuid>`."""
    return out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex}")


def remove(path: Path) -> None:
    """Delete a file or directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def move_into_place(tmp: Path, out: Path, overwrite: bool, error: type[PlurelError]) -> None:
    """Rename the finished `tmp` to `out`; with `overwrite`, the old `out` goes after.

    Args:
        tmp: the complete new directory.
        out: where it belongs.
        overwrite: replace an existing `out` (renamed aside first, removed last).
        error: the exception type raised when `out` appeared meanwhile.
    """
    old = None
    if overwrite and os.path.lexists(out):
        old = out.with_name(f"{out.name}.old-{uuid.uuid4().hex}")
        os.rename(out, old)
    try:
        # rename refuses a non-empty target directory, so a racing writer that finished
        # first keeps its directory and this one fails cleanly.
        os.rename(tmp, out)
    except OSError as err:
        if old is not None:
            os.rename(old, out)
        if os.path.lexists(out):
            raise error(
                f"{out} appeared while it was being written (another writer?); "
                "pass overwrite=True (--overwrite) to replace it"
            ) from err
        raise
    if old is not None:
        remove(old)
