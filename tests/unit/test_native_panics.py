"""A panic in native code never reaches Python as pyo3's PanicException (a BaseException
that slips past `except Exception`): the bindings that read user files turn it into the
typed error of their concern, naming the file (native/src/panic_guard.rs)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from plurel_ray.dataset.relbench_io import INFO_FILE, write_dataset
from plurel_ray.errors import DatasetError, PlurelError
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.synth.database import generate_database


@pytest.fixture(scope="module")
def real_folder(small_config, tmp_path_factory):
    """A generated dataset folder without plurel.json: read as is, like real data, so no
    content hash stands between a corrupted file and the native reader."""
    root = tmp_path_factory.mktemp("real")
    folder = write_dataset(generate_database(3, small_config), root / "plurel-3", small_config)
    (folder / INFO_FILE).unlink()
    return folder


def test_flipped_parquet_bytes_give_a_typed_error_or_a_store(real_folder, tmp_path):
    # Every byte of one column chunk (page header and values) and the file's footer:
    # with parquet 60.1, flips in a page header make the crate panic ("offset + len out
    # of bounds", "column start and length should not be negative").
    path = min((real_folder / "db").glob("*.parquet"), key=lambda p: p.stat().st_size)
    data = path.read_bytes()
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
    start = chunk.data_page_offset
    footer = range(len(data) - 40, len(data) - 8, 4)
    offsets = [*range(start, start + chunk.total_compressed_size), *footer]
    outcomes = []
    try:
        for offset in offsets:
            corrupted = bytearray(data)
            corrupted[offset] ^= 0xFF
            path.write_bytes(bytes(corrupted))
            try:
                preprocess(real_folder, tmp_path, overwrite=True)
                outcomes.append("store")
            except PlurelError as err:
                assert isinstance(err, DatasetError), (offset, err)
                assert str(path) in str(err), (offset, err)
                outcomes.append(str(err))
            except BaseException as err:  # PanicException is a BaseException
                pytest.fail(f"byte {offset} flipped: {type(err).__name__}: {err}")
    finally:
        path.write_bytes(data)
    # The case this test exists for: a panic inside the parquet crate, caught and named.
    assert any("the Parquet reader failed" in o for o in outcomes), outcomes
