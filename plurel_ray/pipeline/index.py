"""The run index: one row per database of every run into an output; the source of truth
for what is done.

    <out>/_index.parquet         every row, merged at the end of each run
    <out>/_index/<part>.parquet  rows appended while a run goes: a part per ROW_GROUP
                                 rows or `flush_s` seconds (1 s packed, 30 s folders)

A part is written once, whole (renamed into place on a local root; one object on an
object store), so a killed run leaves every part it wrote readable. A run reads the index
once, at its start (`read_all`: `_index.parquet` plus the parts), to decide which seeds
are done, without looking at any database; at its end it merges everything into
`_index.parquet` and deletes the parts it merged. A database's row is the latest row of
its seed: parts are named by the driver's clock, and `_index.parquet` is older than any
part. An `_index.parquet` that cannot be read is kept aside as
`_index.corrupt-<run id>.parquet` and rebuilt from what is on disk (`rebuild_index`),
with a one-line notice.
"""

from __future__ import annotations

import contextlib
import math
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from plurel_ray.pipeline.output import INDEX_FILE, OutputRoot, one_line
from plurel_ray.pipeline.rebuild import rebuild_index
from plurel_ray.pipeline.seed_worker import STATUS_FAILED, STATUS_GENERATED, STATUS_SKIPPED

INDEX_PARTS = "_index"
ROW_GROUP = 4096  # rows buffered before a part is written ...
# ... or this long since the last part. Folders: an unindexed database is found complete
# by the next run (one read of its plurel.json). Packed: an unindexed shard is an orphan
# that is made again, so a kill may cost about a second of shards, and a part per second
# at most keeps the driver's work per shard small when thousands of actors finish shards.
FLUSH_S = 30.0
FLUSH_PACKED_S = 1.0

INDEX_SCHEMA = pa.schema(
    [
        ("db_name", pa.string()),
        ("seed", pa.int64()),
        ("status", pa.string()),  # generated | skipped | failed
        ("tables", pa.int64()),
        ("rows", pa.int64()),
        ("cells", pa.int64()),
        ("bytes", pa.int64()),
        ("seconds", pa.float64()),
        ("node", pa.string()),
        ("error", pa.string()),
        ("store", pa.string()),  # node store: folder, or its member in the shard; else null
        ("context_rules", pa.string()),  # the store's context rules, else null
        ("embedded", pa.string()),  # the encoder its store is embedded with, else null
        ("shard", pa.string()),  # packed layout: the shard file under the root, else null
        ("offset", pa.int64()),  # packed layout: the database's span in its shard ...
        ("length", pa.int64()),
        ("sha256", pa.string()),  # ... and the span's sha256
    ]
)
COMPLETE = (STATUS_GENERATED, STATUS_SKIPPED)


def index_table(rows: list[dict]) -> pa.Table:
    """Index rows (dicts with INDEX_SCHEMA's fields; missing ones null) as a table."""
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in INDEX_SCHEMA.names} for row in rows],
        schema=INDEX_SCHEMA,
    )


def conform(table: pa.Table) -> pa.Table:
    """`table` with INDEX_SCHEMA's columns (an index of an older version lacks some).

    Raises:
        ValueError: it has no `db_name` or `seed`, or a column of another type.
    """
    if "db_name" not in table.column_names or "seed" not in table.column_names:
        raise ValueError("no db_name or seed column")
    columns = [
        table[field.name].cast(field.type) if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in INDEX_SCHEMA
    ]  # fmt: skip
    return pa.Table.from_arrays(columns, schema=INDEX_SCHEMA)


def latest_per_seed(tables: list[pa.Table]) -> pa.Table:
    """One row per seed, the one of the latest table (`tables` oldest first), by seed."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return INDEX_SCHEMA.empty_table()
    merged = pa.concat_tables(tables)
    age = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    seeds = merged["seed"].to_numpy()
    order = np.lexsort((-age, seeds))  # by seed, the newest first
    first = np.unique(seeds[order], return_index=True)[1]
    return merged.take(pa.array(order[first]))


def part_names(root: OutputRoot) -> list[str]:
    """The index parts under `root`, oldest first (their names start with the time)."""
    selector = pafs.FileSelector(root.join(INDEX_PARTS), allow_not_found=True)
    return sorted(
        info.base_name for info in root.fs.get_file_info(selector)
        if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
        and not info.base_name.startswith(".")
    )  # fmt: skip


def _read(root: OutputRoot, path: str) -> pa.Table:
    with root.fs.open_input_file(path) as src:
        return conform(pq.read_table(src))


def read_all(root: OutputRoot, notices: list[str] | None = None, run_id: str = "") -> pa.Table:
    """Every database's latest row: `_index.parquet` and the parts, one row per seed.

    Args:
        root: the output root.
        notices: where to say that an unreadable `_index.parquet` was rebuilt (and
            written in its place: only a lease holder may pass them); None raises instead.
        run_id: names the corrupt index kept aside.

    Raises:
        DatasetError: a part cannot be read (parts are written whole: one that cannot be
            read was damaged after the fact; `plurel-ray runs verify` names it).
    """
    from plurel_ray.errors import DatasetError

    tables = []
    path = root.join(INDEX_FILE)
    if root.fs.get_file_info(path).type != pafs.FileType.NotFound:
        try:
            tables.append(_read(root, path))
        except (pa.ArrowException, OSError, ValueError) as err:
            if notices is None:
                raise DatasetError(f"{path}: unreadable index ({one_line(err)})") from None
            aside = f"_index.corrupt-{run_id or time.time_ns()}.parquet"
            root.fs.move(path, root.join(aside))
            rebuilt = conform(rebuild_index(root))
            root.write_bytes(INDEX_FILE, table_bytes(rebuilt))  # the run holds the lease
            notices.append(
                f"index {path} was unreadable ({one_line(err)}); kept as {aside}, "
                f"rebuilt from {rebuilt.num_rows} databases on disk"
            )
            tables.append(rebuilt)
    for name in part_names(root):
        part = root.join(INDEX_PARTS, name)
        try:
            tables.append(_read(root, part))
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DatasetError(f"{part}: unreadable index part ({one_line(err)}); delete it "
                               "and rerun (its seeds are redone)") from None  # fmt: skip
    return latest_per_seed(tables)


def read_index(root: OutputRoot) -> pa.Table:
    """The index of an output (merged and parts), sorted by seed.

    Args:
        root: the output root.
    """
    return read_all(root)


def done_seeds(
    index: pa.Table, *, store: str | None = None, embedded: str | None = None
) -> np.ndarray:
    """The sorted seeds whose database is complete — with a store of the context rules
    `store`, embedded with the encoder `embedded`, when they are given."""
    mask = np.isin(index["status"].to_numpy(zero_copy_only=False), COMPLETE)
    if store is not None:  # a store of other rules is not done: its worker says so
        mask &= index["context_rules"].to_numpy(zero_copy_only=False) == store
    if embedded is not None:
        mask &= index["embedded"].to_numpy(zero_copy_only=False) == embedded
    return np.sort(index["seed"].to_numpy()[mask])


class IndexSink:
    """Writes this run's index rows as parts while it goes, then merges every row into
    `_index.parquet`.

    Args:
        root: the output root.
        run_id: the run holding the lease (its parts carry its id).
        flush_s: rows wait at most this long (until the next rows come) for a part.
    """

    def __init__(self, root: OutputRoot, run_id: str, flush_s: float = FLUSH_S) -> None:
        self.root = root
        self.run_id = run_id
        self.flush_s = flush_s
        self._pending: list[dict] = []
        self._last_flush = -math.inf  # the first rows go out at once
        self._parts = 0
        self.counts = {STATUS_GENERATED: 0, STATUS_SKIPPED: 0, STATUS_FAILED: 0}
        self.generated_cells = 0
        self.failures: list[tuple[int, str]] = []
        self.notices: list[str] = []
        self.indexed = 0  # rows of the published index, every run's

    def add(self, rows: list[dict]) -> None:
        """Take rows in completion order; write a part when `flush_s` has passed since the
        last one or `ROW_GROUP` rows wait."""
        self._pending.extend(rows)
        for row in rows:
            self.counts[row["status"]] += 1
            if row["status"] == STATUS_GENERATED:
                self.generated_cells += row["cells"]
            elif row["status"] == STATUS_FAILED:
                self.failures.append((row["seed"], row["error"]))
        due = time.monotonic() - self._last_flush >= self.flush_s
        if due or len(self._pending) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one part (named by the clock, so later sorts later)."""
        if not self._pending:
            return
        name = f"{time.time_ns():020d}-{self.run_id}-{self._parts:06d}.parquet"
        self.root.write_bytes(f"{INDEX_PARTS}/{name}", table_bytes(index_table(self._pending)))
        self._parts += 1
        self._pending = []
        self._last_flush = time.monotonic()

    def publish(self) -> str:
        """Merge `_index.parquet` and every part into `_index.parquet`, then delete the
        merged parts; returns its path."""
        self.flush()
        parts = part_names(self.root)
        rows = read_all(self.root, self.notices, self.run_id).sort_by("seed")
        self.root.write_bytes(INDEX_FILE, table_bytes(rows))
        for name in parts:  # merged: a crash before this only leaves duplicates
            self.root.fs.delete_file(self.root.join(INDEX_PARTS, name))
        if self.root.is_local:  # an empty part folder is no news; object stores have none
            with contextlib.suppress(OSError):
                os.rmdir(self.root.join(INDEX_PARTS))
        self.indexed = rows.num_rows
        return self.root.join(INDEX_FILE)


def table_bytes(table: pa.Table) -> bytes:
    """`table` as zstd Parquet bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
