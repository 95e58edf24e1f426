"""The run index: one row per seed, as an Arrow table written to `<out>/_index.parquet`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from plurel_ray.pipeline.output import INDEX_FILE, OutputRoot
from plurel_ray.pipeline.seed_worker import STATUS_FAILED, STATUS_GENERATED, STATUS_SKIPPED

SHOWN_FAILURES = 5  # the summary names this many failed seeds; the index has them all

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
    """Streams index rows into a local Parquet file, then publishes it at the output root.

    Rows arrive in completion order and are written as they come, so the driver's memory
    does not grow with the number of seeds; counters feed the run summary.

    Args:
        root: the output root the index is published into.
        scratch: a local folder for the file while it is being written.
    """

    def __init__(self, root: OutputRoot, scratch: Path) -> None:
        self.root = root
        scratch.mkdir(parents=True, exist_ok=True)
        self._local = scratch / f"index-{uuid.uuid4().hex}.parquet"
        self._writer = pq.ParquetWriter(self._local, INDEX_SCHEMA)
        self.counts = {STATUS_GENERATED: 0, STATUS_SKIPPED: 0, STATUS_FAILED: 0}
        self.generated_cells = 0
        self.failures: list[tuple[int, str]] = []

    def add(self, rows: list[dict]) -> None:
        self._writer.write_table(index_table(rows))
        for row in rows:
            self.counts[row["status"]] += 1
            if row["status"] == STATUS_GENERATED:
                self.generated_cells += row["cells"]
            elif row["status"] == STATUS_FAILED:
                self.failures.append((row["seed"], row["error"]))

    def publish(self) -> str:
        """Close the file and move it to `<root>/_index.parquet` atomically."""
        self._writer.close()
        try:
            self.root.write_bytes_atomic(INDEX_FILE, self._local.read_bytes())
        finally:
            self._local.unlink(missing_ok=True)
        return self.root.join(INDEX_FILE)


def read_index(root: OutputRoot) -> pa.Table:
    """The published index of a run, sorted by seed."""
    with root.fs.open_input_file(root.join(INDEX_FILE)) as src:
        return pq.read_table(src).sort_by("seed")


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

    @classmethod
    def of(
        cls, sink: IndexSink, seconds: float, index_path: str, hub_failures: int = 0
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
        )

    def lines(self) -> list[str]:
        rate = self.generated / self.seconds if self.seconds > 0 else 0.0
        cell_rate = self.cells / self.seconds if self.seconds > 0 else 0.0
        return [
            f"databases: {self.databases} ({self.generated} generated, {self.skipped} "
            f"already complete, {self.failed} failed) in {self.seconds:.1f} s",
            f"throughput: {rate:.2f} databases/s, {cell_rate:,.0f} cells/s",
            f"output: {self.out}  (index: {self.index_path})",
            *(f"failed: seed {seed}: {error}" for seed, error in self.first_failures),
            *([f"hub: {self.hub_failures} database push(es) failed (see the log)"]
              if self.hub_failures else []),
        ]  # fmt: skip
