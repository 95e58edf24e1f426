"""The output root of a generation run: a local path, `s3://…` or `gs://…`, via pyarrow.fs.

A database folder `plurel-<seed>/` is complete when its `plurel.json` exists: on a local
filesystem the folder is built beside its final name and renamed into place (atomic); on
an object store, where nothing renames atomically, the files are uploaded first and
`plurel.json` last. A folder without `plurel.json` is a partial write, removed and redone.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from plurel_ray.errors import DatasetError
from plurel_ray.relbench_io import INFO_FILE

INDEX_FILE = "_index.parquet"


def database_name(seed: int) -> str:
    """The folder name of the database of `seed`."""
    return f"plurel-{seed}"


class OutputRoot:
    """A folder on any pyarrow filesystem that database folders are published into.

    Args:
        uri: a local path or a URI pyarrow understands (`s3://bucket/run`, `gs://…`).
        filesystem: a pyarrow filesystem to use instead of resolving `uri`, which is then
            a path on it (e.g. any fsspec filesystem through `pafs.PyFileSystem`).
    """

    def __init__(self, uri: str | os.PathLike, filesystem: pafs.FileSystem | None = None) -> None:
        text = os.fspath(uri)
        try:
            if filesystem is not None:
                self.fs, path = filesystem, text
            else:
                self.fs, path = pafs.FileSystem.from_uri(text)
        except (pafs.ArrowInvalid, ValueError, TypeError):
            # A plain relative or ~ path: pyarrow only takes absolute local paths.
            self.fs, path = pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
        except OSError as err:
            raise DatasetError(f"cannot open output {text!r}: {err}") from err
        self.uri = text
        self.path = path.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        return "/".join([self.path, *parts])

    def check_writable(self) -> None:
        """Create the root and write, read back and delete a probe file, so an unwritable
        output fails before any work starts."""
        probe = self.join(f".probe-{uuid.uuid4().hex}")
        try:
            self.fs.create_dir(self.path, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self.fs.delete_file(probe)
        except OSError as err:
            raise DatasetError(f"output {self.uri!r} is not writable: {err}") from err

    def read_info(self, name: str) -> dict | None:
        """The `plurel.json` of a complete database folder, or None when incomplete."""
        try:
            with self.fs.open_input_stream(self.join(name, INFO_FILE)) as src:
                return json.loads(src.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_complete(self, name: str, marker: str) -> bool:
        """Whether folder `name` holds its completion marker file."""
        return self.fs.get_file_info(self.join(name, marker)).type == pafs.FileType.File

    def fetch(self, name: str, scratch: Path) -> Path:
        """A local folder with the contents of `name` ("" for the root itself): the folder
        itself on a local root, else a fresh download under `scratch` (the caller removes
        it)."""
        if self.is_local:
            return Path(self.join(name) if name else self.path)
        local = scratch / f"fetch-{uuid.uuid4().hex}"
        local.mkdir(parents=True)
        source = self.join(name) if name else self.path
        pafs.copy_files(source, str(local), source_filesystem=self.fs)
        return local

    def folder_bytes(self, name: str) -> int:
        """Total size of the files under a database folder."""
        selector = pafs.FileSelector(self.join(name), recursive=True, allow_not_found=True)
        return sum(
            info.size or 0
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    def remove(self, name: str) -> None:
        """Delete a (partial) folder; nothing to do when it does not exist."""
        path = self.join(name)
        if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
            self.fs.delete_dir(path)

    def publish(self, local_dir: Path, name: str, marker: str = INFO_FILE) -> None:
        """Move a finished local folder to `<root>/<name>`, its marker file last.

        Args:
            local_dir: the folder, written on this machine (it is consumed).
            name: the folder path under the root.
            marker: the file whose presence means the folder is complete.
        """
        target = self.join(name)
        self.remove(name)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(local_dir, target)  # same filesystem: the staging dir is in the root
            return
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        # The marker goes up after everything else: readers test for it.
        files.sort(key=lambda p: p.relative_to(local_dir).as_posix() == marker)
        for file in files:
            dest = f"{target}/{file.relative_to(local_dir).as_posix()}"
            self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(str(file), dest, destination_filesystem=self.fs)
        shutil.rmtree(local_dir, ignore_errors=True)

    def upload(self, local_dir: Path, name: str, files: list[str]) -> None:
        """Copy `files` (relative to `local_dir`) into folder `name`, in the given order."""
        for file in files:
            pafs.copy_files(str(local_dir / file), self.join(name, file),
                            destination_filesystem=self.fs)  # fmt: skip

    def staging_dir(self, name: str, scratch: Path) -> Path:
        """A fresh local folder to write `name` into before `publish`.

        For a local root it sits in the root itself (so publishing is a rename on one
        filesystem) and is named `.tmp-<name>-<uuid>` ("/" in `name` becomes "__");
        leftovers of a killed run with the same name are removed first.
        """
        base = Path(self.path) if self.is_local else scratch
        base.mkdir(parents=True, exist_ok=True)
        key = name.replace("/", "__")
        for stale in base.glob(f".tmp-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return base / f".tmp-{key}-{uuid.uuid4().hex}"

    def write_bytes_atomic(self, name: str, data: bytes) -> None:
        """Write a file at the root so that readers see the old or the new bytes only."""
        target = self.join(name)
        tmp = self.join(f".tmp-{uuid.uuid4().hex}-{name}")
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, target)
