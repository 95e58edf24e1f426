"""Store array files round-trip and every kind of damage raises StoreError naming the file."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from plurel_ray.errors import StoreError
from plurel_ray.store.arrays import (
    HEADER_BYTES,
    read_array,
    read_vocabulary,
    write_array,
    write_atomic,
)

DTYPES = [np.uint8, np.uint32, np.int32, np.uint64, np.int64, np.float32]


def write_vocabulary(store, strings: list[str]) -> None:
    encoded = [s.encode() for s in strings]
    offsets = np.cumsum([0, *map(len, encoded)], dtype=np.uint64)
    write_array(store / "vocab_offsets.bin", "VOFF", offsets)
    write_array(store / "vocab_bytes.bin", "VBYT", np.frombuffer(b"".join(encoded), np.uint8))


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_values_and_dtype(tmp_path, dtype, mmap):
    values = (np.arange(-5, 95) * 3).astype(dtype)
    path = tmp_path / "a.bin"
    entry = write_array(path, "TEST", values)
    back = read_array(path, "TEST", dtype, mmap=mmap)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, values)
    payload = path.read_bytes()[HEADER_BYTES:]
    assert entry == {"bytes": path.stat().st_size, "crc32": zlib.crc32(payload)}


def test_header_matches_the_documented_layout(tmp_path):
    path = tmp_path / "a.bin"
    write_array(path, "TEMB", np.ones((2, 3), np.float32))
    raw = path.read_bytes()
    assert len(raw) == 64 + 24
    assert raw[:8] == b"PLRLSTOR"
    assert struct.unpack_from("<I", raw, 8)[0] == 1
    assert raw[16:20] == b"TEMB" and raw[20] == 6
    assert struct.unpack_from("<QQI", raw, 24) == (6, 24, zlib.crc32(raw[64:]))
    assert set(raw[12:16] + raw[21:24] + raw[44:64]) == {0}


def test_memory_mapped_arrays_are_read_only(tmp_path):
    write_array(tmp_path / "a.bin", "TEST", np.arange(4, dtype=np.int64))
    array = read_array(tmp_path / "a.bin", "TEST", np.int64)
    with pytest.raises(ValueError):
        array[0] = 1


def test_empty_array_round_trips(tmp_path):
    write_array(tmp_path / "a.bin", "TEST", np.empty(0, np.uint32))
    assert read_array(tmp_path / "a.bin", "TEST", np.uint32).size == 0


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path):
    write_array(tmp_path / "a.bin", "TEST", np.zeros(3, np.uint8))
    write_array(tmp_path / "a.bin", "TEST", np.ones(5, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    assert read_array(tmp_path / "a.bin", "TEST", np.uint8).tolist() == [1] * 5


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text("old")

    def chunks():
        yield b"new"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, chunks())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_writer_rejects_unsupported_dtype_and_bad_tag(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_array(tmp_path / "a.bin", "TEST", np.zeros(2, np.float64))
    with pytest.raises(ValueError, match="4 ASCII"):
        write_array(tmp_path / "a.bin", "TOOLONG", np.zeros(2, np.uint8))


def corrupt(path, at: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[at : at + len(data)] = data
    path.write_bytes(bytes(raw))


CORRUPTIONS = {
    "bad magic": (lambda p: corrupt(p, 0, b"NOTASTOR"), "magic"),
    "wrong version": (lambda p: corrupt(p, 8, struct.pack("<I", 2)), "format version 2"),
    "wrong tag": (lambda p: corrupt(p, 16, b"XXXX"), "holds array b'XXXX'"),
    "wrong element type": (lambda p: corrupt(p, 20, b"\x03"), "expected uint32"),
    "truncated payload": (lambda p: p.write_bytes(p.read_bytes()[:-4]), "truncated"),
    "trailing bytes": (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "trailing"),
    "truncated header": (lambda p: p.write_bytes(p.read_bytes()[:40]), "shorter than the header"),
    "flipped payload byte": (lambda p: corrupt(p, HEADER_BYTES + 5, b"\xff"), "CRC-32"),
    "count disagrees": (lambda p: corrupt(p, 24, struct.pack("<Q", 9)), "payload bytes"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_damaged_file_raises_store_error_naming_file_problem_and_fix(tmp_path, case):
    path = tmp_path / "column_table.bin"
    write_array(path, "KTAB", np.arange(10, dtype=np.uint32))
    damage, problem = CORRUPTIONS[case]
    damage(path)
    with pytest.raises(StoreError) as info:
        read_array(path, "KTAB", np.uint32)
    message = str(info.value)
    assert str(path) in message
    assert problem in message
    assert "plurel-ray preprocess" in message


def test_missing_file_raises_store_error(tmp_path):
    with pytest.raises(StoreError, match="missing"):
        read_array(tmp_path / "node_table.bin", "NTAB", np.uint32)


def test_damaged_embeddings_point_at_the_embedding_step(tmp_path):
    path = tmp_path / "text_emb.bin"
    write_array(path, "TEMB", np.ones(8, np.float32))
    corrupt(path, HEADER_BYTES, b"\xff")
    with pytest.raises(StoreError, match=r"plurel_ray\.store\.embed"):
        read_array(path, "TEMB", np.float32)


def test_vocabulary_round_trips_unicode_and_empty_strings(tmp_path):
    strings = ["users", "", "age of users", "naïve café", "東京", "emoji 🎉"]
    write_vocabulary(tmp_path, strings)
    assert read_vocabulary(tmp_path) == strings


def test_empty_vocabulary(tmp_path):
    write_vocabulary(tmp_path, [])
    assert read_vocabulary(tmp_path) == []


@pytest.mark.parametrize(
    ("offsets", "problem"),
    [([0, 3, 2, 5], "decrease"), ([0, 2, 9], "run from 0 to 5"), ([1, 5], "run from 0 to 5")],
)
def test_vocabulary_offsets_out_of_order_or_range_raise(tmp_path, offsets, problem):
    write_array(tmp_path / "vocab_offsets.bin", "VOFF", np.array(offsets, np.uint64))
    write_array(tmp_path / "vocab_bytes.bin", "VBYT", np.frombuffer(b"abcde", np.uint8))
    with pytest.raises(StoreError, match=problem) as info:
        read_vocabulary(tmp_path)
    assert "vocab_offsets.bin" in str(info.value)


def test_vocabulary_with_invalid_utf8_names_the_string(tmp_path):
    write_array(tmp_path / "vocab_offsets.bin", "VOFF", np.array([0, 2, 4], np.uint64))
    write_array(tmp_path / "vocab_bytes.bin", "VBYT", np.frombuffer(b"ok\xff\xfe", np.uint8))
    with pytest.raises(StoreError, match="string 1 is not UTF-8"):
        read_vocabulary(tmp_path)
