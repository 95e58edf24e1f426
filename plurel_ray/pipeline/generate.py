"""Seeds → database folders (and node stores) on Ray Data, or in this process.

    request = GenerationRequest(seeds=range(100), out="s3://bucket/run1", config=Config())
    summary = run_generation(request)              # Ray: embedded local, or RAY_ADDRESS

The Ray pipeline is one streaming Dataset: the seeds, as many small blocks, go through an
actor pool of `GeneratorActor`s (each holds its config, generator and output root; 1 CPU
by default; pool size from the cluster's CPUs). An actor generates a database, writes it
as a RelBench-3 folder in local scratch, preprocesses it there when asked (reading the
local copy beats fetching it back from object storage, and needs no second pool), and
publishes both; it returns one index row per seed. With `embed`, a second actor pool —
GPUs when the cluster has them — embeds each new store's vocabulary. In the packed layout
an actor makes a whole shard from a list of seeds instead (`packed.py`). The driver reads
the index once to leave out the seeds already done, and writes the rows it gets as index
parts while the run goes (`index.py`), so its memory does not grow with the seed count.
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

import numpy as np

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline import packed, run_record
from plurel_ray.pipeline.index import FLUSH_PACKED_S, FLUSH_S, IndexSink, done_seeds, read_all
from plurel_ray.pipeline.lease import OutputLease
from plurel_ray.pipeline.output import INDEX_FILE, OutputRoot
from plurel_ray.pipeline.run_summary import RunSummary
from plurel_ray.pipeline.seed_worker import STATUS_GENERATED, SeedWorker, StoreEmbedder
from plurel_ray.pipeline.seeds import Seeds
from plurel_ray.store.meta import CONTEXT_RULES, DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL

LAYOUTS = ("folders", "packed")


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
        hub_repo: a Hugging Face dataset repo that every newly generated database (or
            shard, packed) is pushed to as it completes (in the background, retried).
        no_progress_timeout_s: Ray Data gives up when no operator progresses this long.
        layout: "folders" (a folder per database) or "packed" (shards, docs/operations.md).
        dbs_per_shard: packed: databases per shard (default: `packed.shard_sizes`).
        write_tasks: also write each autocomplete task as a RelBench task folder.
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
    layout: str = "folders"
    dbs_per_shard: int | None = None
    write_tasks: bool = False

    def __post_init__(self) -> None:
        # Non-empty, non-negative, distinct, bounded: checked on ranges, never expanded.
        object.__setattr__(self, "seeds", Seeds.of(self.seeds))
        if self.num_actors is not None and self.num_actors < 1:
            raise DatasetError(f"num_actors must be ≥ 1, got {self.num_actors}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout == "packed" and self.embed:
            raise ConfigError("--embed does not apply to --layout packed: a packed run's "
                              "stores are embedded where a training job unpacks them")  # fmt: skip
        if self.dbs_per_shard is not None and self.dbs_per_shard < 1:
            raise DatasetError(f"dbs_per_shard must be ≥ 1, got {self.dbs_per_shard}")
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
        run_record.check_or_write(root, request)
        flush_s = FLUSH_PACKED_S if request.layout == "packed" else FLUSH_S
        sink = IndexSink(root, lease.run_id, flush_s)
        todo = _seeds_to_do(request, root, sink.notices)
        uploader = None
        if request.hub_repo is not None:
            from plurel_ray.hub.uploader import HubUploader

            push = _push_shard if request.layout == "packed" else _push_database
            uploader = HubUploader(request.hub_repo, push=partial(push, root=root))
        start = time.perf_counter()
        if todo is None:
            rows: Iterator[list[dict]] = iter(())
        elif use_ray:  # actors run elsewhere: they get the root as an absolute path or URI
            rows = _ray_rows(request, todo, root.location, lease.run_id, progress)
        else:
            rows = _local_rows(request, todo, root, lease.run_id, progress)
        try:
            for batch in rows:
                lease.raise_if_lost()
                sink.add(batch)
                if uploader is not None:
                    for pushed in _new_pushes(batch, request.layout):
                        uploader.submit(pushed)
        except BaseException:
            if lease.lost is None:  # Ctrl-C or an error: what is done is indexed, not redone
                sink.flush()
            raise
        index_path = sink.publish()
        if uploader is not None and request.layout == "packed":
            uploader.submit(INDEX_FILE)  # after its shards: the index, record and card
        hub_failures = 0
        if uploader is not None:
            uploader.close()
            hub_failures = len(uploader.failures)
    already = len(request.seeds) - (0 if todo is None else len(todo))
    return RunSummary.of(sink, time.perf_counter() - start, index_path,
                         already_done=already, hub_failures=hub_failures)  # fmt: skip


def _seeds_to_do(request: GenerationRequest, root: OutputRoot, notices: list[str]) -> Seeds | None:
    """The seeds of `request` that the index does not list as done (None: none), read
    once; in the packed layout, shards no index row names are removed first."""
    index = read_all(root, notices)
    if request.layout == "packed":
        shards = set(index["shard"].drop_null().to_pylist())
        removed = packed.remove_orphans(root, shards)
        if removed:
            notices.append(f"removed {removed} shard(s) of killed runs that were never indexed")
    embedded = request.text_model if request.embed else None
    rules = request.context_rules if request.preprocess else None
    done = done_seeds(index, store=rules, embedded=embedded)
    del index
    ranges = []
    for seeds in request.seeds.ranges:
        lo, hi = np.searchsorted(done, [seeds.start, seeds.stop])
        inner = (np.repeat(done[lo:hi], 2) + np.tile([0, 1], hi - lo)).tolist()
        cuts = [seeds.start, *inner, seeds.stop]
        ranges += [range(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=True) if b > a]
    return Seeds(ranges) if ranges else None


def _new_pushes(rows: list[dict], layout: str) -> list[str]:
    """What to push to the Hub for these rows: new database folders, or new shards."""
    made = [row for row in rows if row["status"] == STATUS_GENERATED]
    if layout == "packed":
        return sorted({row["shard"] for row in made})
    return [row["db_name"] for row in made]


def _push_database(name, repo_id: str, *, root: OutputRoot, **options) -> str:
    """Push the published database `name` (fetched to local disk when the root is remote)."""
    from plurel_ray.hub.push import push_dataset_folder

    folder = root.fetch(str(name), _scratch())
    try:
        return push_dataset_folder(folder, repo_id, path_in_repo=str(name), **options)
    finally:
        if not root.is_local:
            shutil.rmtree(folder, ignore_errors=True)


def _push_shard(shard, repo_id: str, *, root: OutputRoot, **options) -> str:
    """Push the published shard `shard` (`shards/<id>.tar`) and its manifest; or, given
    the index (`_index.parquet`) at the end of the run, the index, record and card."""
    from plurel_ray.hub.push import push_run_index, push_shard

    if str(shard) == INDEX_FILE:
        return push_run_index(root, repo_id, **options)
    return push_shard(root, str(shard), repo_id, **options)


def _worker(request: GenerationRequest, root: OutputRoot | str, run_id: str, node=None):
    return SeedWorker(request.config, root, node=node, preprocess=request.preprocess,
                      run_id=run_id, context_rules=request.context_rules,
                      write_tasks=request.write_tasks)  # fmt: skip


def shard_plan(request: GenerationRequest, seeds: Seeds, run_id: str, actors: int):
    """(shard id, seeds) of every shard of a packed run, in seed order."""
    size = packed.shard_sizes(len(seeds), actors, request.dbs_per_shard,
                              for_hub=request.hub_repo is not None)  # fmt: skip
    chunk: list[int] = []
    number = 0
    for seed in seeds:
        chunk.append(int(seed))
        if len(chunk) == size:
            yield f"{run_id}-{number:06d}", chunk
            chunk, number = [], number + 1
    if chunk:
        yield f"{run_id}-{number:06d}", chunk


def _local_rows(
    request: GenerationRequest, seeds: Seeds, root: OutputRoot, run_id: str, progress: bool
) -> Iterator[list[dict]]:
    from tqdm import tqdm

    worker = _worker(request, root, run_id)
    embedder = StoreEmbedder(root, text_model=request.text_model) if request.embed else None
    with tqdm(total=len(seeds), desc="databases", unit="db", file=sys.stderr,
              disable=None if progress else True) as bar:  # fmt: skip
        if request.layout == "packed":
            shards = packed.ShardWorker(worker)
            for shard_id, chunk in shard_plan(request, seeds, run_id, actors=1):
                rows = shards.run(shard_id, chunk)
                bar.update(len(rows))
                yield rows
            return
        for seed in seeds:
            row = worker.run(int(seed))
            if embedder is not None and row["store"] is not None:
                embedder.embed(row["db_name"])
                row["embedded"] = request.text_model
            bar.update(1)
            yield [row]


def _ray_rows(
    request: GenerationRequest, seeds: Seeds, out: str, run_id: str, progress: bool
) -> Iterator[list[dict]]:
    from tqdm import tqdm

    from plurel_ray.pipeline.ray_stages import generation_dataset

    dataset = generation_dataset(request, seeds, out=out, run_id=run_id, progress=progress)
    # The same bar as in-process runs; Ray Data's own progress lines need --verbose.
    with tqdm(total=len(seeds), desc="databases", unit="db", file=sys.stderr,
              disable=None if progress else True) as bar:  # fmt: skip
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows = batch.to_pylist()
            bar.update(len(rows))
            yield rows
