"""One seed → one published database folder and one index row; no Ray in here.

The same `SeedWorker` runs inside the Ray Data actors and in the single-process driver,
so there is one implementation of what a seed produces.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import traceback
import uuid
from pathlib import Path

from plurel_ray.config import Config
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import is_native_panic
from plurel_ray.pipeline.lease import ensure_holder
from plurel_ray.pipeline.output import OutputRoot, database_name
from plurel_ray.store.meta import DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL, context_rules_of
from plurel_ray.synth.database import generate_database, load_schema
from plurel_ray.synth.schema import DatabaseSchema

STORES_DIR = "stores"
STORE_MARKER = "meta.json"  # a node store is complete once its meta.json is written
STORE_FILES = ("node_table.bin", "node_cells.bin", "vocab_bytes.bin")  # a few it must hold

STATUS_GENERATED = "generated"
STATUS_SKIPPED = "skipped"  # complete from an earlier run
STATUS_FAILED = "failed"


def index_row(seed: int, status: str, **fields) -> dict:
    row = {
        "db_name": database_name(seed),
        "seed": seed,
        "status": status,
        "tables": 0,
        "rows": 0,
        "cells": 0,
        "bytes": 0,
        "seconds": 0.0,
        "node": fields.pop("node", socket.gethostname()),
        "error": None,
        "store": None,
    }
    row.update(fields)
    return row


class SeedWorker:
    """Generates and publishes databases of one config under one output root.

    Args:
        config: the generator configuration (every seed shares it).
        out_uri: the output root (local path or URI), or an `OutputRoot`.
        node: how index rows name the machine that did the work.
        preprocess: also publish a node store per database under `<root>/stores/`.
        context_rules: the stores' context rules, "reference" or "strict"
            (docs/contexts.md); a complete store of the other rules fails its seed.
        run_id: the run holding the output's lease: its temporaries carry this id and
            every publish first checks that the run still holds the lease. None (a worker
            used on its own, without a lease) checks nothing.
    """

    def __init__(
        self,
        config: Config,
        out_uri: str | OutputRoot,
        node: str | None = None,
        preprocess: bool = False,
        run_id: str | None = None,
        context_rules: str = DEFAULT_CONTEXT_RULES,
        write_tasks: bool = False,
    ) -> None:
        self.config = config
        self.write_tasks = write_tasks
        self.root = out_uri if isinstance(out_uri, OutputRoot) else OutputRoot(out_uri)
        self.node = node or socket.gethostname()
        self.preprocess = preprocess
        self.context_rules = context_rules
        self.leased = run_id is not None
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.config_hash = config.content_hash()
        # An SQL schema is parsed once per worker; random schemas are drawn per seed.
        self.schema: DatabaseSchema | None = (
            load_schema(config, 0) if config.schema_file is not None else None
        )
        self.scratch = Path(tempfile.gettempdir()) / f"plurel-ray-{os.getpid()}"

    def run(self, seed: int) -> dict:
        """Produce the database of `seed` unless it is already complete; never raises for
        a failing seed — the error goes into the returned index row."""
        name = database_name(seed)
        start = time.perf_counter()
        try:
            info = self.root.read_info(name)
            if info is not None:
                store = self._ensure_store(name, None)
                return self._skipped(seed, info, time.perf_counter() - start, store)
            staging = self.root.staging_dir(name, self.scratch, self.run_id)
            try:
                sizes = self.build(seed, staging)
                store = self._ensure_store(name, staging)
                self.ensure_lease()
                self.root.publish(staging, name)
            finally:  # published: moved away; cut short: no temporary stays behind
                shutil.rmtree(staging, ignore_errors=True)
            return index_row(seed, STATUS_GENERATED, **sizes, node=self.node, store=store,
                             context_rules=self.context_rules if store else None,
                             bytes=self.root.folder_bytes(name),
                             seconds=time.perf_counter() - start)  # fmt: skip
        except BaseException as err:  # a failing seed is data for the index, not a crash
            return self.failed(seed, err, time.perf_counter() - start)

    def failed(self, seed: int, err: BaseException, seconds: float) -> dict:
        """The index row of a seed that raised `err` (re-raised unless an error: Ctrl-C)."""
        if not isinstance(err, Exception) and not is_native_panic(err):
            raise err  # KeyboardInterrupt, SystemExit
        last = traceback.format_exception_only(err)[-1].strip()
        return index_row(seed, STATUS_FAILED, seconds=seconds, node=self.node, error=last)

    def build(self, seed: int, folder: Path) -> dict:
        """Generate the database of `seed` and write it as a dataset folder at `folder`
        (local, not yet existing); returns its sizes as index row fields."""
        db = generate_database(seed, self.config, schema=self.schema)
        write_dataset(db, folder, self.config, name=database_name(seed),
                      write_tasks=self.write_tasks)  # fmt: skip
        return {
            "tables": len(db.tables),
            "rows": sum(len(df) for df in db.tables.values()),
            "cells": db.num_cells,
        }

    def build_store(self, dataset: Path, name: str, folder: Path) -> Path:
        """Preprocess the local dataset folder `dataset` into the node store
        `<folder>/<name>` (`folder` is created); returns the store."""
        from plurel_ray.store.preprocessing import preprocess

        folder.mkdir(parents=True)
        return preprocess(dataset, folder, name=name, context_rules=self.context_rules)

    def _ensure_store(self, name: str, local_dataset: Path | None) -> str | None:
        """Publish the node store of database `name` unless it is complete already;
        returns its path under the root (None without `preprocess`).

        Args:
            name: the database folder name.
            local_dataset: a local copy of the database, or None to fetch the published one.
        """
        if not self.preprocess:
            return None
        store_name = f"{STORES_DIR}/{name}"
        if self.root.is_complete(store_name, STORE_MARKER):
            self._check_context_rules(store_name)
            return self.root.join(store_name)
        dataset = local_dataset or self.root.fetch(name, self.scratch)
        staging = self.root.staging_dir(store_name, self.scratch, self.run_id)
        try:
            written = self.build_store(dataset, name, staging)
            self.ensure_lease()
            self.root.publish(written, store_name, marker=STORE_MARKER, required=STORE_FILES)
        finally:  # a failed seed leaves no temporary folder in the output
            shutil.rmtree(staging, ignore_errors=True)
        if local_dataset is None and not self.root.is_local:
            shutil.rmtree(dataset, ignore_errors=True)
        return self.root.join(store_name)

    def _check_context_rules(self, store_name: str) -> None:
        """Raise unless the complete store `store_name` has this run's context rules: a
        rerun under the other setting must not pass off the old stores as its own."""
        with self.root.fs.open_input_stream(self.root.join(store_name, STORE_MARKER)) as src:
            found = context_rules_of(json.loads(src.read()))
        if found != self.context_rules:
            raise ValueError(
                f"{store_name} exists under context rules {found!r}, not this run's "
                f"{self.context_rules!r}; write to another --out, or pass --context-rules {found}"
            )

    def ensure_lease(self) -> None:
        """Raise unless this worker's run still holds the output (a run paused past the
        lease timeout and taken over must not publish over the new holder's work)."""
        if self.leased:
            ensure_holder(self.root, self.run_id)

    def _skipped(self, seed: int, info: dict, seconds: float, store: str | None) -> dict:
        if info.get("config_hash") != self.config_hash:
            raise ValueError(
                f"{database_name(seed)} exists with config {str(info.get('config_hash'))[:12]}, "
                f"not this run's {self.config_hash[:12]}; write to another --out"
            )
        rows = info.get("rows", {})
        return index_row(
            seed,
            STATUS_SKIPPED,
            tables=len(rows),
            rows=sum(rows.values()),
            cells=info.get("num_cells", 0),
            bytes=self.root.folder_bytes(database_name(seed)),
            seconds=seconds,
            node=self.node,
            store=store,
            context_rules=self.context_rules if store else None,
        )


class StoreEmbedder:
    """Embeds the vocabulary of published node stores, fetching remote ones to local disk.

    Holds the text encoder (loaded once) and a vocabulary cache on local disk
    (`PLUREL_RAY_CACHE_DIR`, else under the temp dir) shared by every process on the
    machine, so strings common to many databases are encoded once per machine.

    Args:
        out_uri: the output root the stores were published under, or an `OutputRoot`.
        device: where the encoder computes: "auto" (the GPU if torch sees one), "cpu",
            "cuda".
        text_model: the encoder, as `TextEncoder.load` takes it (a local folder must be
            on every node; a Hub id is downloaded once per node).
    """

    def __init__(
        self, out_uri: str | OutputRoot, device: str = "auto", text_model: str = DEFAULT_TEXT_MODEL
    ) -> None:
        from plurel_ray.store.embedding import CACHE_DIR_ENV
        from plurel_ray.store.encoder import TextEncoder

        self.root = out_uri if isinstance(out_uri, OutputRoot) else OutputRoot(out_uri)
        self.encoder = TextEncoder.load(text_model, device=device)
        self.scratch = Path(tempfile.gettempdir()) / f"plurel-ray-{os.getpid()}"
        self.cache_dir = os.environ.get(CACHE_DIR_ENV) or str(
            Path(tempfile.gettempdir()) / "plurel-ray-embed-cache"
        )

    def embed(self, db_name: str) -> None:
        """Embed the store of database `db_name` (skipped when already embedded)."""
        from plurel_ray.store.embedding import embed

        name = f"{STORES_DIR}/{db_name}"
        local = self.root.fetch(name, self.scratch)
        embed([local], model=self.encoder, cache_dir=self.cache_dir, progress=False)
        if not self.root.is_local:
            # meta.json last: it names the embedding, so readers see it only when complete.
            self.root.upload(local, name, ["text_emb.bin", "meta.json"])
            shutil.rmtree(local, ignore_errors=True)
