"""Embed the text vocabulary of node stores: `text_emb.bin`, row v embeds string v.

Thousands of synthetic databases share most of their vocabulary ("feature_3 of table_1",
category labels), so every call deduplicates the strings of all its stores, looks them up
in a cache keyed by (model, string) and runs the encoder only on the rest. The cache is a
SQLite file in WAL mode, so Ray workers on one machine can share it.

The key names no device and no implementation, on purpose: a vector computed on the CPU,
on a GPU, or by the NumPy forward pass this encoder replaced differs from the others only
in float32 rounding (≤ 3e-7 per component measured, 1e-5 tested), below anything the model
can tell apart, so caches and stores written before stay valid. The price: a store's
`text_emb.bin` is bit-identical to another's only when the same kind of machine computed
the strings they did not take from a cache.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plurel_ray.errors import StoreError
from plurel_ray.store.arrays import read_array, read_vocabulary, write_array, write_atomic
from plurel_ray.store.encoder import DEFAULT_MODEL, TextEncoder
from plurel_ray.store.meta import META_FILE, read_meta

CACHE_DIR_ENV = "PLUREL_RAY_CACHE_DIR"
CACHE_FILE = "embeddings.sqlite"
EMBEDDING_FILE = "text_emb.bin"
_PREPROCESS = "re-run `plurel-ray preprocess` to rebuild the store"
_LOOKUP_CHUNK = 500  # bound variables per query; old SQLite builds allow at most 999


@dataclass(frozen=True)
class EmbedReport:
    """What one `embed` call did.

    Attributes:
        stores: stores whose text_emb.bin was written.
        stores_skipped: stores already embedded with this model, left untouched.
        strings_total: vocabulary strings over the written stores, duplicates included.
        strings_encoded: distinct strings run through the encoder.
        cache_hits: distinct strings read from the persistent cache instead.
        seconds: wall-clock time of the call, model loading included.
        model: the encoder's name, as recorded in meta.json.
        dim: embedding width.
    """

    stores: int
    stores_skipped: int
    strings_total: int
    strings_encoded: int
    cache_hits: int
    seconds: float
    model: str
    dim: int


class _Cache:
    """Embeddings keyed by (model name, string) in a SQLite file shared between processes."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A long timeout: another worker may hold the write lock while it inserts.
            self._db = sqlite3.connect(path, timeout=120)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text TEXT NOT NULL,"
                " vector BLOB NOT NULL, PRIMARY KEY (model, text)) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as e:
            raise StoreError(
                f"{path}: cannot open the embedding cache ({e}); pass another cache_dir or "
                f"unset {CACHE_DIR_ENV}"
            ) from e

    def get(self, model: str, texts: list[str], dim: int) -> dict[str, np.ndarray]:
        found = {}
        for start in range(0, len(texts), _LOOKUP_CHUNK):
            chunk = texts[start : start + _LOOKUP_CHUNK]
            rows = self._db.execute(
                "SELECT text, vector FROM embeddings WHERE model = ? AND text IN "
                f"({','.join('?' * len(chunk))})",
                [model, *chunk],
            )
            for text, blob in rows:
                if len(blob) == 4 * dim:  # a row of another width is a miss, then replaced
                    found[text] = np.frombuffer(blob, dtype="<f4")
        return found

    def put(self, model: str, texts: list[str], vectors: np.ndarray) -> None:
        rows = vectors.astype("<f4", copy=False)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                ((model, text, row.tobytes()) for text, row in zip(texts, rows, strict=True)),
            )

    def close(self) -> None:
        self._db.close()


def _cache_folder(cache_dir: str | os.PathLike | None) -> Path | None:
    """The embedding cache folder: `cache_dir`, else $PLUREL_RAY_CACHE_DIR, else None.

    `~` and `$VAR`s are expanded here: a value from a Ray runtime_env, a config file or a
    quoted shell word arrives unexpanded and would otherwise create a folder named `~`.

    Args:
        cache_dir: the folder passed by the caller, or None to read the environment.
    """
    folder = cache_dir if cache_dir is not None else os.environ.get(CACHE_DIR_ENV) or None
    if folder is None:
        return None
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(folder))))


@contextmanager
def _open_cache(cache_dir: str | os.PathLike | None) -> Iterator[_Cache | None]:
    folder = _cache_folder(cache_dir)
    if folder is None:
        yield None  # strings are still deduplicated across this call's stores
        return
    cache = _Cache(folder / CACHE_FILE)
    try:
        yield cache
    finally:
        cache.close()


def _read_meta(store: Path) -> dict:
    meta = read_meta(store)
    vocab = meta["counts"].get("vocab")
    if vocab is None or vocab < 0:
        raise StoreError(
            f"{store / META_FILE}: counts.vocab is {vocab!r}, not a count; {_PREPROCESS}"
        )
    return meta


def _is_embedded(store: Path, meta: dict, encoder: TextEncoder) -> bool:
    recorded = meta.get("embedding") or {}
    entry = meta.get("files", {}).get(EMBEDDING_FILE)
    if recorded.get("model") != encoder.name or recorded.get("dim") != encoder.dim or not entry:
        return False
    try:
        emb = read_array(store / EMBEDDING_FILE, "TEMB", np.float32)
    except StoreError:
        return False  # missing or damaged: embed again
    # The CRC ties the file to this meta.json: a crash between writing text_emb.bin and
    # meta.json leaves a file that another model wrote under the old record.
    return emb.size == meta["counts"]["vocab"] * encoder.dim and entry == {
        "bytes": (store / EMBEDDING_FILE).stat().st_size,
        "crc32": zlib.crc32(memoryview(emb).cast("B")),
    }


def _encode_missing(
    strings: list[str], encoder: TextEncoder, cache: _Cache | None, batch_size: int, progress: bool
) -> tuple[np.ndarray, int]:
    """Embeddings of `strings` (row i embeds strings[i]) and how many came from the cache."""
    table = np.empty((len(strings), encoder.dim), dtype=np.float32)
    hits = cache.get(encoder.name, strings, encoder.dim) if cache is not None else {}
    missing = []
    for i, text in enumerate(strings):
        if text in hits:
            table[i] = hits[text]
        else:
            missing.append(i)
    if missing:
        texts = [strings[i] for i in missing]
        table[missing] = encoder.encode(texts, batch_size, progress=progress)
        if cache is not None:
            cache.put(encoder.name, texts, table[missing])
    return table, len(hits)


def embed(
    stores: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    model: str | TextEncoder = DEFAULT_MODEL,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> EmbedReport:
    """Write `text_emb.bin` and record the embedding in meta.json for each store.

    Args:
        stores: one node store directory or several; their strings are encoded together.
        model: DEFAULT_MODEL or a sentence-transformers model folder (loaded on the GPU
            if there is one), or a loaded `TextEncoder` (reuse one across calls to skip
            loading the weights; `TextEncoder.load(device=...)` picks the device).
        cache_dir: folder of the persistent cache `embeddings.sqlite` (created if needed);
            None means $PLUREL_RAY_CACHE_DIR if set, else no cache beyond this call.
        batch_size: most strings per encoder forward pass.
        progress: show a progress bar over encoder batches.

    Returns:
        An EmbedReport. Stores whose meta.json already records this model over a valid
        text_emb.bin are skipped.

    Raises:
        StoreError: a store's meta.json or vocabulary files are missing or invalid, or
            the cache cannot be opened.
        ModelError: the model cannot be loaded.
    """
    start = time.perf_counter()
    encoder = model if isinstance(model, TextEncoder) else TextEncoder.load(model)
    paths = [stores] if isinstance(stores, (str, os.PathLike)) else list(stores)
    todo, skipped = [], 0
    for store in map(Path, paths):
        meta = _read_meta(store)
        if _is_embedded(store, meta, encoder):
            skipped += 1
            continue
        vocab = read_vocabulary(store)
        if len(vocab) != meta["counts"]["vocab"]:
            raise StoreError(
                f"{store / 'meta.json'}: counts.vocab is {meta['counts']['vocab']} but the "
                f"vocabulary files hold {len(vocab)} strings; {_PREPROCESS}"
            )
        todo.append((store, meta, vocab))

    row_of: dict[str, int] = {}
    for _, _, vocab in todo:
        for text in vocab:
            row_of.setdefault(text, len(row_of))
    with _open_cache(cache_dir) as cache:
        table, hits = _encode_missing(list(row_of), encoder, cache, batch_size, progress)

    for store, meta, vocab in todo:
        rows = np.fromiter((row_of[text] for text in vocab), dtype=np.int64, count=len(vocab))
        entry = write_array(store / EMBEDDING_FILE, "TEMB", table[rows])
        meta["embedding"] = {"model": encoder.name, "dim": encoder.dim, "file": EMBEDDING_FILE}
        meta.setdefault("files", {})[EMBEDDING_FILE] = entry
        write_atomic(store / "meta.json", [json.dumps(meta, indent=2).encode() + b"\n"])

    return EmbedReport(
        stores=len(todo),
        stores_skipped=skipped,
        strings_total=sum(len(vocab) for _, _, vocab in todo),
        strings_encoded=len(row_of) - hits,
        cache_hits=hits,
        seconds=time.perf_counter() - start,
        model=encoder.name,
        dim=encoder.dim,
    )
