"""The node stores of a packed run on local disk, embedded: what a training job reads.

    root = OutputRoot("s3://bucket/run1")
    if is_packed(root):
        rows = complete_rows(root, ["plurel-0", "plurel-1"])
        stores, unpacked = unpack_stores(root, list(rows.values()))   # local, embedded

A packed run keeps its databases (and, generated with --preprocess, their node stores)
inside shards, while the sampler memory-maps a store's files from local disk. Each store
asked for is unpacked on its own — one ranged read of its span, checked against its
sha256 (`packed_read.open_store`) — or, for a run made without stores, its database is
unpacked and preprocessed here; then the stores are embedded. No other member of a shard
is fetched.

The stores land in a cache on local disk, `$PLUREL_RAY_CACHE_DIR/packed-stores` (else
`<temp dir>/plurel-ray-cache/packed-stores`), as `<key>/<name>`: the key hashes the
member's sha256 with what this step adds (the encoder; the context rules of a store made
here), so a second job on the same run and encoder unpacks nothing, and a cached store
never changes under a job reading it. A batch of stores is unpacked and embedded in a
hidden staging folder of the cache and renamed into place only when complete: a killed
job or a corrupt shard leaves nothing half-made in the cache.

Beside each store, `<key>/origin.json` says where it came from (the run's root, its index
row, the rules and encoder), so that a sampler actor on a node whose disk lacks the store
unpacks that store itself (`unpack_origins`), into the same `<key>/<name>` of its own
cache, instead of reading the driver's disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow.fs as pafs

from plurel_ray.dataset.shards import ShardManifest
from plurel_ray.errors import DatasetError
from plurel_ray.limits import DOCUMENT_BYTES
from plurel_ray.pipeline.output import SHARDS_DIR, OutputRoot
from plurel_ray.pipeline.packed import read_manifest
from plurel_ray.pipeline.packed_read import locate, open_database, open_store
from plurel_ray.pipeline.run_record import read_record
from plurel_ray.pipeline.seed_worker import STORES_DIR
from plurel_ray.store.arrays import write_atomic
from plurel_ray.store.embedding import CACHE_DIR_ENV
from plurel_ray.store.meta import DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL, META_FILE

STORE_CACHE = "packed-stores"
# Stores staged and embedded together before they enter the cache: their strings are
# encoded in one pass, and a killed job loses at most one batch of work.
UNPACK_BATCH = 64
ORIGIN_FILE = "origin.json"
ORIGIN_KEYS = {"root", "row", "context_rules", "text_model"}


def is_packed(root: OutputRoot) -> bool:
    """Whether `root` holds a packed run: its `_generation.json` says so or, without a
    readable record, it has a `shards/` folder."""
    try:
        record = read_record(root)
    except DatasetError:  # unreadable: judged by its shards below
        record = None
    if record is not None and "layout" in record:
        return record["layout"] == "packed"
    return root.fs.get_file_info(root.join(SHARDS_DIR)).type == pafs.FileType.Directory


def cache_dir() -> Path:
    """Where unpacked stores are kept: `$PLUREL_RAY_CACHE_DIR/packed-stores`, else
    `<temp dir>/plurel-ray-cache/packed-stores`."""
    base = os.environ.get(CACHE_DIR_ENV) or Path(tempfile.gettempdir()) / "plurel-ray-cache"
    return Path(base) / STORE_CACHE


def complete_rows(root: OutputRoot, names: Sequence[str] | None) -> dict[str, dict]:
    """Name → index row of the complete databases `names` (None: every complete one, in
    seed order); the index is read once.

    Args:
        root: a packed run's root.
        names: database names (`plurel-<seed>`); ones not complete are left out.
    """
    if names is not None:
        return locate(root, list(names))
    from plurel_ray.pipeline.index import COMPLETE, read_all

    rows = [row for row in read_all(root).to_pylist() if row["status"] in COMPLETE]
    return {row["db_name"]: row for row in sorted(rows, key=lambda row: row["seed"])}


def unpack_stores(
    root: OutputRoot,
    rows: Sequence[dict],
    *,
    context_rules: str = DEFAULT_CONTEXT_RULES,
    text_model: str = DEFAULT_TEXT_MODEL,
    cache: Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[list[Path], int]:
    """The embedded local node store of every index row, unpacking the ones not cached.

    Args:
        root: the packed run's root (local path or URI).
        rows: index rows of complete databases (`complete_rows`).
        context_rules: the rules of stores made here (a run made without --preprocess);
            a run's own stores keep theirs.
        text_model: the encoder that embeds the stores.
        cache: the cache folder (default: `cache_dir()`).
        progress: the embedding progress bar.
        say: where the line saying what was unpacked goes.

    Returns:
        (the stores, in the rows' order; how many were unpacked now).

    Raises:
        DatasetError: a shard is truncated or corrupt, or its manifest lacks a member
            (the cache is left as it was).
        StoreError, ModelError: a store cannot be embedded.
    """
    from plurel_ray.store.encoder import text_model_name

    cache = cache_dir() if cache is None else cache
    model = text_model_name(text_model)
    manifests: dict[str, ShardManifest] = {}  # each shard's manifest is read once
    targets = [cache / _key(root, row, context_rules, model, manifests) / row["db_name"]
               for row in rows]  # fmt: skip
    missing = [(row, target) for row, target in zip(rows, targets, strict=True)
               if not (target / META_FILE).is_file()]  # fmt: skip
    if missing:
        encoder = _encoder(text_model)
        for start in range(0, len(missing), UNPACK_BATCH):
            batch = missing[start : start + UNPACK_BATCH]
            _unpack_batch(root, batch, cache, context_rules, encoder, progress)
        say(f"unpacked {len(missing)} store(s) of {root.uri} into {cache} "
            f"({len(rows) - len(missing)} already there)")  # fmt: skip
    for row, target in zip(rows, targets, strict=True):
        _write_origin(target, {"root": root.uri, "row": row, "context_rules": context_rules,
                               "text_model": text_model})  # fmt: skip
    return targets, len(missing)


def _write_origin(store: Path, origin: dict) -> None:
    """Record beside `store` where it came from; rewritten only when it changes (a
    store of the same bytes can come from another run, whose root then stands)."""
    path = store.parent / ORIGIN_FILE
    text = json.dumps(origin, sort_keys=True).encode()
    with contextlib.suppress(OSError):
        if path.read_bytes() == text:
            return
    write_atomic(path, [text])


def store_origin(store: str | os.PathLike) -> dict | None:
    """Where the cached store `store` was unpacked from (its `origin.json`), or None
    for a store that is not in a packed-store cache.

    Raises:
        DatasetError: the file is there but not an origin of this store.
    """
    path = Path(store).parent / ORIGIN_FILE
    try:
        with path.open("rb") as file:
            text = file.read(DOCUMENT_BYTES.value + 1)
    except OSError:
        return None
    try:
        origin = json.loads(text) if len(text) <= DOCUMENT_BYTES.value else None
    except ValueError:
        origin = None
    if not isinstance(origin, dict):
        origin = {}
    row = origin.get("row")
    name = row.get("db_name") if isinstance(row, dict) else None
    if set(origin) != ORIGIN_KEYS or name != Path(store).name:
        raise DatasetError(f"{path}: not a store origin this version writes; delete "
                           f"{Path(store).parent} and rerun the job")  # fmt: skip
    return origin


def unpack_origins(origins: Sequence[dict], cache: Path | None = None) -> list[Path]:
    """The stores of `origins` (`store_origin`) on this machine: this machine's cache
    entries, unpacked from their shards and embedded here where the cache lacks them —
    one ranged read of each store's span, checked against its sha256, and one encoder
    and one read of each manifest for the stores of one run.

    Args:
        origins: where the stores came from, as the driver recorded them.
        cache: the cache folder (default: this machine's `cache_dir()`).

    Returns:
        the stores, in the order of `origins`.

    Raises:
        DatasetError: a run is not reachable from here (a local root of another
            machine), or a shard is missing, truncated or corrupt.
    """
    runs: dict[tuple[str, str, str], list[int]] = {}
    for number, origin in enumerate(origins):
        run = (origin["root"], origin["context_rules"], origin["text_model"])
        runs.setdefault(run, []).append(number)
    stores: list[Path | None] = [None] * len(origins)
    for (root, rules, model), numbers in runs.items():
        unpacked, _ = unpack_stores(OutputRoot(root), [origins[n]["row"] for n in numbers],
                                    context_rules=rules, text_model=model, cache=cache,
                                    say=lambda line: None)  # fmt: skip
        for number, store in zip(numbers, unpacked, strict=True):
            stores[number] = store
    return stores


def _key(
    root: OutputRoot, row: dict, context_rules: str, model: str, manifests: dict[str, ShardManifest]
) -> str:
    """The cache key of a row's store: its shard member's sha256 (the store's, or the
    database's when the run has no stores) with the encoder, and the rules of a store
    made here. The same on every machine, so each node that unpacks a store by itself
    puts it at the same path."""
    if row["store"] is None:
        made_here = f"{row['sha256']}\n{context_rules}"
    else:
        shard = row["shard"].rsplit("/", 1)[-1]
        if shard not in manifests:
            manifests[shard] = read_manifest(root, shard)
        manifest = manifests[shard]
        member = manifest.member(f"{STORES_DIR}/{row['db_name']}")
        if member is None:
            raise DatasetError(f"{root.join(row['shard'])}: its manifest has no "
                               f"{STORES_DIR}/{row['db_name']}; run `plurel-ray runs verify` "
                               "on the output")  # fmt: skip
        made_here = member.sha256
    return hashlib.sha256(f"{made_here}\n{model}".encode()).hexdigest()[:16]


def _encoder(text_model: str):
    """The encoder, loaded once for every batch."""
    from plurel_ray.store.encoder import TextEncoder

    return TextEncoder.load(text_model)


def _unpack_batch(
    root: OutputRoot,
    batch: list[tuple[dict, Path]],
    cache: Path,
    context_rules: str,
    encoder,
    progress: bool,
) -> None:
    """Unpack and embed `batch` (row, cache target) in a staging folder, then rename each
    store into place; the staging folder goes whatever happens."""
    from plurel_ray.store.embedding import embed

    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
    try:
        staged = []
        for number, (row, _) in enumerate(batch):
            staged.append(_unpack_one(root, row, staging / str(number), context_rules))
        # The same vocabulary cache as the generation pipeline's embedding actors.
        vocabulary_cache = os.environ.get(CACHE_DIR_ENV) or str(
            Path(tempfile.gettempdir()) / "plurel-ray-embed-cache"
        )
        embed(staged, model=encoder, cache_dir=vocabulary_cache, progress=progress)
        for store, (_, target) in zip(staged, batch, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                store.rename(target)
            except OSError:
                if not (target / META_FILE).is_file():
                    raise
                # Another job put the same store there first; theirs is the same bytes.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack_one(root: OutputRoot, row: dict, dest: Path, context_rules: str) -> Path:
    """The store of `row` under `dest`: out of its shard, or made from its database."""
    name = row["db_name"]
    if row["store"] is not None:
        return open_store(root, name, dest, row=row)
    from plurel_ray.store.preprocessing import preprocess

    database = open_database(root, name, dest / "database", row=row)
    try:
        return preprocess(database, dest / STORES_DIR, name=name, context_rules=context_rules)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(database.parent)
