"""An in-memory Hugging Face Hub for offline tests, spoken to by the real `huggingface_hub` client.

It answers exactly the routes huggingface_hub 2.4 calls for create_repo, create_commit
(inline files only: preupload always answers "regular"), repo_info, list_repo_tree,
get_paths_info, hf_hub_download and snapshot_download, and byte ranges of a file
(`Range: bytes=a-b`, docs/operations.md). Each repo keeps
its whole commit history, so any commit sha or branch can be read back.

    with HubServer(tokens={"hf_test_…"}) as hub:
        HfApi(endpoint=hub.endpoint, token="hf_test_…").create_repo("org/x")
        hub.fail_next("commit", times=2, status=503)     # the next 2 commits answer 503
        hub.requests                                     # every request, headers and body
        hub.serve_ranges = False                         # answer Range requests whole (200)

Writes (create, preupload, commit) need a token from `tokens` as `Authorization: Bearer …`;
a private repo is invisible (404 RepoNotFound) without one, as on the Hub.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

WRITE_ROUTES = ("create", "preupload", "commit")
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
INITIAL_FILES = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}


@dataclass(frozen=True)
class Request:
    """One request as the server received it; header names are lower-cased."""

    method: str
    route: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Commit:
    oid: str
    files: dict[str, bytes]


@dataclass
class Repo:
    private: bool
    history: list[Commit]
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """The commit a branch name or a commit sha names."""
        oid = self.branches.get(revision, revision)
        return next((c for c in self.history if c.oid == oid), None)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def git_blob_oid(data: bytes) -> str:
    """The sha1 git gives a file's content, which the Hub reports as its oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Start with `with HubServer(...) as hub:` or `start()`/`stop()`; `endpoint` is its URL.

    Args:
        tokens: the tokens that may write and see private repos.
    """

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self.tokens = set(tokens)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Request] = []
        self.serve_ranges = True  # False: a ranged GET gets the whole file, as from some mirrors
        self._failures: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self, route: str, times: int, status: int = 503, message: str = "injected failure"
    ) -> None:
        """Answer the next `times` requests to `route` (e.g. "commit") with `status` and
        `message` (as the X-Error-Message header and the body's "error")."""
        with self._lock:
            self._failures.setdefault(route, []).extend([(status, message)] * times)

    def requests_to(self, route: str) -> list[Request]:
        return [r for r in list(self.requests) if r.route == route]

    # What the routes do; the Hub's error answers are raised as HttpError.

    def _take_failure(self, route: str) -> tuple[int, str] | None:
        with self._lock:
            pending = self._failures.get(route)
            return pending.pop(0) if pending else None

    def _repo(self, repo_type: str, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token not in self.tokens):
            raise HttpError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    @staticmethod
    def _commit_at(repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _new_commit(self, repo: Repo, files: dict[str, bytes]) -> Commit:
        digest = hashlib.sha1(str(next(self._counter)).encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_oid(files[path])}\n".encode())
        commit = Commit(digest.hexdigest(), files)
        repo.history.append(commit)
        return commit

    def create(self, body: dict, base_url: str) -> tuple[int, dict]:
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{base_url}/{URL_PREFIX[repo_type]}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return 409, {"error": f"You already created this {repo_type} repo", "url": url}
            private = bool(body.get("private")) or body.get("visibility") == "private"
            repo = Repo(private=private, history=[])
            repo.branches["main"] = self._new_commit(repo, dict(INITIAL_FILES)).oid
            self.repos[(repo_type, repo_id)] = repo
        return 200, {"url": url}

    def preupload(self, repo: Repo, revision: str, body: dict) -> dict:
        if revision not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = self._commit_at(repo, revision).files
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    **({"oid": git_blob_oid(head[f["path"]])} if f["path"] in head else {}),
                }
                for f in body["files"]
            ]
        }

    def commit(self, repo: Repo, revision: str, body: bytes, base_url: str) -> dict:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if revision not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if not lines or lines[0]["key"] != "header" or not lines[0]["value"].get("summary"):
            raise HttpError(400, "the first ndjson line must be a header with a summary")
        with self._lock:
            files = dict(self._commit_at(repo, revision).files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(prefix)]
                    if not gone:
                        raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:  # lfsFile: preupload never asks for LFS
                    raise HttpError(400, f"this test Hub does not accept {key!r} lines")
            commit = self._new_commit(repo, files)
            repo.branches[revision] = commit.oid
        return {"commitUrl": f"{base_url}/commit/{commit.oid}", "commitOid": commit.oid}

    @staticmethod
    def info(repo_id: str, repo: Repo, commit: Commit) -> dict:
        siblings = [{"rfilename": p} for p in sorted(commit.files)]
        return {"id": repo_id, "sha": commit.oid, "private": repo.private, "siblings": siblings}

    @staticmethod
    def tree(commit: Commit, folder: str, recursive: bool) -> list[dict]:
        entries = _entries(commit.files)
        if folder and folder not in entries:
            raise HttpError(404, f"{folder} does not exist", "EntryNotFound")
        prefix = f"{folder}/" if folder else ""
        return [
            entry
            for path, entry in sorted(entries.items())
            if path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])
        ]


def _entries(files: dict[str, bytes]) -> dict[str, dict]:
    """Every file and folder of a snapshot, as the tree and paths-info routes list them."""
    entries: dict[str, dict] = {}
    for path, data in files.items():
        entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            oid = hashlib.sha1(folder.encode()).hexdigest()
            entries[folder] = {"type": "directory", "path": folder, "size": 0, "oid": oid}
    return entries


def _ranged(data: bytes, header: str | None, headers: dict) -> tuple[int, bytes, dict]:
    """A file's answer to a GET or HEAD: whole (200), or the bytes of one `Range:
    bytes=a-b` (206 with Content-Range), as the Hub and its CDN answer ranged reads."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if match is None:
        return 200, data, headers
    start = int(match[1])
    end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
    if start > end:
        raise HttpError(416, f"range {header} is outside the file's {len(data)} bytes")
    content_range = f"bytes {start}-{end}/{len(data)}"
    return 206, data[start : end + 1], {**headers, "Content-Range": content_range}


def _front_matter_errors(content: str) -> list[dict]:
    if not content.startswith("---\n"):
        return []
    try:
        meta = yaml.safe_load(content[4:].split("\n---\n", 1)[0])
    except yaml.YAMLError as err:
        return [{"message": f"invalid YAML: {err}"}]
    return [] if isinstance(meta, dict) else [{"message": "the metadata must be a mapping"}]


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test output stays clean; `hub.requests` has everything

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            route = _route_name(self.command, parts)
            headers = {name.lower(): value for name, value in self.headers.items()}
            hub.requests.append(Request(self.command, route, self.path, headers, body))
            try:
                if route == "unknown":
                    raise HttpError(404, f"this test Hub has no route {self.command} {url.path}")
                if (failure := hub._take_failure(route)) is not None:
                    raise HttpError(*failure)
                token = self._token()
                if route in WRITE_ROUTES and token not in hub.tokens:
                    raise HttpError(401, "Invalid credentials in Authorization header")
                self._dispatch(route, parts, parse_qs(url.query), body, token)
            except HttpError as err:
                error_headers = {"X-Error-Message": err.message}
                if err.code:
                    error_headers["X-Error-Code"] = err.code
                self._reply(err.status, {"error": err.message}, error_headers)

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

        def _dispatch(
            self, route: str, parts: list[str], query: dict, body: bytes, token: str | None
        ) -> None:
            base = f"http://{self.headers['Host']}"
            if route == "create":
                self._reply(*hub.create(json.loads(body), base))
                return
            if route == "validate-yaml":
                errors = _front_matter_errors(json.loads(body)["content"])
                self._reply(400 if errors else 200, {"errors": errors, "warnings": []})
                return
            if route == "resolve":
                prefixed = parts[0] in ("datasets", "spaces")
                repo_type = TYPES[parts[0]] if prefixed else "model"
                parts = parts[prefixed:]
                repo = hub._repo(repo_type, "/".join(parts[:2]), token)
                commit = hub._commit_at(repo, parts[3])
                path = "/".join(parts[4:])
                if path not in commit.files:
                    raise HttpError(404, f"{path} does not exist", "EntryNotFound")
                data = commit.files[path]
                headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(data)}"'}
                asked = self.headers.get("Range") if hub.serve_ranges else None
                self._reply(*_ranged(data, asked, headers))
                return
            repo_type, repo_id, rest = TYPES[parts[1]], "/".join(parts[2:4]), parts[4:]
            repo = hub._repo(repo_type, repo_id, token)
            base_url = f"{base}/{URL_PREFIX[repo_type]}{repo_id}"
            revision = rest[1] if len(rest) > 1 else "main"
            if route == "preupload":
                self._reply(200, hub.preupload(repo, revision, json.loads(body)))
            elif route == "commit":
                self._reply(200, hub.commit(repo, revision, body, base_url))
            elif route == "info":
                self._reply(200, hub.info(repo_id, repo, hub._commit_at(repo, revision)))
            elif route == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
                commit = hub._commit_at(repo, revision)
                self._reply(200, hub.tree(commit, "/".join(rest[2:]), recursive))
            else:  # paths-info
                entries = _entries(hub._commit_at(repo, revision).files)
                paths = parse_qs(body.decode()).get("paths", [])
                self._reply(200, [entries[p] for p in paths if p in entries])

        def _reply(self, status: int, payload: object, headers: dict | None = None) -> None:
            raw = isinstance(payload, bytes)
            data = payload if raw else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "application/octet-stream" if raw else "application/json"
            )
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _route_name(method: str, parts: list[str]) -> str:
    """The route a request path belongs to ("commit", "resolve", …; "unknown" otherwise)."""
    if parts[:3] == ["api", "repos", "create"] and method == "POST":
        return "create"
    if parts[:2] == ["api", "validate-yaml"] and method == "POST":
        return "validate-yaml"
    if len(parts) >= 4 and parts[0] == "api" and parts[1] in TYPES:
        rest = parts[4:]
        if not rest or rest[0] == "revision":
            return "info" if method == "GET" else "unknown"
        if rest[0] == "tree" and method == "GET":
            return "tree"
        if rest[0] in ("paths-info", "preupload", "commit") and method == "POST":
            return rest[0]
    offset = 1 if parts[0] in ("datasets", "spaces") else 0
    if len(parts) > offset + 4 and parts[offset + 2] == "resolve" and method in ("GET", "HEAD"):
        return "resolve"
    return "unknown"
