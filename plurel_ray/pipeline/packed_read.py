"""One database (or node store) back out of a run, whatever its layout.

    folder = open_database("s3://bucket/run1", "plurel-7")          # a local folder
    store = open_store("data/run1", "plurel-7", dest=Path("cache"))  # its node store

A packed run's index names the shard of every database; the shard's manifest gives the
span of the folder asked for, which is read with one ranged read, checked against its
sha256 and unpacked — no other shard, nor the rest of this one, is fetched. A folders
run's database is its folder (copied to `dest` when the root is remote). Either way the
folder is written beside its destination and renamed into place, so a reader sees it
whole or not at all.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from plurel_ray.dataset.shards import ShardMember, unpack_member
from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.index import COMPLETE, read_all
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.packed import read_manifest
from plurel_ray.pipeline.seed_worker import STORES_DIR

_DATABASE_NAME = re.compile(r"plurel-\d{1,19}")


def _root(root: str | OutputRoot) -> OutputRoot:
    return root if isinstance(root, OutputRoot) else OutputRoot(root)


def locate(root: OutputRoot, names: list[str]) -> dict[str, dict]:
    """The index rows of the complete databases `names` (others are left out), read once.

    Args:
        root: the output root.
        names: database names (`plurel-<seed>`).
    """
    index = read_all(root)
    index = index.filter(pc.is_in(index["db_name"], value_set=pa.array(names)))
    return {row["db_name"]: row for row in index.to_pylist() if row["status"] in COMPLETE}


def _member(root: OutputRoot, row: dict, kind: str) -> tuple[str, ShardMember]:
    """(shard path, member) of the database (or its store) of index row `row`."""
    shard = row["shard"]
    manifest = read_manifest(root, shard.rsplit("/", 1)[-1])
    name = row["db_name"] if kind == "database" else f"{STORES_DIR}/{row['db_name']}"
    member = manifest.member(name)
    if member is None:
        raise DatasetError(f"{root.join(shard)}: its manifest has no {name}; "
                           "run `plurel-ray runs verify` on the output")  # fmt: skip
    recorded = (row["offset"], row["length"], row["sha256"])
    if kind == "database" and (member.offset, member.length, member.sha256) != recorded:
        raise DatasetError(f"{root.join(shard)}: {name} in its manifest differs from the "
                           "index; run `plurel-ray runs verify` on the output")  # fmt: skip
    return shard, member


def _unpack(root: OutputRoot, shard: str, member: ShardMember, dest: Path) -> Path:
    try:
        data = root.read_range(shard, member.offset, member.length)
    except FileNotFoundError:
        raise DatasetError(f"{root.join(shard)}: missing, though its manifest and the index "
                           "name it; run `plurel-ray runs verify --repair` on the "
                           "output") from None  # fmt: skip
    return unpack_member(data, member, dest, root.join(shard))


def _check_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise DatasetError(f"database name {name!r}: expected plurel-<seed>, e.g. plurel-7")
    return name


def open_database(
    root: str | OutputRoot, name: str, dest: str | Path | None = None, *, row: dict | None = None
) -> Path:
    """The dataset folder of database `name` of the run at `root`, on local disk.

    Args:
        root: the output root (local path or URI) of a folders or packed run.
        name: the database, `plurel-<seed>`.
        dest: the local folder to put it in (as `dest/<name>`); default: a local root's
            own folder for a folders run, else a fresh temporary folder.
        row: its index row, when the caller has read the index already (`locate`).

    Raises:
        DatasetError: no complete database of that name, or its shard is truncated or
            does not match its recorded hash (nothing is written then).
    """
    root = _root(root)
    row = row or _rows(root, [_check_name(name)])[name]
    _check_name(row["db_name"])  # an index is input too: its names become paths
    if row["shard"] is None:  # folders layout
        if root.is_local and dest is None:
            return Path(root.join(name))
        target = _dest(dest) / name
        local = root.fetch(name, target.parent)
        if local != target:
            local.rename(target)
        return target
    shard, member = _member(root, row, "database")
    return _unpack(root, shard, member, _dest(dest) / name)


def open_store(
    root: str | OutputRoot, name: str, dest: str | Path, *, row: dict | None = None
) -> Path:
    """The node store of database `name` of a packed run, unpacked to `dest/<name>`;
    `row` is its index row when the caller has read the index already (`locate`).

    Raises:
        DatasetError: the run made no store for it (generate with --preprocess), or its
            shard is truncated or corrupt.
    """
    root = _root(root)
    row = row or _rows(root, [_check_name(name)])[name]
    _check_name(row["db_name"])  # an index is input too: its names become paths
    if row["shard"] is None or row["store"] is None:
        raise DatasetError(f"{root.uri}: {name} has no store in a shard; generate the run "
                           "with --layout packed --preprocess")  # fmt: skip
    shard, member = _member(root, row, "store")
    return _unpack(root, shard, member, Path(dest) / name)


def _rows(root: OutputRoot, names: list[str]) -> dict[str, dict]:
    found = locate(root, names)
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetError(f"{root.uri}: no complete database {missing[0]} in its index")
    return found


def _dest(dest: str | Path | None) -> Path:
    folder = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="plurel-ray-db-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
