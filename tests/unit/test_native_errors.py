"""Every native error reaches Python as its own exception class, caught by type (never by
message text): one Rust error enum per concern, mapped in native/src/bindings/errors.rs
(docs/native.md#errors), and re-raised as plurel_ray.errors types by plurel_ray.store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_builder import Table, write_store

from plurel_ray import _native
from plurel_ray.errors import EmptySourceError, SamplerError, StoreError
from plurel_ray.pipeline.pretrain_data import drop_empty_sources
from plurel_ray.store.sampler import Sampler, Source


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """users (3 rows): `age` numbers, `ghost` never set, so a task on it is empty."""
    users = Table("users", 3, {"age": np.array([30.0, 40.0, 50.0]), "ghost": np.full(3, np.nan)})
    return write_store(tmp_path_factory.mktemp("errors") / "users", [users])


def plan(table_path: Path) -> dict:
    """A one-table preprocessing plan reading `table_path`."""
    table = dict(name="users", vocab_name="users", kind="db", path=str(table_path),
                 pkey=None, time_col=None, fkeys=[], stats_from=None)  # fmt: skip
    return dict(name="db", val_timestamp=0, rules="reference", tables=[table])


def test_the_classes_form_one_hierarchy_under_value_error():
    for cls in (_native.StoreError, _native.PreprocessError, _native.SamplerError):
        assert issubclass(cls, _native.NativeError)
    assert issubclass(_native.EmptySourceError, _native.SamplerError)
    assert issubclass(_native.NativeError, ValueError)
    assert issubclass(EmptySourceError, SamplerError)


def test_an_empty_source_is_empty_source_error(store):
    with pytest.raises(_native.EmptySourceError, match="nothing to sample"):
        _native.Sampler([str(store)], [None], [(0, 0, 1, [], None)], batch_size=2)
    with pytest.raises(EmptySourceError, match="nothing to sample"):
        Sampler([Source(store, table="users", target="ghost")], batch_size=2)
    # Any other bad argument stays a SamplerError that is not an EmptySourceError.
    with pytest.raises(_native.SamplerError, match="batch_size") as err:
        _native.Sampler([str(store)], [None], [(0, 0, 0, [], None)], batch_size=0)
    assert not isinstance(err.value, _native.EmptySourceError)


def test_a_corrupt_array_file_is_store_error(store, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in store.iterdir():
        data = path.read_bytes()
        if path.name == "cell_value.bin":
            data = data[:-1] + bytes([data[-1] ^ 1])  # the CRC no longer matches
        (broken / path.name).write_bytes(data)
    with pytest.raises(_native.StoreError, match=r"cell_value\.bin.*checksum"):
        _native.Sampler([str(broken)], [None], [(0, 0, 0, [], None)], batch_size=2)
    with pytest.raises(StoreError, match=r"cell_value\.bin.*checksum"):
        Sampler([Source(broken, table="users", target="age")], batch_size=2)
    with pytest.raises(_native.StoreError, match="bad store magic"):
        _native.check_header(b"NOTSTORE" + bytes(8))


def test_a_bad_parquet_file_is_preprocess_error(tmp_path):
    garbage = tmp_path / "users.parquet"
    garbage.write_bytes(b"not a parquet file")
    with pytest.raises(_native.PreprocessError, match=r'table "users": cannot read .*users'):
        _native.preprocess(plan(garbage), str(tmp_path / "store"))


def test_an_unwritable_store_is_store_error(tmp_path):
    table = tmp_path / "users.parquet"
    pq.write_table(pa.table({"age": [30.0, 40.0]}), table)
    (tmp_path / "blocked").write_text("a file where the store's folder goes")
    with pytest.raises(_native.StoreError, match="cannot write the store"):
        _native.preprocess(plan(table), str(tmp_path / "blocked" / "store"))


def test_pretraining_drops_empty_sources_by_type_and_raises_the_rest(store):
    empty, good = (Source(store, table="users", target=t) for t in ("ghost", "age"))
    assert drop_empty_sources([empty, good], batch_size=2, ctx_len=16) == ([good], [empty])
    with pytest.raises(SamplerError, match="no column 'nope'"):
        drop_empty_sources([Source(store, table="users", target="nope")], 2, 16)
