"""Shards: many database folders (and node stores) in one tar file, with a manifest.

    writer = ShardWriter(Path("run/shards/a1b2-000003.tar"))
    writer.add_folder(Path("staging/plurel-7"), "plurel-7", kind="database")
    manifest = writer.close()                    # spans, sha256 of each and of the file
    extract_member(span_bytes, member, Path("out"))   # one folder back, hash checked

A shard is a plain POSIX tar (PAX) that `tar -x`, Python's `tarfile` and WebDataset read
without us. Every folder is stored as one contiguous run of members — its *span*, header
blocks included — so one byte-range read (an HTTP range request, an object-store ranged
GET) returns a tar stream of exactly that folder, and its sha256 proves it whole. Headers
are normalised (mtime 0, uid/gid 0, no user names, mode 0644/0755) and files go in sorted
order, so the same folders always make the same bytes. The manifest (`<shard>.json`)
lists every member: name, kind, offset, length, sha256, file count; it also holds the
whole file's length and sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from plurel_ray.errors import DatasetError
from plurel_ray.util.atomic_dir import remove, temporary_sibling

SHARD_FORMAT = "plurel-ray-shard"
SHARD_FORMAT_VERSION = 1
KINDS = ("database", "store")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ShardMember:
    """Where one folder lies in a shard.

    Attributes:
        name: the folder's path inside the shard (`plurel-7`, `stores/plurel-7`).
        kind: "database" or "store".
        offset: the first byte of its span (its first header block).
        length: the span's length in bytes.
        sha256: the span's sha256, hex.
        files: regular files in it.
    """

    name: str
    kind: str
    offset: int
    length: int
    sha256: str
    files: int


@dataclass(frozen=True)
class ShardManifest:
    """What `<shard>.json` says about a shard file."""

    shard: str  # the tar file's name
    bytes: int
    sha256: str
    members: tuple[ShardMember, ...]

    def to_json(self) -> str:
        data = {"format": SHARD_FORMAT, "format_version": SHARD_FORMAT_VERSION,
                "shard": self.shard, "bytes": self.bytes, "sha256": self.sha256,
                "members": [asdict(m) for m in self.members]}  # fmt: skip
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, source: str) -> ShardManifest:
        """Parse a manifest.

        Args:
            text: its bytes.
            source: how messages name it.

        Raises:
            DatasetError: not a shard manifest of a known version.
        """
        try:
            data = json.loads(text)
            if data.get("format") != SHARD_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {SHARD_FORMAT!r}")
            if data.get("format_version") != SHARD_FORMAT_VERSION:
                raise ValueError(f"format_version {data.get('format_version')!r} is not "
                                 f"{SHARD_FORMAT_VERSION}; use a newer plurel-ray")  # fmt: skip
            members = tuple(ShardMember(**m) for m in data["members"])
            return cls(str(data["shard"]), int(data["bytes"]), str(data["sha256"]), members)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise DatasetError(f"{source}: not a readable shard manifest ({err})") from None

    @cached_property
    def _by_name(self) -> dict[str, ShardMember]:
        return {m.name: m for m in self.members}

    def member(self, name: str) -> ShardMember | None:
        """The member called `name` (`plurel-7`, `stores/plurel-7`), or None."""
        return self._by_name.get(name)


def _tar_info(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


class ShardWriter:
    """Appends whole folders to a new shard file, then hashes it and writes no manifest
    itself (the caller publishes the shard, then its manifest).

    Args:
        path: the tar file to create (local disk).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Closed by `close`, which also hashes what it wrote.
        self._tar = tarfile.open(path, mode="x", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._spans: list[tuple[str, str, int, int, int]] = []  # name, kind, start, end, files

    def add_folder(self, folder: Path, name: str, kind: str) -> None:
        """Append every file under `folder` as `<name>/<relative path>`, sorted.

        Args:
            folder: a local folder of regular files.
            name: its path inside the shard.
            kind: "database" or "store".
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        start = self._tar.offset
        self._tar.addfile(_tar_info(name, None))
        files = 0
        for path in sorted(folder.rglob("*")):
            inside = f"{name}/{path.relative_to(folder).as_posix()}"
            if path.is_dir():
                self._tar.addfile(_tar_info(inside, None))
            elif path.is_file() and not path.is_symlink():
                with path.open("rb") as src:
                    self._tar.addfile(_tar_info(inside, path.stat().st_size), src)
                files += 1
        self._spans.append((name, kind, start, self._tar.offset, files))

    def discard(self) -> None:
        """Close the file after a failure (its folder is then removed by the caller)."""
        with contextlib.suppress(OSError, tarfile.TarError):
            self._tar.close()

    def close(self) -> ShardManifest:
        """Finish the tar file and return its manifest (one read of the file hashes it)."""
        self._tar.close()
        whole = hashlib.sha256()
        members = []
        with self.path.open("rb") as src:
            for name, kind, start, end, files in self._spans:
                if src.tell() < start:  # nothing lies between spans, but be exact
                    whole.update(src.read(start - src.tell()))
                span = hashlib.sha256()
                left = end - start
                while left:
                    chunk = src.read(min(_CHUNK, left))
                    span.update(chunk)
                    whole.update(chunk)
                    left -= len(chunk)
                members.append(ShardMember(name, kind, start, end - start, span.hexdigest(), files))
            while chunk := src.read(_CHUNK):
                whole.update(chunk)
            size = src.tell()
        return ShardManifest(self.path.name, size, whole.hexdigest(), tuple(members))


def check_span(data: bytes, member: ShardMember, source: str) -> None:
    """Raise unless `data` is `member`'s span, whole and unchanged.

    Raises:
        DatasetError: shorter than recorded (a truncated shard) or another sha256.
    """
    if len(data) != member.length:
        raise DatasetError(
            f"{source}: {member.name} is cut short ({len(data):,} of {member.length:,} bytes); "
            "the shard is truncated — run `plurel-ray runs verify` and regenerate it"
        )
    if hashlib.sha256(data).hexdigest() != member.sha256:
        raise DatasetError(
            f"{source}: {member.name} does not match its recorded sha256; the shard is "
            "corrupt — run `plurel-ray runs verify` and regenerate it"
        )


def _safe_members(tar: tarfile.TarFile, prefix: str, source: str) -> list[tarfile.TarInfo]:
    """The members of a span, each a file or folder under `prefix/` (never a link, device,
    absolute path or `..`): a shard from elsewhere is input, and its names are data."""
    members = []
    for info in tar.getmembers():
        path = PurePosixPath(info.name)
        inside = path.parts[: len(PurePosixPath(prefix).parts)] == PurePosixPath(prefix).parts
        if (path.is_absolute() or ".." in path.parts or not inside
                or not (info.isfile() or info.isdir())):  # fmt: skip
            raise DatasetError(f"{source}: refused member {info.name!r} (not a plain file "
                               f"or folder under {prefix}/)")  # fmt: skip
        members.append(info)
    return members


def extract_member(data: bytes, member: ShardMember, dest: Path, source: str) -> Path:
    """Unpack `member`'s span (checked first) under `dest`; returns `dest/<member name>`.

    Args:
        data: the span's bytes.
        member: what the manifest says about it.
        dest: an existing local folder.
        source: how messages name the shard.

    Raises:
        DatasetError: the span is truncated, corrupt or holds anything but plain files and
            folders under the member's name.
    """
    check_span(data, member, source)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            tar.extractall(dest, members=_safe_members(tar, member.name, source), filter="data")
    except tarfile.TarError as err:
        raise DatasetError(f"{source}: {member.name} is not a readable tar span ({err})") from None
    return dest / member.name


def unpack_member(data: bytes, member: ShardMember, dest: Path, source: str) -> Path:
    """`extract_member` into a hidden folder beside `dest`, then renamed to `dest` (an
    older folder there is replaced): `dest` is the old folder or the whole new one.

    Raises:
        DatasetError: as `extract_member`; nothing is written then.
    """
    tmp = temporary_sibling(dest, hidden=True)
    tmp.mkdir(parents=True)
    try:
        extract_member(data, member, tmp, source)
        if dest.exists():
            remove(dest)
        (tmp / member.name).rename(dest)
    finally:
        remove(tmp)
    return dest
