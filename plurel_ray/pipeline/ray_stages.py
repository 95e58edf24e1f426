"""The Ray Data side of generation: connecting to Ray, the actor pools, the Dataset."""

from __future__ import annotations

import dataclasses
import os

import pyarrow as pa
import ray
import ray.data
from ray.data import ActorPoolStrategy, DataContext

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline import quiet
from plurel_ray.pipeline.index import index_table
from plurel_ray.pipeline.seed_worker import StoreEmbedder

# The embedding stage is light (a few hundred mostly cached strings per database), so its
# one actor takes a fraction of a CPU instead of a whole one, and, on a cluster with GPUs,
# a fraction of one GPU that its torch encoder then computes on (plurel_ray/store/encoder.py);
# without GPUs it computes on the CPU. The GPU fraction keeps that GPU from a whole-GPU
# request (a training worker) until generation ends.
EMBED_CPUS = 0.25
EMBED_GPUS = 0.1
# One seed per input block keeps every actor busy until the end of a run; past this many
# blocks the per-block bookkeeping outweighs that.
MAX_BLOCKS = 100_000
# Logical CPUs of an embedded local Ray when a job does not pass them. A job run as a
# subprocess (tests, a small machine) uses it to oversubscribe: 2 training workers and
# 2 sampler actors need 3 logical CPUs however many cores there are.
NUM_CPUS_ENV = "PLUREL_RAY_NUM_CPUS"


def _num_cpus_from_env() -> int | None:
    text = os.environ.get(NUM_CPUS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{NUM_CPUS_ENV}={text!r}: expected a positive integer, or unset it")
    return int(text)


def ensure_ray(num_cpus: int | None = None, *, verbose: bool | None = None) -> None:
    """Connect to the cluster in `RAY_ADDRESS` (what `ray job submit` sets), or start an
    embedded local Ray with `num_cpus` logical CPUs (default: $PLUREL_RAY_NUM_CPUS if
    set, else all of this machine's cores). Every command starts Ray here, so Ray is
    quiet everywhere unless verbose (`plurel_ray.pipeline.quiet`).

    Args:
        num_cpus: logical CPUs of an embedded Ray.
        verbose: show Ray's own lines (its loggers, the workers' relayed output);
            default: whether --verbose was given (`quiet.verbose()`).

    Raises:
        ConfigError: PLUREL_RAY_NUM_CPUS is set but not a positive integer.
    """
    if ray.is_initialized():
        return
    verbose = quiet.verbose() if verbose is None else verbose
    quiet.set_console_logging(verbose)
    with quiet.quiet_start(verbose):
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=verbose)
        else:
            cpus = num_cpus if num_cpus is not None else _num_cpus_from_env()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=verbose)


class GeneratorActor:
    """Holds one `SeedWorker`; a Ray Data actor-pool UDF from seeds to index rows (folders
    layout), or from shards' seed lists to their rows (packed layout).

    Args:
        request: the run's `GenerationRequest` (without its seeds: they come as rows).
        out: the output root as every node opens it.
        run_id: the run holding the output's lease.
    """

    def __init__(self, request, out: str, run_id: str) -> None:
        from plurel_ray.pipeline.generate import _worker
        from plurel_ray.pipeline.packed import ShardWorker

        node = ray.get_runtime_context().get_node_id()
        self.worker = _worker(request, out, run_id, node=node)
        self.shards = ShardWorker(self.worker)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if "shard" in batch.column_names:
            rows = []
            for shard_id, seeds in zip(batch.column("shard").to_pylist(),
                                       batch.column("seeds").to_pylist(), strict=True):  # fmt: skip
                rows += self.shards.run(shard_id, seeds)
            return index_table(rows)
        seeds = batch.column("seed").to_pylist()
        return index_table([self.worker.run(int(seed)) for seed in seeds])


class EmbedActor:
    """A Ray Data actor-pool UDF around one `StoreEmbedder` (a fraction of a CPU, and of a
    GPU where the cluster has them).

    Args:
        out: the output root.
        device: the encoder's, "cuda" when the actor was given a GPU, else "cpu". Never
            "auto": Ray leaves every GPU of the node visible to an actor that reserved none.
        text_model: the encoder (`TextEncoder.load`'s `model`).
    """

    def __init__(self, out: str, device: str, text_model: str) -> None:
        self.embedder = StoreEmbedder(out, device=device, text_model=text_model)
        self.text_model = text_model

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            if row["store"] is not None:
                self.embedder.embed(row["db_name"])
                row["embedded"] = self.text_model
        return index_table(rows)


def _pool_size(request, units: int, reserved_cpus: float) -> int:
    """Generator actors: as asked, else as many as the cluster's CPUs fit; never more
    than work units, seeds or shards (the extra ones would idle, and Ray Data warns)."""
    if request.num_actors is not None:
        wanted = request.num_actors
    else:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        wanted = max(1, int((cpus - reserved_cpus) // request.cpus_per_actor))
    return min(wanted, units)


def generation_dataset(
    request, seeds, *, out: str, run_id: str, progress: bool = True
) -> ray.data.Dataset:
    """The streaming Dataset of index rows for `seeds` of `request` (a `GenerationRequest`).

    Args:
        request: what to produce.
        seeds: the seeds to produce (`Seeds`: those not done yet).
        out: the output root as every node opens it (an absolute path or a URI).
        run_id: the run holding the output's lease.
        progress: show progress bars.
    """
    from plurel_ray.pipeline.generate import shard_plan
    from plurel_ray.pipeline.seeds import Seeds

    ensure_ray()
    context = DataContext.get_current()
    context.execution_no_progress_timeout_s = request.no_progress_timeout_s
    # Ours is the driver's "databases" bar; Ray Data's own lines only with --verbose.
    context.enable_progress_bars = progress and quiet.verbose()
    embed_cpus = EMBED_CPUS if request.embed else 0.0
    embed_gpus = EMBED_GPUS if ray.cluster_resources().get("GPU", 0.0) > 0 else 0.0
    actors = _pool_size(request, len(seeds), embed_cpus)
    if request.layout == "packed":
        items = [{"shard": shard, "seeds": chunk}
                 for shard, chunk in shard_plan(request, seeds, run_id, actors)]  # fmt: skip
        actors = min(actors, len(items))
    else:
        items = [{"seed": int(s)} for s in seeds]
    # The actors get the run's settings; the seeds come as rows.
    settings = dataclasses.replace(request, seeds=Seeds.of(range(1)))
    # from_items needs no read tasks, so the actor pool can take every CPU without
    # starving a reader (docs/operations.md).
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    dataset = dataset.map_batches(
        GeneratorActor,
        fn_constructor_args=(settings, out, run_id),
        batch_size=1,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=request.cpus_per_actor,
        # A sliver of the marker resource pins actors to the generation node type.
        resources={request.node_resource: 0.001} if request.node_resource else None,
    )
    if request.embed:
        dataset = dataset.map_batches(
            EmbedActor,
            fn_constructor_args=(out, "cuda" if embed_gpus else "cpu", request.text_model),
            batch_size=8,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=1),
            num_cpus=embed_cpus,
            num_gpus=embed_gpus,
        )
    return dataset
