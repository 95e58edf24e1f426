"""Names are data, not paths: the one rule for table, column, task and dataset names.

Table, column and task names come from users' SQL schemas and from dataset folders
downloaded from anywhere, and become parts of file names (`db/<table>.parquet`,
`tasks/<table>-<column>/`, `stores/<dataset>/`). `check_name` is applied where a name
enters — the SQL schema parser, dataset folders read for preprocessing — so a name like
``../../outside/x`` is refused with an error naming it, before anything is written.
`path_inside` is the defence in depth at the writers: a path built from names must
resolve inside the folder being written.

The rule (docs/limits.md): 1 to `MAX_NAME_BYTES` bytes of UTF-8; letters and digits of
any script, ``_``, ``-``, ``.`` and spaces; not starting with ``.`` (hidden files, ``.``
and ``..``), not starting or ending with a space. Everything else — ``/``, ``\\``, NUL,
control characters, ``:*?"<>|`` — is refused. Random schemas name their tables
``table_<i>`` and columns ``feature_<j>``, inside the rule by construction.
"""

from __future__ import annotations

import os
from pathlib import Path

from plurel_ray.errors import DatasetError, PlurelError, SchemaError

# A task folder is named `<table>-<column>`: two names of at most 100 bytes and the dash
# stay under the 255-byte file-name limit of ext4, XFS, APFS and NTFS. PostgreSQL and
# MySQL cap identifiers at 63 and 64 bytes.
MAX_NAME_BYTES = 100
_PUNCTUATION = frozenset("_-. ")
RULE = (
    f"letters, digits, '_', '-', '.' and spaces, at most {MAX_NAME_BYTES} bytes, "
    "not starting with '.'"
)


def name_problem(name: object) -> str | None:
    """Why `name` cannot be part of a file name, or None when it can.

    Args:
        name: a table, column, task or dataset name as read.
    """
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    bad = next((c for c in name if not (c.isalnum() or c in _PUNCTUATION)), None)
    if bad is not None:
        return f"contains {bad!r}"
    if name.startswith("."):
        return "starts with '.'"
    if name != name.strip(" "):
        return "starts or ends with a space"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is {len(name.encode('utf-8'))} bytes long"
    return None


def check_name(
    kind: str, name: object, error: type[PlurelError] = SchemaError, where: str = ""
) -> str:
    """Return `name` when it satisfies the rule; raise `error` naming it otherwise.

    Args:
        kind: what the name names, for the message ("table", "column of table 'x'", ...).
        name: the name to check.
        error: the PlurelError subclass to raise (SchemaError for schemas, DatasetError
            for dataset folders).
        where: a prefix naming the source, e.g. ``"shop.sql: "``.
    """
    problem = name_problem(name)
    if problem is not None:
        shown = repr(name)
        if len(shown) > 2 * MAX_NAME_BYTES:
            shown = shown[: 2 * MAX_NAME_BYTES] + "…"
        raise error(f"{where}{kind} {shown} {problem}; rename it: names may use {RULE}")
    return name  # type: ignore[return-value]


def path_inside(
    root: str | os.PathLike, *parts: str, error: type[PlurelError] = DatasetError
) -> Path:
    """`root` joined with `parts`, refused unless it resolves strictly inside `root`.

    Symbolic links are followed, so a link in the tree that points elsewhere is refused
    too. The returned path is the unresolved join (what the caller would have written).

    Args:
        root: the folder being written (need not exist yet).
        parts: path parts, some built from names.
        error: the PlurelError subclass to raise.
    """
    path = Path(root).joinpath(*parts)
    base = Path(root).resolve()
    resolved = path.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise error(
            f"{os.path.join(*parts) if parts else '.'!r} resolves to {resolved}, outside "
            f"{base}; refusing to write there (rename the table, column or task: names may "
            f"use {RULE})"
        )
    return path
