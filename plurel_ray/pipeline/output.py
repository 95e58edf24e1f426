"""The output root of a generation run: a local path, `s3://…` or `gs://…`, via pyarrow.fs.

A database folder `plurel-<seed>/` is complete when its `plurel.json` exists: on a local
filesystem the folder is built in the root's run folder and renamed into place (atomic);
on an object store, where nothing renames atomically, the files are uploaded first and
`plurel.json` last. A folder without `plurel.json` is a partial write, removed and redone.
Every temporary of a run lives under `<root>/.runs/<run id>/`, so a run removes its own
temporaries and, holding the output's lease (`lease.py`), those of killed runs — never
those of a live one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import urllib.parse
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from plurel_ray.dataset.relbench_io import INFO_FILE
from plurel_ray.errors import DatasetError

INDEX_FILE = "_index.parquet"
RUNS_DIR = ".runs"  # <root>/.runs/<run id>/: the temporaries of one run
SHARDS_DIR = "shards"  # packed layout: <root>/shards/<shard id>.tar and .json
DATABASE_FILES = ("manifest.yaml", "db", INFO_FILE)  # what a database folder must hold
# S3: seconds before a connection attempt or a request gives up, and attempts per
# request, so an unreachable endpoint is an error within seconds, not a hang.
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 20.0
S3_ATTEMPTS = 3
# `scheme://…`: a URI; anything else is a local path.
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (pyarrow's messages span several)."""
    return " ".join(str(err).split())


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
        if filesystem is not None:
            self.fs, path = filesystem, text
        else:
            self.fs, path = _open(text)
        self._given = text
        self.uri = _redacted(text)  # for messages: no access key or secret from the URI
        self.path = path.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def location(self) -> str:
        """The root as another process can open it, whatever its working directory: the
        absolute path of a local root, else the URI as given."""
        return self.path if self.is_local else self._given

    def join(self, *parts: str) -> str:
        return "/".join([self.path, *parts])

    def check_writable(self) -> None:
        """Create the root and write, read back and delete a probe file, so an unwritable
        output fails before any work starts.

        Raises:
            DatasetError: the root cannot be created or written; one line naming it.
        """
        probe = self.join(f".probe-{uuid.uuid4().hex}")
        try:
            self.fs.create_dir(self.path, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            with self.fs.open_input_stream(probe) as src:
                if src.read() != b"ok":
                    raise OSError("a file written there read back different bytes")
        except OSError as err:
            raise DatasetError(f"output {self.uri!r} is not writable: {one_line(err)}") from err
        finally:
            # Never created, or the store refuses deletes: nothing more to clean.
            with contextlib.suppress(OSError):
                self.fs.delete_file(probe)

    def read_info(self, name: str) -> dict | None:
        """The `plurel.json` of a complete database folder, or None when incomplete."""
        try:
            with self.fs.open_input_stream(self.join(name, INFO_FILE)) as src:
                info = json.loads(src.read())
        except (FileNotFoundError, ValueError):  # ValueError: bad JSON or bad UTF-8
            return None
        return info if isinstance(info, dict) else None

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

    def publish(
        self,
        local_dir: Path,
        name: str,
        marker: str = INFO_FILE,
        required: tuple[str, ...] = DATABASE_FILES,
    ) -> None:
        """Move a finished local folder to `<root>/<name>`, its marker file last.

        Args:
            local_dir: the folder, written on this machine (it is consumed).
            name: the folder path under the root.
            marker: the file whose presence means the folder is complete.
            required: files and folders `local_dir` must hold, checked before anything
                is moved, so a folder whose writing was cut short is never published.

        Raises:
            DatasetError: `local_dir` lacks one of `required` or `marker`.
        """
        missing = [part for part in (*required, marker) if not (local_dir / part).exists()]
        if missing:
            raise DatasetError(
                f"{name}: not published, its staged folder {local_dir} lacks "
                f"{', '.join(missing)} (removed by another process?)"
            )
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

    def publish_file(self, local_file: Path, name: str) -> None:
        """Move a finished local file to `<root>/<name>` (a rename where local: the file
        is staged in the root's run folder; else one upload), replacing any file there."""
        target = self.join(name)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if self.is_local:
            os.replace(local_file, target)
            return
        pafs.copy_files(str(local_file), target, destination_filesystem=self.fs)
        local_file.unlink(missing_ok=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write `<root>/<name>` whole: a reader sees the old file or the new one, never a
        part (renamed into place where local; one object PUT on an object store)."""
        target = self.join(name)
        folder = target.rsplit("/", 1)[0]
        self.fs.create_dir(folder, recursive=True)
        if not self.is_local:
            with self.fs.open_output_stream(target) as out:
                out.write(data)
            return
        tmp = f"{folder}/.{target.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """`length` bytes of `<root>/<name>` from `offset` (one ranged read on an object
        store); fewer when the file is shorter."""
        with self.fs.open_input_file(self.join(name)) as src:
            return src.read_at(length, offset)

    def upload(self, local_dir: Path, name: str, files: list[str]) -> None:
        """Copy `files` (relative to `local_dir`) into folder `name`, in the given order."""
        for file in files:
            pafs.copy_files(str(local_dir / file), self.join(name, file),
                            destination_filesystem=self.fs)  # fmt: skip

    def run_dir(self, run_id: str) -> Path:
        """The local folder of run `run_id`'s temporaries in a local root."""
        return Path(self.join(RUNS_DIR, run_id))

    def staging_dir(self, name: str, scratch: Path, run_id: str) -> Path:
        """A fresh local folder to write `name` into before `publish`.

        For a local root it sits in the root's run folder (so publishing is a rename on
        one filesystem), else in `scratch`; it is named `<name>-<uuid>` ("/" in `name`
        becomes "__") under a folder of run `run_id`. Nothing else is removed here: only
        the lease holder removes other runs' temporaries (`remove_other_runs`).

        Args:
            name: the folder path under the root that will be published.
            scratch: local disk for staging when the root is an object store.
            run_id: the run that writes it.
        """
        base = self.run_dir(run_id) if self.is_local else scratch / RUNS_DIR / run_id
        base.mkdir(parents=True, exist_ok=True)
        return base / f"{name.replace('/', '__')}-{uuid.uuid4().hex}"

    def remove_run_dir(self, run_id: str) -> None:
        """Delete the temporaries of run `run_id` (and the run folder when it empties)."""
        self.remove(f"{RUNS_DIR}/{run_id}")
        if self.is_local:
            # Kept while another run's folder is there.
            with contextlib.suppress(OSError):
                os.rmdir(self.join(RUNS_DIR))

    def remove_other_runs(self, run_id: str) -> int:
        """Delete the temporaries of every run but `run_id`; only the lease holder may,
        since then no other run is writing. Returns how many run folders went."""
        selector = pafs.FileSelector(self.join(RUNS_DIR), allow_not_found=True)
        others = [
            info.base_name for info in self.fs.get_file_info(selector)
            if info.base_name != run_id
        ]  # fmt: skip
        for other in others:
            path = self.join(RUNS_DIR, other)
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
            else:
                self.fs.delete_file(path)
        return len(others)


def _open(text: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of an output given as a path or URI.

    A `scheme://…` string is a URI (`file://` a local one); anything else is a local path,
    `~` expanded and made absolute.

    Raises:
        DatasetError: the URI is malformed, of an unknown scheme, or its store cannot be
            reached; one line naming it.
    """
    match = _URI.match(text)
    if match is None:
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
    parts = urllib.parse.urlsplit(text)
    scheme = match.group(1).lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DatasetError(
                f"output {text!r}: a file:// URI names an absolute local path "
                f"(file:///path/to/out), not the host {parts.netloc!r}"
            )
        return pafs.LocalFileSystem(), str(Path(urllib.parse.unquote(parts.path)).resolve())
    # pyarrow reads the path percent-encoded: a space must arrive as %20 (and an
    # already encoded %20 stays as it is).
    path = urllib.parse.quote(parts.path, safe="/%")
    quoted = urllib.parse.urlunsplit(parts._replace(path=path))
    try:
        if scheme == "s3":
            return _open_s3(quoted)
        return pafs.FileSystem.from_uri(quoted)
    except (pa.ArrowException, ValueError, OSError) as err:
        shown = _redacted(text)
        raise DatasetError(
            f"output {shown!r}: cannot open it: "
            + one_line(err).replace(quoted, shown).replace(text, shown)
        ) from err


def _redacted(text: str) -> str:
    """`text` without the `user:secret@` part a URI may carry (S3 keys), for messages."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", text)


def _open_s3(uri: str) -> tuple[pafs.FileSystem, str]:
    """An S3 filesystem for `uri` with bounded timeouts and retries.

    pyarrow's `from_uri` takes the URI's query parameters (`region`, `scheme`,
    `endpoint_override`, …) but no timeouts; its filesystem is remade, through the same
    constructor pickling uses, with every option kept and the timeouts added: a closed
    endpoint then fails in about 3 s (12 s with the defaults). Without `region` or
    `endpoint_override`, `from_uri` first asks AWS for the bucket's region, which the
    AWS SDK bounds itself (6 s where the host does not resolve).
    """
    fs, path = pafs.FileSystem.from_uri(uri)
    remake, (options,) = fs.__reduce__()
    bounded = remake({
        **options,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": REQUEST_TIMEOUT_S,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
    })  # fmt: skip
    return bounded, path
