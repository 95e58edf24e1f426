"""Array files of a node store: a 64-byte header, then a little-endian payload.

The layout is docs/store-format.md; the Rust side (native/src/store/) reads and writes the
same bytes. Readers validate the header, the exact file length and the payload CRC before
they hand out a single element, so a truncated copy or a flipped bit fails loudly here and
not as a wrong embedding three stages later.
"""

from __future__ import annotations

import itertools
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from plurel_ray._native import STORE_FORMAT_VERSION, STORE_MAGIC
from plurel_ray.errors import StoreError

# magic, version, (4 reserved), tag, element type, (3 reserved), count, payload bytes, crc32,
# (20 reserved): exactly the table in docs/store-format.md.
_HEADER = struct.Struct("<8sI4x4sB3xQQI20x")
HEADER_BYTES = _HEADER.size  # 64

ELEMENT_TYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u4"),
    3: np.dtype("<i4"),
    4: np.dtype("<u8"),
    5: np.dtype("<i8"),
    6: np.dtype("<f4"),
}
_TYPE_CODES = {dtype: code for code, dtype in ELEMENT_TYPES.items()}

# Which step rebuilds a file: everything but the embeddings comes from preprocessing.
_REBUILD = {b"TEMB": "re-run the text embedding (plurel_ray.store.embed) on the store"}
_REBUILD_DEFAULT = "re-run `plurel-ray preprocess` to rebuild the store"


def _type_code(dtype: DTypeLike) -> int:
    code = _TYPE_CODES.get(np.dtype(dtype).newbyteorder("<"))
    if code is None:
        supported = ", ".join(str(d) for d in ELEMENT_TYPES.values())
        raise ValueError(f"store arrays hold {supported}; got dtype {np.dtype(dtype)}")
    return code


def _tag_bytes(tag: str) -> bytes:
    if len(tag) != 4 or not tag.isascii():
        raise ValueError(f"an array tag is 4 ASCII characters; got {tag!r}")
    return tag.encode("ascii")


def write_atomic(path: str | os.PathLike, chunks: Iterable[bytes | memoryview]) -> None:
    """Write `chunks` to `path` so that readers see the old file or the new one, never half.

    Args:
        path: destination file; its directory must exist.
        chunks: byte buffers written in order.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_array(path: str | os.PathLike, tag: str, array: np.ndarray) -> dict[str, int]:
    """Write `array` (flattened in C order) as a store array file, atomically.

    Args:
        path: destination, e.g. `<store>/text_emb.bin`.
        tag: the file's 4-character tag from docs/store-format.md, e.g. "TEMB".
        array: u8, u32, i32, u64, i64 or f32 values of any shape.

    Returns:
        The file's meta.json "files" entry: {"bytes": file size, "crc32": payload CRC}.
    """
    code = _type_code(array.dtype)
    payload = np.ascontiguousarray(array, dtype=ELEMENT_TYPES[code]).reshape(-1)
    data = memoryview(payload).cast("B")
    crc = zlib.crc32(data)
    header = _HEADER.pack(
        STORE_MAGIC, STORE_FORMAT_VERSION, _tag_bytes(tag), code, payload.size, data.nbytes, crc
    )
    write_atomic(path, [header, data])
    return {"bytes": HEADER_BYTES + data.nbytes, "crc32": crc}


def _fail(path: Path, tag: bytes, problem: str) -> StoreError:
    return StoreError(f"{path}: {problem}; {_REBUILD.get(tag, _REBUILD_DEFAULT)}")


def read_array(
    path: str | os.PathLike, tag: str, dtype: DTypeLike, *, mmap: bool = True
) -> np.ndarray:
    """Read a store array file after validating everything the header promises.

    Args:
        path: the array file.
        tag: the tag it must carry, e.g. "VOFF".
        dtype: the element type it must hold, e.g. np.uint64.
        mmap: map the payload read-only instead of copying it into memory.

    Returns:
        A 1-D array of `count` elements (read-only when memory-mapped).

    Raises:
        StoreError: the file is missing, truncated, corrupted, of another format version,
            or holds another array than asked for.
    """
    path = Path(path)
    want_tag, want_code = _tag_bytes(tag), _type_code(dtype)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise _fail(path, want_tag, "the file is missing") from None
    except OSError as e:
        raise _fail(path, want_tag, f"cannot be read ({e.strerror})") from e
    if len(head) < HEADER_BYTES:
        raise _fail(path, want_tag, f"truncated: {size} bytes, shorter than the header")
    magic, version, got_tag, code, count, nbytes, crc = _HEADER.unpack(head)
    if magic != STORE_MAGIC:
        raise _fail(path, want_tag, f"not a store array file (magic {magic!r})")
    if version != STORE_FORMAT_VERSION:
        raise _fail(
            path, want_tag, f"format version {version}, this build reads {STORE_FORMAT_VERSION}"
        )
    if got_tag != want_tag:
        raise _fail(path, want_tag, f"holds array {got_tag!r}, expected {want_tag!r}")
    if code != want_code:
        got = ELEMENT_TYPES.get(code, f"unknown type code {code}")
        raise _fail(path, want_tag, f"holds {got} elements, expected {ELEMENT_TYPES[want_code]}")
    element = ELEMENT_TYPES[code]
    if nbytes != count * element.itemsize:
        raise _fail(path, want_tag, f"header says {count} elements but {nbytes} payload bytes")
    if size != HEADER_BYTES + nbytes:
        state = "truncated" if size < HEADER_BYTES + nbytes else "has trailing bytes"
        raise _fail(path, want_tag, f"{state}: {size} bytes, expected {HEADER_BYTES + nbytes}")
    if count == 0:
        array = np.empty(0, dtype=element)  # np.memmap cannot map zero bytes
    elif mmap:
        array = np.memmap(path, dtype=element, mode="r", offset=HEADER_BYTES, shape=(count,))
    else:
        array = np.fromfile(path, dtype=element, offset=HEADER_BYTES)
    if zlib.crc32(memoryview(array).cast("B")) != crc:
        raise _fail(path, want_tag, "payload CRC-32 does not match the header (corrupted)")
    return array


def read_vocabulary(store_dir: str | os.PathLike) -> list[str]:
    """Read a store's text vocabulary (vocab_offsets.bin + vocab_bytes.bin).

    Args:
        store_dir: the node store directory.

    Returns:
        The strings in vocabulary-id order.

    Raises:
        StoreError: a file is missing or corrupted, an offset is out of order or out of
            range, or a string is not valid UTF-8.
    """
    store_dir = Path(store_dir)
    offsets_path = store_dir / "vocab_offsets.bin"
    offsets = read_array(offsets_path, "VOFF", np.uint64)
    data = read_array(store_dir / "vocab_bytes.bin", "VBYT", np.uint8).tobytes()
    if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise _fail(
            offsets_path,
            b"VOFF",
            f"offsets must run from 0 to {len(data)} (the size of vocab_bytes.bin)",
        )
    if np.any(offsets[1:] < offsets[:-1]):
        raise _fail(offsets_path, b"VOFF", "offsets decrease")
    bounds = offsets.tolist()
    strings = []
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        try:
            strings.append(data[start:end].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise _fail(
                store_dir / "vocab_bytes.bin", b"VBYT", f"string {i} is not UTF-8 ({e.reason})"
            ) from None
    return strings
