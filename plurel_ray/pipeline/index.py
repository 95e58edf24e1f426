"""The output's index: one row per database of every run into it, `<out>/_index.parquet`.

Each run streams its rows into its run folder and, at the end, merges them into the
published index: rows are keyed by database name and this run's rows replace earlier
ones of the same seed, so the index lists every database of every run into the output.
An existing index that cannot be read is kept aside as `_index.corrupt-<run id>.parquet`
and its rows are rebuilt from the complete database folders' `plurel.json` (as status
`skipped`; failures of earlier runs, which left no folder, are not recovered), with a
one-line notice in the run summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from plurel_ray.pipeline.output import INDEX_FILE, RUNS_DIR, OutputRoot, one_line
from plurel_ray.pipeline.seed_worker import (
    STATUS_FAILED,
    STATUS_GENERATED,
    STATUS_SKIPPED,
    STORE_MARKER,
    STORES_DIR,
)

SHOWN_FAILURES = 5  # the summary names this many failed seeds; the index has them all
ROW_GROUP = 4096  # rows buffered before they are written: one seed a row group was slow

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
        ("store", pa.string()),  # node store folder when --preprocess ran, else null
    ]
)


def index_table(rows: list[dict]) -> pa.Table:
    """Index rows (dicts with INDEX_SCHEMA's fields) as a table of that schema."""
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in INDEX_SCHEMA.names} for row in rows],
        schema=INDEX_SCHEMA,
    )


class IndexSink:
    """Streams this run's index rows into its run folder, then merges them into the
    output's index.

    Rows arrive in completion order and are written in groups of `ROW_GROUP`, so the
    driver's memory does not grow with the number of seeds; counters feed the run summary.

    Args:
        root: the output root the index is published into.
        run_id: the run (whose lease is held): its rows go to `<root>/.runs/<run_id>/`.
    """

    def __init__(self, root: OutputRoot, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self._path = root.join(RUNS_DIR, run_id, "index.parquet")
        root.fs.create_dir(root.join(RUNS_DIR, run_id), recursive=True)
        self._stream = root.fs.open_output_stream(self._path)
        self._writer = pq.ParquetWriter(self._stream, INDEX_SCHEMA)
        self._pending: list[dict] = []
        self.counts = {STATUS_GENERATED: 0, STATUS_SKIPPED: 0, STATUS_FAILED: 0}
        self.generated_cells = 0
        self.failures: list[tuple[int, str]] = []
        self.notices: list[str] = []
        self.indexed = 0  # rows of the published index, every run's

    def add(self, rows: list[dict]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= ROW_GROUP:
            self._flush()
        for row in rows:
            self.counts[row["status"]] += 1
            if row["status"] == STATUS_GENERATED:
                self.generated_cells += row["cells"]
            elif row["status"] == STATUS_FAILED:
                self.failures.append((row["seed"], row["error"]))

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(index_table(self._pending))
            self._pending = []

    def publish(self) -> str:
        """Merge this run's rows into `<root>/_index.parquet` and replace it atomically
        (a rename on a local root; one object written on an object store)."""
        self._flush()
        self._writer.close()
        self._stream.close()
        with self.root.fs.open_input_file(self._path) as src:
            rows = pq.read_table(src)
        earlier = self._earlier_rows()
        if earlier is not None:
            keep = pc.invert(pc.is_in(earlier["db_name"], value_set=rows["db_name"]))
            rows = pa.concat_tables([earlier.filter(keep), rows])
        rows = rows.sort_by("seed")
        merged = self.root.join(RUNS_DIR, self.run_id, INDEX_FILE)
        with self.root.fs.open_output_stream(merged) as out:
            pq.write_table(rows, out)
        self.root.fs.move(merged, self.root.join(INDEX_FILE))
        self.indexed = rows.num_rows
        return self.root.join(INDEX_FILE)

    def _earlier_rows(self) -> pa.Table | None:
        """The published index's rows, or rebuilt ones when it is unreadable; None if none."""
        path = self.root.join(INDEX_FILE)
        if self.root.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        try:
            with self.root.fs.open_input_file(path) as src:
                return _conform(pq.read_table(src))
        except (pa.ArrowException, OSError, ValueError) as err:
            aside = f"_index.corrupt-{self.run_id}.parquet"
            self.root.fs.move(path, self.root.join(aside))
            rebuilt = rebuild_index(self.root)
            self.notices.append(
                f"index {path} was unreadable ({one_line(err)}); kept as {aside}, "
                f"rebuilt from {rebuilt.num_rows} database folders' plurel.json"
            )
            return rebuilt


def read_index(root: OutputRoot) -> pa.Table:
    """The published index of an output, sorted by seed.

    Args:
        root: the output root.
    """
    with root.fs.open_input_file(root.join(INDEX_FILE)) as src:
        return pq.read_table(src).sort_by("seed")


def _conform(table: pa.Table) -> pa.Table:
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


def rebuild_index(root: OutputRoot) -> pa.Table:
    """Index rows for every complete database folder under `root`, from its plurel.json.

    Args:
        root: the output root.
    """
    selector = pafs.FileSelector(root.path, allow_not_found=True)
    names = sorted(
        info.base_name for info in root.fs.get_file_info(selector)
        if info.type == pafs.FileType.Directory and info.base_name.startswith("plurel-")
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
    return index_table(rows)


@dataclass(frozen=True)
class RunSummary:
    """What a generation run did, for the console and the exit status."""

    databases: int
    generated: int
    skipped: int
    failed: int
    cells: int
    seconds: float
    index_path: str
    out: str
    first_failures: tuple[tuple[int, str], ...] = ()
    hub_failures: int = 0
    indexed: int = 0  # databases the index lists, every run's
    notices: tuple[str, ...] = ()  # one line each: a lease taken over, an index rebuilt

    @classmethod
    def of(
        cls,
        sink: IndexSink,
        seconds: float,
        index_path: str,
        hub_failures: int = 0,
        notices: tuple[str, ...] = (),
    ) -> RunSummary:
        counts = sink.counts
        return cls(
            databases=sum(counts.values()),
            generated=counts[STATUS_GENERATED],
            skipped=counts[STATUS_SKIPPED],
            failed=counts[STATUS_FAILED],
            cells=sink.generated_cells,
            seconds=seconds,
            index_path=index_path,
            out=sink.root.uri,
            first_failures=tuple(sorted(sink.failures)[:SHOWN_FAILURES]),
            hub_failures=hub_failures,
            indexed=sink.indexed,
            notices=(*notices, *sink.notices),
        )

    def lines(self) -> list[str]:
        rate = self.generated / self.seconds if self.seconds > 0 else 0.0
        cell_rate = self.cells / self.seconds if self.seconds > 0 else 0.0
        return [
            f"databases: {self.databases} ({self.generated} generated, {self.skipped} "
            f"already complete, {self.failed} failed) in {self.seconds:.1f} s",
            f"throughput: {rate:.2f} databases/s, {cell_rate:,.0f} cells/s",
            f"output: {self.out}  (index: {self.index_path}, {self.indexed} databases "
            "of every run)",
            *(f"note: {notice}" for notice in self.notices),
            *(f"failed: seed {seed}: {error}" for seed, error in self.first_failures),
            *([f"hub: {self.hub_failures} database push(es) failed (see the log)"]
              if self.hub_failures else []),
        ]  # fmt: skip
