"""`SyntheticDataset`: one generated database as a RelBench `Dataset`.

    ds = SyntheticDataset(seed=0, config=Config())
    db = ds.get_db()          # relbench Database, rows up to test_timestamp

The validation and test timestamps come from the timeline alone, so they are known
without generating anything. The generated database is kept on the instance — RelBench's
`make_db` is meant to be pure and uncached, but generating twice costs seconds, so
`make_db` builds fresh `Table`s (with copied frames) from the one kept `GeneratedDatabase`.

With `config.cache_dir` set, the database is also written once as a dataset folder under
`<cache_dir>/<config_hash[:12]>[-s<schema_sha256[:12]>]-g<GENERATOR_VERSION>/seed-<seed>`
and later instances, in any process, read it from there instead of generating.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from relbench.base import Database, Dataset, Table

from plurel_ray.config import Config
from plurel_ray.dataset.relbench_io import (
    INFO_FILE,
    read_dataset_info,
    read_tables,
    schema_file_hash,
    write_dataset,
)
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.synth.database import (
    GENERATOR_VERSION,
    GeneratedDatabase,
    generate_database,
    load_schema,
    sample_timeline,
)
from plurel_ray.synth.rng import derive_rng


def cache_path(seed: int, config: Config) -> Path | None:
    """Where the database of `seed` under `config` is cached, or None without a cache_dir.

    The key holds the config hash and the generator version, and for an SQL schema the
    hash of the file's bytes too, so editing the DDL invalidates the cache.

    Args:
        seed: the database seed.
        config: the generator configuration.
    """
    if config.cache_dir is None:
        return None
    key = config.content_hash()[:12]
    schema_hash = schema_file_hash(config)
    if schema_hash is not None:
        key += f"-s{schema_hash[:12]}"
    return (
        Path(os.path.expanduser(config.cache_dir)) / f"{key}-g{GENERATOR_VERSION}" / f"seed-{seed}"
    )


class SyntheticDataset(Dataset):
    """The PluRel database of `seed` under `config`, as a RelBench dataset.

    Args:
        seed: a non-negative integer; the database is a pure function of it and the config.
        config: the generator configuration; default `Config()`.
    """

    def __init__(self, seed: int, config: Config | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.config = Config() if config is None else config
        timeline = sample_timeline(self.config, derive_rng(seed, "timeline"))
        self.val_timestamp: pd.Timestamp = timeline.val_timestamp
        self.test_timestamp: pd.Timestamp = timeline.test_timestamp
        self._generated: GeneratedDatabase | None = None

    def __repr__(self) -> str:
        return f"SyntheticDataset(seed={self.seed}, config={self.config.content_hash()[:12]})"

    @property
    def cache_path(self) -> Path | None:
        """This database's cache folder, or None when the config has no cache_dir."""
        return cache_path(self.seed, self.config)

    def generate(self) -> GeneratedDatabase:
        """The generated database: kept after the first call, read from the cache if there."""
        if self._generated is None:
            self._generated = self._from_cache() or self._generate_and_cache()
        return self._generated

    def make_db(self) -> Database:
        """A fresh RelBench `Database` of the generated tables (frames are copies)."""
        generated = self.generate()
        return Database(
            {
                spec.name: Table(
                    df=generated.tables[spec.name].copy(),
                    fkey_col_to_pkey_table=dict(spec.fkeys),
                    pkey_col=spec.pkey,
                    time_col=spec.time_col,
                )
                for spec in generated.schema.tables
            }
        )

    def write(
        self, out_dir: str | os.PathLike, overwrite: bool = False, *, write_tasks: bool = False
    ) -> Path:
        """Write the database as a RelBench-3 dataset folder (see `write_dataset`).

        Args:
            out_dir: the folder to create.
            overwrite: replace an existing folder.
            write_tasks: also write every autocomplete task's folder (for `load_task`).
        """
        return write_dataset(self.generate(), out_dir, self.config, overwrite=overwrite,
                             write_tasks=write_tasks)  # fmt: skip

    def _from_cache(self) -> GeneratedDatabase | None:
        folder = self.cache_path
        if folder is None or not folder.exists():
            return None
        info = read_dataset_info(folder)
        expected = (self.seed, self.config.content_hash(), GENERATOR_VERSION)
        if (info.get("seed"), info.get("config_hash"), info.get("generator_version")) != expected:
            raise DatasetError(
                f"{folder}: cached database is not seed {self.seed} of this config and "
                "generator version; delete the folder to regenerate it"
            )
        return GeneratedDatabase(
            seed=self.seed,
            schema=load_schema(self.config, self.seed),
            timeline=sample_timeline(self.config, derive_rng(self.seed, "timeline")),
            tables=read_tables(folder, verify=True),
        )

    def _generate_and_cache(self) -> GeneratedDatabase:
        generated = generate_database(self.seed, self.config)
        folder = self.cache_path
        if folder is not None:
            try:
                write_dataset(generated, folder, self.config)
            except DatasetError:
                # Another process cached the same database first: keep its folder.
                if not (folder / INFO_FILE).exists():
                    raise
        return generated
