"""The packed layout: a run's databases (and node stores) in shards, not folders.

    <out>/shards/<shard id>.tar    whole database folders, then their stores (--preprocess)
    <out>/shards/<shard id>.json   the shard's manifest: every folder's span and sha256
    <out>/_index/…, _index.parquet one row per database, naming its shard and span

A shard is made by one `ShardWorker` from a list of seeds: each database is generated
and written as a folder on local disk, preprocessed there when asked, appended to the
shard's tar file and deleted, so local disk holds one shard and one database at a time.
The tar is published first, its manifest second; the driver then writes the shard's
index rows (one part), which is what makes the databases count as done. A shard that a
kill left without index rows is an orphan: `remove_orphans` deletes it when the next run
takes the lease, and `plurel-ray runs verify` names it. No Ray in here.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow.fs as pafs

from plurel_ray.dataset.shards import ShardManifest, ShardWriter
from plurel_ray.pipeline.output import SHARDS_DIR, OutputRoot, database_name
from plurel_ray.pipeline.seed_worker import STATUS_GENERATED, STORES_DIR, SeedWorker, index_row

# Databases per shard unless a run asks otherwise: a default-config database is ~0.7 MB
# (its node store about as much again), so a full shard is ~350-700 MB.
DBS_PER_SHARD = 512
# A run cuts its seeds into at least this many shards per actor, so that every actor
# stays busy to the end and progress moves in steps of at most 1/(2 × actors).
SHARDS_PER_ACTOR = 2
HUB_DBS_PER_SHARD = 256  # 10^6 databases: at most ~3,900 shards, ~7,800 files
# The driver spends ~7 ms of CPU per shard it receives (benchmarks/bench_scale.py with
# 4 databases per shard), so a run of more shards than this is bound by its driver, not
# its actors: 10^6 databases on 16,000 CPUs would be 31,250 shards, ~220 s of driver CPU
# against ~40 s of generation (README, Performance).
MAX_SHARDS = 10_000


def shard_sizes(
    num_seeds: int, actors: int, dbs_per_shard: int | None, *, for_hub: bool = False
) -> int:
    """Databases per shard of a run: as asked, else `DBS_PER_SHARD`, fewer when the run
    is small enough that the actors would otherwise wait on one shard — but never more
    than `MAX_SHARDS` shards, and, for a run pushed to the Hub, at least
    `HUB_DBS_PER_SHARD` (a repo should hold < 10,000 files per folder)."""
    if dbs_per_shard is not None:
        return dbs_per_shard
    spread = max(-(-num_seeds // (actors * SHARDS_PER_ACTOR)), -(-num_seeds // MAX_SHARDS))
    if for_hub:
        spread = max(spread, HUB_DBS_PER_SHARD)
    return max(1, min(DBS_PER_SHARD, spread))


def shard_names(root: OutputRoot) -> list[str]:
    """The shard files (`<id>.tar`) under `<root>/shards/`, sorted."""
    selector = pafs.FileSelector(root.join(SHARDS_DIR), allow_not_found=True)
    return sorted(
        info.base_name for info in root.fs.get_file_info(selector)
        if info.type == pafs.FileType.File and info.base_name.endswith(".tar")
    )  # fmt: skip


def manifest_name(shard: str) -> str:
    """`shards/<id>.json` of shard file `<id>.tar`."""
    return f"{SHARDS_DIR}/{shard.removesuffix('.tar')}.json"


def read_manifest(root: OutputRoot, shard: str) -> ShardManifest:
    """The manifest of shard file `shard` (`<id>.tar`) under `root`.

    Raises:
        DatasetError: missing or unreadable.
    """
    from plurel_ray.errors import DatasetError
    from plurel_ray.limits import DOCUMENT_BYTES

    path = root.join(manifest_name(shard))
    limit = DOCUMENT_BYTES.value  # ~5,000 members; a shard of 512 databases has ≤ 1,024
    try:
        with root.fs.open_input_stream(path) as src:
            data = src.read(limit + 1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; its shard cannot be read") from None
    if len(data) > limit:
        raise DatasetError(f"{path}: larger than {limit:,} bytes; not a shard manifest"
                           + DOCUMENT_BYTES.how_to_raise())  # fmt: skip
    return ShardManifest.from_json(data, path)


def remove_orphans(root: OutputRoot, indexed_shards: set[str]) -> int:
    """Delete shards (and manifests) no index row names: a run killed between publishing
    a shard and indexing it left them; their seeds are not done and are made again. Only
    the lease holder may call this. Returns how many shards went."""
    orphans = [s for s in shard_names(root) if f"{SHARDS_DIR}/{s}" not in indexed_shards]
    for shard in orphans:
        for name in (f"{SHARDS_DIR}/{shard}", manifest_name(shard)):
            if root.fs.get_file_info(root.join(name)).type == pafs.FileType.File:
                root.fs.delete_file(root.join(name))
    return len(orphans)


class ShardWorker:
    """Makes shards of one run from lists of seeds.

    Args:
        worker: the per-seed worker (config, root, preprocessing, lease) it builds with.
    """

    def __init__(self, worker: SeedWorker) -> None:
        self.worker = worker
        self.root = worker.root

    def run(self, shard_id: str, seeds: list[int]) -> list[dict]:
        """Generate `seeds` into the shard `shards/<shard_id>.tar` and publish it with its
        manifest; returns one index row per seed (a failing seed's row has its error and
        no shard). Never raises for failing seeds; a failing shard fails all its seeds."""
        start = time.perf_counter()
        staging = None
        try:
            # An actor of a killed driver may live on for seconds: once another run took
            # the output over, it starts nothing more there.
            self.worker.ensure_lease()
            staging = self.root.staging_dir(f"{SHARDS_DIR}/{shard_id}", self.worker.scratch,
                                            self.worker.run_id)  # fmt: skip
            staging.mkdir(parents=True)
            rows = self._build(staging, shard_id, seeds)
        except BaseException as err:  # the shard file itself failed (disk full, lost lease)
            each = (time.perf_counter() - start) / len(seeds)
            return [self.worker.failed(seed, err, each) for seed in seeds]
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return rows

    def _build(self, staging: Path, shard_id: str, seeds: list[int]) -> list[dict]:
        writer = ShardWriter(staging / f"{shard_id}.tar")
        try:
            rows = self._add_all(writer, staging, seeds)
        except BaseException:
            writer.discard()
            raise
        return self._publish(writer, shard_id, rows)

    def _add_all(self, writer: ShardWriter, staging: Path, seeds: list[int]) -> list[dict]:
        """Build each seed's database (and store) and append it to `writer`; its rows."""
        rows = []
        for seed in seeds:
            start = time.perf_counter()
            name = database_name(seed)
            folder, stores = staging / name, staging / STORES_DIR
            try:
                try:
                    sizes = self.worker.build(seed, folder)
                    store = (self.worker.build_store(folder, name, stores)
                             if self.worker.preprocess else None)  # fmt: skip
                except BaseException as err:  # a failing seed is a row; the shard goes on
                    rows.append(self.worker.failed(seed, err, time.perf_counter() - start))
                    continue
                # A failing write here leaves the tar unusable: it fails the whole shard.
                writer.add_folder(folder, name, "database")
                if store is not None:
                    writer.add_folder(store, f"{STORES_DIR}/{name}", "store")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                shutil.rmtree(stores, ignore_errors=True)
            made = {"store": f"{STORES_DIR}/{name}", "context_rules": self.worker.context_rules}
            rows.append(index_row(seed, STATUS_GENERATED, **sizes, node=self.worker.node,
                                  seconds=time.perf_counter() - start,
                                  **(made if store is not None else {})))  # fmt: skip
        return rows

    def _publish(self, writer: ShardWriter, shard_id: str, rows: list[dict]) -> list[dict]:
        """Publish the shard, then its manifest; fill in the rows' spans. The time it
        takes is shared out over the shard's databases."""
        start = time.perf_counter()
        manifest = writer.close()
        made = [row for row in rows if row["status"] == STATUS_GENERATED]
        if not made:
            return rows
        shard = f"{SHARDS_DIR}/{shard_id}.tar"
        self.worker.ensure_lease()
        self.root.publish_file(writer.path, shard)
        self.root.write_bytes(manifest_name(shard_id), manifest.to_json().encode())
        each = (time.perf_counter() - start) / len(made)
        for row in made:
            member = manifest.member(row["db_name"])
            row.update(shard=shard, offset=member.offset, length=member.length,
                       sha256=member.sha256, bytes=member.length,
                       seconds=row["seconds"] + each)  # fmt: skip
        return rows
