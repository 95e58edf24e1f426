"""Directories that appear whole or not at all: build beside the target, rename into place.

    with atomic_directory("runs/r/step_00000500") as tmp:   # checkpoints
        write_files(tmp)                                     # replaces the old folder

Dataset folders, node stores and checkpoints are all written this way, so a crash,
Ctrl-C or error leaves either the previous directory or the complete new one, plus at
most a temporary sibling that the failing writer removes. Generated dataset folders and
stores call the three steps themselves (they check the target in between); checkpoints,
imported databases and task folders use `atomic_directory`. This module imports nothing
of ours but the errors, so every room — `model/` included — may use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from plurel_ray.errors import PlurelError


def temporary_sibling(out: Path, hidden: bool = False) -> Path:
    """A fresh path beside `out` to build into: `<out>.tmp-<uuid>`, or with `hidden`
    `.<out>.tmp-<uuid>` (invisible to globs such as `step_*` that list the targets)."""
    return out.with_name(f"{'.' if hidden else ''}{out.name}.tmp-{uuid.uuid4().hex}")


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


@contextlib.contextmanager
def atomic_directory(
    dest: str | os.PathLike, *, overwrite: bool = True, error: type[PlurelError] = PlurelError
) -> Iterator[Path]:
    """Yield an empty hidden temporary folder that becomes `dest` when the block succeeds.

    The temporary folder is a sibling of `dest` (same file system, so the rename is
    atomic); it is removed if the block raises.

    Args:
        dest: the directory to create or replace.
        overwrite: replace an existing `dest` (else it stays, and `error` is raised).
        error: the exception type raised when `dest` exists and is not to be replaced.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(dest, hidden=True)
    tmp.mkdir()
    try:
        yield tmp
        move_into_place(tmp, dest, overwrite=overwrite, error=error)
    finally:
        remove(tmp)  # gone already after the rename
