"""What a generation run did, for the console and the exit status."""

from __future__ import annotations

from dataclasses import dataclass

from plurel_ray.pipeline.index import IndexSink
from plurel_ray.pipeline.seed_worker import STATUS_FAILED, STATUS_GENERATED, STATUS_SKIPPED

SHOWN_FAILURES = 5  # the summary names this many failed seeds; the index has them all


@dataclass(frozen=True)
class RunSummary:
    """What a generation run did.

    Attributes:
        databases: seeds of the run.
        generated: databases it produced.
        skipped: seeds complete already (by the index, or found on disk).
        failed: seeds that failed (in the index with their error).
    """

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
        *,
        already_done: int = 0,
        hub_failures: int = 0,
        notices: tuple[str, ...] = (),
    ) -> RunSummary:
        counts = sink.counts
        return cls(
            databases=sum(counts.values()) + already_done,
            generated=counts[STATUS_GENERATED],
            skipped=counts[STATUS_SKIPPED] + already_done,
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
