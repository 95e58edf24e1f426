"""Index rows rebuilt from what an output holds, when its `_index.parquet` is unreadable.

Folders: every complete `plurel-<seed>/` from its `plurel.json`. Packed: every member of
every shard manifest under `shards/` (spans and hashes; row counts are not in a manifest
and are left 0). Rows come back as status `skipped`; failures of earlier runs, which left
nothing on disk, are not recovered.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.fs as pafs

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.output import SHARDS_DIR, OutputRoot
from plurel_ray.pipeline.packed import read_manifest, shard_names
from plurel_ray.pipeline.seed_worker import STATUS_SKIPPED, STORE_MARKER, STORES_DIR

_DATABASE = re.compile(r"plurel-(\d+)")


def rebuild_index(root: OutputRoot) -> pa.Table:
    """Index rows for every complete database under `root` (see the module docstring).

    Args:
        root: the output root.
    """
    from plurel_ray.pipeline.index import index_table

    return index_table(_folder_rows(root) + _shard_rows(root))


def _folder_rows(root: OutputRoot) -> list[dict]:
    selector = pafs.FileSelector(root.path, allow_not_found=True)
    names = sorted(
        info.base_name for info in root.fs.get_file_info(selector)
        if info.type == pafs.FileType.Directory and _DATABASE.fullmatch(info.base_name)
    )  # fmt: skip
    rows = []
    for name in names:
        info = root.read_info(name)
        if info is None or not isinstance(info.get("seed"), int):
            continue
        tables = info.get("rows", {})
        store = f"{STORES_DIR}/{name}"
        rows.append({
            "db_name": name, "seed": info["seed"], "status": STATUS_SKIPPED,
            "tables": len(tables), "rows": sum(tables.values()),
            "cells": info.get("num_cells", 0), "bytes": root.folder_bytes(name),
            "seconds": 0.0,
            "store": root.join(store) if root.is_complete(store, STORE_MARKER) else None,
        })  # fmt: skip
    return rows


def _shard_rows(root: OutputRoot) -> list[dict]:
    rows = []
    for shard in shard_names(root):
        try:
            manifest = read_manifest(root, shard)
        except (DatasetError, OSError):  # a shard without a readable manifest is unindexed
            continue
        stores = {m.name for m in manifest.members if m.kind == "store"}
        for member in manifest.members:
            match = _DATABASE.fullmatch(member.name)
            if member.kind != "database" or match is None:
                continue
            store = f"{STORES_DIR}/{member.name}"
            rows.append({
                "db_name": member.name, "seed": int(match.group(1)), "status": STATUS_SKIPPED,
                "bytes": member.length, "seconds": 0.0, "tables": 0, "rows": 0, "cells": 0,
                "store": store if store in stores else None,
                "shard": f"{SHARDS_DIR}/{shard}", "offset": member.offset,
                "length": member.length, "sha256": member.sha256,
            })  # fmt: skip
    return rows
