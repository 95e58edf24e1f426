"""Write and read RelBench-3 dataset folders of generated databases.

A folder written by `write_dataset` is loadable with `relbench.load_dataset(path)`::

    <out_dir>/
        manifest.yaml               tables, keys, time columns, val/test timestamps
        db/<table>.parquet          one file per table (zstd, no pandas metadata)
        plurel.json                 seed, config, versions, row counts, content hash, and
                                    the autocomplete tasks: one per feature column, with
                                    the rule that splits their items
        README.md                   a short dataset card
        tasks/<table>-<column>/     only with write_tasks=True: each task as a RelBench
            manifest.yaml           task folder, for `load_task(name)`
            {train,val,test}.parquet

By default the tasks are derived, not written: the store (`plurel_ray.store.preprocess`)
builds the same items from plurel.json and the tables, and this module imports no
relbench (which pulls in scikit-learn) unless task folders are written.

The folder is built next to `out_dir` and renamed into place, so `out_dir` is either
absent or complete — never half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from plurel_ray import __version__
from plurel_ray.config import Config
from plurel_ray.dataset.autocomplete import split_rule, table_tasks, task_descriptions
from plurel_ray.errors import DatasetError, SchemaError
from plurel_ray.names import check_name, path_inside
from plurel_ray.synth.database import GENERATOR_VERSION, GeneratedDatabase
from plurel_ray.util.atomic_dir import move_into_place, remove, temporary_sibling

INFO_FILE = "plurel.json"
# Bump when the folder layout or a plurel.json field changes meaning. 2: tasks/ only with
# write_tasks; plurel.json describes the autocomplete tasks (version 1 always wrote tasks/).
FORMAT_VERSION = 2
RELBENCH_MANIFEST_VERSION = 1  # DatasetManifest's, whose YAML we write without relbench
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml's emitter: the same bytes as pyyaml's for the manifest, ~20x faster (~15 ms saved).
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_HASH_CHUNK = 1 << 20  # bytes read at a time when verifying a folder's content hash
CONTENT_HASH_COVERS = (
    "sha256 over db/<table>.parquet, tables in sorted name order, each fed as the UTF-8 "
    "bytes of '<table>\\n<byte length>\\n' followed by the file's bytes; manifests, tasks "
    "and labels are derived from these and not covered. Parquet bytes depend on the "
    "pyarrow version (its created_by string and encoders)."
)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """The frame as Parquet bytes that depend only on its data and the pyarrow version.

    No pandas index and no pandas schema metadata (which would embed the pandas
    version); the dtypes still round-trip through Arrow's own types.
    """
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=3)
    return sink.getvalue().to_pybytes()


def content_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 hex of table name -> Parquet bytes, as `CONTENT_HASH_COVERS` says."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\n{len(files[name])}\n".encode())
        h.update(files[name])
    return h.hexdigest()


def _iso(ts: pd.Timestamp) -> str:
    """`2002-05-25` for a naive midnight, else the full ISO form (keeping any timezone)."""
    return ts.date().isoformat() if ts.tzinfo is None and ts == ts.normalize() else ts.isoformat()


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def schema_file_hash(config: Config) -> str | None:
    """SHA-256 hex of the SQL schema file's bytes, or None when the schema is random.

    Args:
        config: the config whose `schema_file` to hash.
    """
    if config.schema_file is None:
        return None
    path = Path(config.schema_file).expanduser()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise SchemaError(f"cannot read SQL schema file {str(path)!r}: {err}") from err


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _dataset_manifest(db: GeneratedDatabase, name: str) -> str:
    """manifest.yaml as `relbench.manifest.DatasetManifest.save` writes it, byte for byte,
    without importing relbench."""
    manifest = {
        "name": name,
        "manifest_version": RELBENCH_MANIFEST_VERSION,
        "description": f"Synthetic relational database generated by plurel-ray (seed {db.seed}).",
        "val_timestamp": _iso(db.timeline.val_timestamp),
        "test_timestamp": _iso(db.timeline.test_timestamp),
        "tables": {
            s.name: {"pkey": s.pkey, "time_col": s.time_col, "fkeys": dict(s.fkeys)}
            for s in db.schema.tables
        },
    }
    return yaml.dump(manifest, Dumper=_YAML_DUMPER, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=4096)  # fmt: skip


def _checked_tasks(db: GeneratedDatabase) -> list[dict]:
    """The task descriptions, each name checked as a file name and unique."""
    tasks = task_descriptions(db.schema.tables, db.tables)
    seen = set()
    for task in tasks:
        task_name = check_name("task", task["name"], DatasetError)
        if task_name in seen:  # `<table>-<column>` of two different pairs can coincide
            raise DatasetError(
                f"two tasks are named {task_name!r} (table-column); rename a "
                "table or column so that their names differ"
            )
        seen.add(task_name)
    return tasks


def _info(db: GeneratedDatabase, config: Config, name: str, digest: str, tasks: list,
          write_tasks: bool) -> dict:  # fmt: skip
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "seed": db.seed,
        "generator_version": GENERATOR_VERSION,
        "config_hash": config.content_hash(),
        "config": config.to_dict(),
        "schema_source": "random" if config.schema_file is None else config.schema_file,
        "schema_sha256": schema_file_hash(config),
        "versions": {
            "plurel_ray": __version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
            "relbench": _package_version("relbench"),
        },
        "timeline": {
            "min_timestamp": _iso(db.timeline.min_timestamp),
            "max_timestamp": _iso(db.timeline.max_timestamp),
            "val_timestamp": _iso(db.timeline.val_timestamp),
            "test_timestamp": _iso(db.timeline.test_timestamp),
        },
        "rows": {t: len(df) for t, df in db.tables.items()},
        "num_cells": db.num_cells,
        "content_hash": digest,
        "content_hash_covers": CONTENT_HASH_COVERS,
        "task_folders": write_tasks,
        "autocomplete_tasks": tasks,
        "autocomplete_split": split_rule(config.val_split, config.test_split),
    }


def _readme(db: GeneratedDatabase, info: dict) -> str:
    lines = [
        f"# {info['name']}",
        "",
        f"A synthetic relational database generated by plurel-ray from the PluRel prior "
        f"(seed {db.seed}, config `{info['config_hash'][:12]}`, generator "
        f"v{GENERATOR_VERSION}). Load it with `relbench.load_dataset(path)`.",
        "",
        "| table | rows | columns | time column |",
        "|---|---|---|---|",
    ]
    for spec in db.schema.tables:
        df = db.tables[spec.name]
        lines.append(f"| {spec.name} | {len(df)} | {df.shape[1]} | {spec.time_col or '-'} |")
    num_tasks = len(info["autocomplete_tasks"])
    if info["task_folders"]:
        how = "written as RelBench task folders under `tasks/` (`load_task(name)`)"
    else:
        how = (f"derived, not written: `{INFO_FILE}` lists them and their split rule, and "
               "`plurel-ray preprocess` builds their items from the tables; generate with "
               "`--write-tasks` for RelBench task folders")  # fmt: skip
    lines += ["", f"{num_tasks} autocomplete tasks (one per feature column), {how}. "
              f"{db.num_cells} cells. Provenance: `{INFO_FILE}`.", ""]  # fmt: skip
    return "\n".join(lines)


def _write_task_folders(db: GeneratedDatabase, root: Path, config: Config) -> None:
    """tasks/<table>-<column>/ of every feature column (names checked by `_checked_tasks`)."""
    for spec in db.schema.tables:
        tasks = table_tasks(
            spec, db.tables[spec.name], db.timeline.val_timestamp, db.timeline.test_timestamp,
            config.val_split, config.test_split,
        )  # fmt: skip
        for task in tasks:
            task_dir = path_inside(root, "tasks", task.manifest.name)
            task.manifest.save(task_dir / "manifest.yaml")
            for split, labels in task.labels.items():
                _write_bytes(task_dir / f"{split}.parquet", parquet_bytes(labels))


def _write_contents(db: GeneratedDatabase, root: Path, config: Config, name: str,
                    write_tasks: bool) -> None:  # fmt: skip
    """Everything `write_dataset` writes, into `root` (which must not exist)."""
    for table in db.tables:  # names from users' schemas become file names
        check_name("table", table, DatasetError)
    tasks = _checked_tasks(db)
    root.mkdir()
    files = {t: parquet_bytes(df) for t, df in db.tables.items()}
    for table, data in files.items():
        _write_bytes(path_inside(root, "db", f"{table}.parquet"), data)
    (root / "manifest.yaml").write_text(_dataset_manifest(db, name))
    if write_tasks:
        _write_task_folders(db, root, config)
    info = _info(db, config, name, content_hash(files), tasks, write_tasks)
    (root / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (root / "README.md").write_text(_readme(db, info))


def _existing_dataset(
    out: Path, db: GeneratedDatabase, config: Config, name: str, write_tasks: bool
) -> Path:
    """`out` when it already holds `db` as `write_dataset` writes it, else a DatasetError.

    A folder of the same database written with the other `write_tasks` is another
    dataset: accepting it would leave a caller who asked for task folders without them
    (or publish folders a run asked not to write), so the caller must choose --overwrite.
    """
    replace = "pass overwrite=True (--overwrite) to replace it"
    try:
        info = read_dataset_info(out)
    except DatasetError as err:
        raise DatasetError(
            f"{out} already exists and is not this dataset ({err}); {replace}"
        ) from None
    wanted = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "seed": db.seed,
        "config_hash": config.content_hash(),
        "content_hash": content_hash({t: parquet_bytes(df) for t, df in db.tables.items()}),
        "task_folders": write_tasks,
    }
    differs = [key for key, value in wanted.items() if info.get(key) != value]
    if differs:
        raise DatasetError(f"{out} already exists with another {', '.join(differs)}; {replace}")
    verify_content_hash(out, db.tables)  # the folder's own tables may have been damaged since
    return out


def write_dataset(
    db: GeneratedDatabase,
    out_dir: str | os.PathLike,
    config: Config,
    name: str | None = None,
    *,
    overwrite: bool = False,
    write_tasks: bool = False,
) -> Path:
    """Write `db` as a RelBench-3 dataset folder, atomically.

    The folder is built in `<out_dir>.tmp-<uuid>` beside `out_dir` and renamed into
    place; on any failure the temporary folder is removed and `out_dir` is untouched.
    Writing the same database again is a no-op: a folder already at `out_dir` whose
    plurel.json records this name, seed, config, content hash and `write_tasks` (and
    whose tables still match it) is left as it is.

    Args:
        db: the generated database.
        out_dir: the dataset folder to create; its parent is created if needed.
        config: the config `db` was generated with (recorded in plurel.json; its splits
            cut the label tables of tables without a time column).
        name: the dataset name in manifest.yaml; default `plurel-<seed>`.
        overwrite: write the folder even when it exists (the old one is removed once the
            new one is in place).
        write_tasks: also write every autocomplete task as a RelBench task folder
            (tasks/<table>-<column>/, for `load_task`); by default plurel.json only
            describes them and readers derive their items from the tables.

    Returns:
        The path of the folder.

    Raises:
        DatasetError: something other than this database exists at `out_dir` and
            `overwrite` is False, or two tasks get the same `<table>-<column>` name.
    """
    out = Path(out_dir).expanduser()
    name = name or f"plurel-{db.seed}"
    if os.path.lexists(out) and not overwrite:
        return _existing_dataset(out, db, config, name, write_tasks)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    try:
        _write_contents(db, tmp, config, name, write_tasks)
        move_into_place(tmp, out, overwrite, DatasetError)
    except BaseException:
        remove(tmp)
        raise
    return out


def read_dataset_info(path: str | os.PathLike) -> dict:
    """The plurel.json of a dataset folder written by `write_dataset`.

    Args:
        path: the dataset folder.
    """
    file = Path(path).expanduser() / INFO_FILE
    try:
        info = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise DatasetError(
            f"{file.parent}: not a plurel-ray dataset folder (no {INFO_FILE})"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bad UTF-8
        raise DatasetError(f"{file}: cannot read: {err}; write the folder again") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{file}: expected a JSON object, got {type(info).__name__}")
    return info


def verify_content_hash(path: str | os.PathLike, tables: Iterable[str]) -> None:
    """Check db/<table>.parquet of a dataset folder against plurel.json's `content_hash`,
    reading each file once in chunks; a folder without plurel.json (a real dataset) or
    without a recorded hash passes as is.

    Args:
        path: the dataset folder.
        tables: its table names (the manifest's).

    Raises:
        DatasetError: a table file is missing or the bytes differ from the recorded hash.
    """
    root = Path(path).expanduser()
    if not (root / INFO_FILE).is_file():
        return
    expected = read_dataset_info(root).get("content_hash")
    if expected is None:
        return
    h = hashlib.sha256()
    for table in sorted(tables):
        file = root / "db" / f"{table}.parquet"
        try:
            with file.open("rb") as src:
                h.update(f"{table}\n{os.fstat(src.fileno()).st_size}\n".encode())
                while chunk := src.read(_HASH_CHUNK):
                    h.update(chunk)
        except OSError as err:
            raise DatasetError(f"{root}: incomplete dataset folder: {err}") from None
    if h.hexdigest() != expected:
        raise DatasetError(
            f"{root}: db/*.parquet do not match the content_hash in {INFO_FILE}; the folder "
            "is corrupt or was edited — delete it and generate it again"
        )


def read_tables(path: str | os.PathLike, *, verify: bool = False) -> dict[str, pd.DataFrame]:
    """The tables of a dataset folder, in manifest order.

    Args:
        path: the dataset folder.
        verify: check the Parquet bytes against plurel.json's `content_hash`.
    """
    root = Path(path).expanduser()
    try:
        manifest = yaml.load((root / "manifest.yaml").read_bytes(), Loader=_YAML_LOADER)
        names = [check_name("table", t, DatasetError, f"{root}: ") for t in manifest["tables"]]
        files = {t: (root / "db" / f"{t}.parquet").read_bytes() for t in names}
    except OSError as err:
        raise DatasetError(f"{root}: incomplete dataset folder: {err}") from err
    except (yaml.YAMLError, KeyError, TypeError) as err:  # no mapping with a "tables" key
        raise DatasetError(f"{root / 'manifest.yaml'}: not a dataset manifest: {err!r}") from None
    if verify and content_hash(files) != read_dataset_info(root)["content_hash"]:
        raise DatasetError(
            f"{root}: db/*.parquet do not match the content_hash in {INFO_FILE}; "
            "the folder is corrupt or was edited — delete it and write it again"
        )
    return {t: pq.read_table(pa.BufferReader(data)).to_pandas() for t, data in files.items()}
