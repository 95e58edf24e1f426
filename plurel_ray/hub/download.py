"""Repos of the Hugging Face Hub read back: a revision into a folder, one database of a
packed run, or a model into the shared Hugging Face cache.

    download("org/rt", revision="<sha>", local_dir="ckpt")   # a checkpoint, at one commit
    download_database("org/run", "plurel-7", "dbs")          # dbs/plurel-7, one range read
    cached_model("sentence-transformers/all-MiniLM-L6-v2")   # downloaded once per machine

A database of a packed run (`packed_card.py`) is read as `packed_read.open_database`
reads it from an object store: the index and the shard manifests it needs (small files,
through huggingface_hub's cache), then only the database's span of its shard, by one HTTP
range request on the file's `resolve` URL — the request `HfFileSystem` makes for a read.
The Hub answers it itself for a small file and redirects a large (LFS or Xet) one to its
CDN, which honours the range; the client follows the redirect and drops the token when
it leaves the Hub's host. Everything is read at one commit sha, resolved first, so a push
landing meanwhile cannot mix two revisions.

Endpoint and token: see `plurel_ray.hub.client`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import constants, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

from plurel_ray import __version__
from plurel_ray.dataset.shards import ShardManifest, ShardMember, unpack_member
from plurel_ray.errors import DatasetError, HubError
from plurel_ray.hub.card import LIBRARY_NAME
from plurel_ray.hub.client import endpoint_of, hub_api, hub_errors, token_of
from plurel_ray.hub.packed_card import COMPLETE, INDEX_FILE, SHARDS_DIR, manifest_path

_DATABASE_NAME = re.compile(r"plurel-\d{1,19}")
_SHARD_PATH = re.compile(rf"{SHARDS_DIR}/[A-Za-z0-9][A-Za-z0-9._-]*\.tar")
_INDEX_COLUMNS = ["db_name", "status", "shard", "offset", "length", "sha256"]


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    local_dir: str | os.PathLike,
    repo_type: str = "model",
    endpoint: str | None = None,
    token: str | None = None,
) -> Path:
    """Download every file of a repo at a revision into `local_dir`.

    huggingface_hub keeps its download metadata in `local_dir/.cache/huggingface/`. Files
    already there and unchanged are not fetched again; use a fresh folder per revision, as
    files that exist only in another revision are not removed.

    Args:
        repo_id: "org/name".
        revision: a branch, tag or commit sha (default main).
        local_dir: the folder to fill (created if needed).
        repo_type: "model" (checkpoints) or "dataset" (databases).
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        `local_dir`.

    Raises:
        HubError: unknown repo or revision, rejected token, Hub unreachable.
    """
    endpoint, token = endpoint_of(endpoint), token_of(token)
    with hub_errors(f"{repo_type} repo {repo_id} at {endpoint}", revision, token):
        # Resolve the revision first: on an unknown repo snapshot_download returns a
        # non-empty local_dir as if it were the download (huggingface_hub 2.4 treats every
        # HTTP error as "offline"). A commit sha also pins all files to one commit.
        api = hub_api(endpoint, token)
        sha = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        path = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=sha,
            local_dir=Path(local_dir).expanduser(),
            endpoint=endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )
    return Path(path)


def download_database(
    repo_id: str,
    name: str,
    dest: str | os.PathLike,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> Path:
    """Download one database of a packed run's dataset repo to `dest/<name>`.

    Args:
        repo_id: the dataset repo, "org/name".
        name: the database, `plurel-<seed>`.
        dest: the local folder to put it in (created if needed).
        revision: a branch, tag or commit sha (default main).
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        `dest/<name>`.

    Raises:
        DatasetError: the repo is not a packed run, has no complete database `name`, or
            its shard does not match the recorded sha256 (nothing is written then).
        HubError: unknown repo or revision, rejected token, Hub unreachable.
    """
    (folder,) = download_databases(repo_id, [name], dest, revision=revision,
                                   endpoint=endpoint, token=token)  # fmt: skip
    return folder


def download_databases(
    repo_id: str,
    names: list[str],
    dest: str | os.PathLike,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> list[Path]:
    """Download databases of a packed run's dataset repo, each to `dest/<name>`: its index
    and the manifests of their shards, then one range request per database. Every name is
    looked up before any is fetched; each folder is written whole or not at all (an
    earlier `dest/<name>` is replaced).

    Args:
        repo_id: the dataset repo, "org/name".
        names: the databases, `plurel-<seed>` each.
        dest: the local folder to put them in (created if needed).
        revision: a branch, tag or commit sha (default main).
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the database folders, in the order of `names`.

    Raises:
        DatasetError: the repo is not a packed run, has no complete database of one of
            `names`, or a shard does not match its recorded sha256.
        HubError: unknown repo or revision, rejected token, Hub unreachable.
    """
    for name in names:
        if not _DATABASE_NAME.fullmatch(name):
            raise DatasetError(f"database name {name!r}: expected plurel-<seed>, e.g. plurel-7")
    endpoint, token = endpoint_of(endpoint), token_of(token)
    where = f"dataset repo {repo_id} at {endpoint}"
    dest = Path(dest).expanduser()
    with hub_errors(where, revision, token):
        info = hub_api(endpoint, token).repo_info(repo_id, repo_type="dataset", revision=revision)
        repo = _PinnedRepo(repo_id, info.sha, endpoint, token)
        rows = repo.index_rows(names)
        manifests = {shard: repo.manifest(shard) for shard in sorted({r["shard"] for r in rows})}
        spans = [(row["shard"], _member(manifests[row["shard"]], row, repo)) for row in rows]
        dest.mkdir(parents=True, exist_ok=True)
        return [unpack_member(repo.read_span(shard, member), member, dest / member.name,
                              repo.source(shard)) for shard, member in spans]  # fmt: skip


class _PinnedRepo:
    """The files of a dataset repo at one commit."""

    def __init__(self, repo_id: str, sha: str, endpoint: str, token: str | None) -> None:
        self.repo_id, self.sha, self.endpoint, self.token = repo_id, sha, endpoint, token

    def source(self, path: str) -> str:
        """How messages name file `path`: repo@commit:path."""
        return f"{self.repo_id}@{self.sha[:12]}:{path}"

    def _file(self, path: str) -> Path:
        """`path` from huggingface_hub's cache, downloaded there at this commit if needed."""
        return Path(hf_hub_download(self.repo_id, path, repo_type="dataset", revision=self.sha,
                                    endpoint=self.endpoint, token=self.token,
                                    library_name=LIBRARY_NAME,
                                    library_version=__version__))  # fmt: skip

    def index_rows(self, names: list[str]) -> list[dict]:
        """The index rows of the complete databases `names`, in that order."""
        try:
            index = pq.read_table(self._file(INDEX_FILE), columns=_INDEX_COLUMNS)
        except RemoteEntryNotFoundError:
            raise DatasetError(
                f"{self.source(INDEX_FILE)}: missing, so this is not a packed plurel-ray run; "
                f"download a repo of database folders with `plurel-ray hub download "
                f"{self.repo_id} --repo-type dataset --out DIR`"
            ) from None
        except (pa.ArrowException, ValueError) as err:
            raise DatasetError(f"{self.source(INDEX_FILE)}: unreadable index ({err})") from None
        index = index.filter(pc.is_in(index["db_name"], value_set=pa.array(names)))
        found = {r["db_name"]: r for r in index.to_pylist() if r["status"] in COMPLETE}
        for name in names:
            if name not in found:
                raise DatasetError(f"{self.source(INDEX_FILE)}: no complete database {name} "
                                   "in its index; pass a name the index lists")  # fmt: skip
            shard = found[name]["shard"]
            if not _SHARD_PATH.fullmatch(shard or ""):
                raise DatasetError(f"{self.source(INDEX_FILE)}: {name} names no shard "
                                   f"({shard!r}); not a packed run's index")  # fmt: skip
        return [found[name] for name in names]

    def manifest(self, shard: str) -> ShardManifest:
        """The manifest of shard `shards/<id>.tar`."""
        path = manifest_path(shard)
        try:
            text = self._file(path).read_bytes()
        except RemoteEntryNotFoundError:
            raise DatasetError(f"{self.source(path)}: missing; its shard cannot be read") from None
        return ShardManifest.from_json(text, self.source(path))

    def read_span(self, shard: str, member: ShardMember) -> bytes:
        """`member`'s span of `shard`, by one HTTP range request (the redirect to a CDN
        followed); at most one byte more than the span is read.

        Raises:
            HubError: the Hub answered the whole file instead of the range.
        """
        url = hf_hub_url(self.repo_id, shard, repo_type="dataset", revision=self.sha,
                         endpoint=self.endpoint)  # fmt: skip
        headers = build_hf_headers(token=self.token, library_name=LIBRARY_NAME,
                                   library_version=__version__)  # fmt: skip
        headers["Range"] = f"bytes={member.offset}-{member.offset + member.length - 1}"
        data = bytearray()
        timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT
        with http_stream_backoff("GET", url, headers=headers, timeout=timeout) as response:
            hf_raise_for_status(response)
            if response.status_code != 206:
                raise HubError(f"{self.source(shard)}: the Hub answered HTTP "
                               f"{response.status_code} to a byte-range request instead of "
                               "206; use an endpoint that serves ranges (HF_ENDPOINT)")  # fmt: skip
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > member.length:
                    break  # too long: the hash check says so; read no further
        return bytes(data)


def _member(manifest: ShardManifest, row: dict, repo: _PinnedRepo) -> ShardMember:
    """The member of the database of index row `row`; the manifest must agree with it."""
    member = manifest.member(row["db_name"])
    if member is None or (member.offset, member.length, member.sha256) != (
        row["offset"], row["length"], row["sha256"]
    ):  # fmt: skip
        raise DatasetError(f"{repo.source(row['shard'])}: {row['db_name']} in its manifest "
                           "differs from the index; the run was pushed inconsistently")  # fmt: skip
    return member


def cached_model(repo_id: str, *, endpoint: str | None = None, token: str | None = None) -> Path:
    """The files of model repo `repo_id` (its main branch) in the Hugging Face cache
    (HF_HUB_CACHE), downloaded on first use; once there, they are read without a request,
    so a sentence encoder from the Hub costs one download per machine.

    Args:
        repo_id: "org/name".
        endpoint: the Hub URL (see `plurel_ray.hub.client`).
        token: the access token (see `plurel_ray.hub.client`).

    Returns:
        the snapshot folder in the cache.

    Raises:
        HubError: not cached, and the repo is unknown or the Hub unreachable.
    """
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        pass  # not cached yet (or not a repo id: the Hub's answer below says so)
    endpoint, token = endpoint_of(endpoint), token_of(token)
    with hub_errors(f"model repo {repo_id} at {endpoint}", None, token):
        # Asked first: on an unknown repo snapshot_download reports "offline", not "unknown".
        hub_api(endpoint, token).repo_info(repo_id)
        path = snapshot_download(
            repo_id,
            endpoint=endpoint,
            token=token,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )
    return Path(path)
