"""Seeds → database folders (and node stores) on Ray Data, or in this process.

    request = GenerationRequest(seeds=range(100), out="s3://bucket/run1", config=Config())
    summary = run_generation(request)              # Ray: embedded local, or RAY_ADDRESS

The Ray pipeline is one streaming Dataset: the seeds, as many small blocks, go through an
actor pool of `GeneratorActor`s (each holds its config, generator and output root; 1 CPU
by default; pool size from the cluster's CPUs). An actor generates a database, writes it
as a RelBench-3 folder in local scratch, preprocesses it there when asked (reading the
local copy beats fetching it back from object storage, and needs no second pool), and
publishes both; it returns one index row per seed. With `embed`, a second actor pool —
GPUs when the cluster has them — embeds each new store's vocabulary. The driver streams
the index rows into `_index.parquet`, so its memory does not grow with the seed count.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.index import IndexSink, RunSummary
from plurel_ray.pipeline.lease import OutputLease
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.seed_worker import STATUS_GENERATED, SeedWorker, StoreEmbedder
from plurel_ray.pipeline.seeds import Seeds
from plurel_ray.store.meta import CONTEXT_RULES, DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL


@dataclass(frozen=True)
class GenerationRequest:
    """A generation run, as plain data.

    Args:
        seeds: the seeds to produce, in order.
        out: the output root (local path, `s3://…`, `gs://…`).
        config: the generator configuration.
        preprocess: also write a node store per database under `<out>/stores/`.
        embed: also embed each store's vocabulary (implies `preprocess`).
        context_rules: the stores' context rules, "reference" or "strict" (docs/contexts.md).
        text_model: the encoder that embeds them (`TextEncoder.load`'s `model`).
        num_actors: generator actors; default: the cluster's CPUs / `cpus_per_actor`.
        cpus_per_actor: logical CPUs per generator actor.
        node_resource: a custom resource that marks the nodes generator actors may use
            (cluster.yaml gives its generation nodes `gen`); None: any node.
        hub_repo: a Hugging Face dataset repo that every newly generated database is
            pushed to as it completes (in the background, retried), RelBench-3 layout.
        no_progress_timeout_s: Ray Data gives up when no operator progresses this long.
    """

    seeds: Sequence[int]
    out: str
    config: Config = field(default_factory=Config)
    preprocess: bool = False
    embed: bool = False
    context_rules: str = DEFAULT_CONTEXT_RULES
    text_model: str = DEFAULT_TEXT_MODEL
    num_actors: int | None = None
    cpus_per_actor: float = 1.0
    node_resource: str | None = None
    hub_repo: str | None = None
    no_progress_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        # Non-empty, non-negative, distinct, bounded: checked on ranges, never expanded.
        object.__setattr__(self, "seeds", Seeds.of(self.seeds))
        if self.num_actors is not None and self.num_actors < 1:
            raise DatasetError(f"num_actors must be ≥ 1, got {self.num_actors}")
        if self.context_rules not in CONTEXT_RULES:
            raise ConfigError(f"context_rules must be one of {CONTEXT_RULES}, got "
                              f"{self.context_rules!r}")  # fmt: skip


def _scratch() -> Path:
    return Path(tempfile.gettempdir()) / "plurel-ray-scratch"


def run_generation(
    request: GenerationRequest, *, use_ray: bool = True, progress: bool = True
) -> RunSummary:
    """Produce every seed of `request`; failed seeds are in the summary, not raised.

    Args:
        request: what to produce and where.
        use_ray: run on Ray Data (connecting to `RAY_ADDRESS` or starting an embedded
            local Ray); False runs the same per-seed work in this process.
        progress: show progress bars.

    Raises:
        DatasetError: the output is not writable or another run is writing to it
            (both checked before any work starts), or this run lost its lease.
    """
    root = OutputRoot(request.out)
    root.check_writable()
    with OutputLease(root) as lease:
        for notice in lease.notices:
            print(f"note: {notice}", file=sys.stderr)
        sink = IndexSink(root, lease.run_id)
        uploader = None
        if request.hub_repo is not None:
            from plurel_ray.hub.uploader import HubUploader

            uploader = HubUploader(request.hub_repo, push=partial(_push_database, root=root))
        start = time.perf_counter()
        if use_ray:  # actors run elsewhere: they get the root as an absolute path or URI
            rows = _ray_rows(request, root.location, lease.run_id, progress)
        else:
            rows = _local_rows(request, root, lease.run_id, progress)
        for batch in rows:
            lease.raise_if_lost()
            sink.add(batch)
            for row in batch:
                if uploader is not None and row["status"] == STATUS_GENERATED:
                    uploader.submit(row["db_name"])
        index_path = sink.publish()
        hub_failures = 0
        if uploader is not None:
            uploader.close()
            hub_failures = len(uploader.failures)
    return RunSummary.of(sink, time.perf_counter() - start, index_path, hub_failures)


def _push_database(name, repo_id: str, *, root: OutputRoot, **options) -> str:
    """Push the published database `name` (fetched to local disk when the root is remote)."""
    from plurel_ray.hub.push import push_dataset_folder

    folder = root.fetch(str(name), _scratch())
    try:
        return push_dataset_folder(folder, repo_id, path_in_repo=str(name), **options)
    finally:
        if not root.is_local:
            shutil.rmtree(folder, ignore_errors=True)


def _local_rows(
    request: GenerationRequest, root: OutputRoot, run_id: str, progress: bool
) -> Iterator[list[dict]]:
    from tqdm import tqdm

    worker = SeedWorker(request.config, root, preprocess=request.preprocess, run_id=run_id,
                        context_rules=request.context_rules)  # fmt: skip
    embedder = StoreEmbedder(root, text_model=request.text_model) if request.embed else None
    for seed in tqdm(request.seeds, desc="databases", unit="db", file=sys.stderr,
                     disable=None if progress else True):  # fmt: skip
        row = worker.run(int(seed))
        if embedder is not None and row["store"] is not None:
            embedder.embed(row["db_name"])
        yield [row]


def _ray_rows(
    request: GenerationRequest, out: str, run_id: str, progress: bool
) -> Iterator[list[dict]]:
    from tqdm import tqdm

    from plurel_ray.pipeline.ray_stages import generation_dataset

    dataset = generation_dataset(request, out=out, run_id=run_id, progress=progress)
    # The same bar as in-process runs; Ray Data's own progress lines need --verbose.
    with tqdm(total=len(request.seeds), desc="databases", unit="db", file=sys.stderr,
              disable=None if progress else True) as bar:  # fmt: skip
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows = batch.to_pylist()
            bar.update(len(rows))
            yield rows
