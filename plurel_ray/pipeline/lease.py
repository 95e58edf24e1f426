"""One writer per output root: the lease a generation run holds while it writes there.

    with OutputLease(root) as lease:   # refuses with a DatasetError while another run writes
        ...                            # temporaries under root.run_dir(lease.run_id)

The lease is the file `<root>/_lease.json` (run id, host, pid, heartbeat time). A run
creates it before writing anything: locally with an exclusive create, so of two runs
starting at once exactly one gets it; on object stores, which offer no conditional write
through pyarrow, by writing it, waiting `SETTLE_S` and reading it back (the last writer
wins, the others see its run id and refuse). A thread refreshes the heartbeat every
`HEARTBEAT_S`. A lease is stale, and the next run takes it over with a message, when its
heartbeat is older than `STALE_AFTER_S` or its process is gone on this same host. Holding
the lease is what entitles a run to remove the temporaries of earlier runs, and workers
check it before every publish, so a run that lost its lease (paused past the timeout)
publishes nothing more.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.output import OutputRoot, one_line

LEASE_FILE = "_lease.json"
HEARTBEAT_S = 10.0
# Twelve missed heartbeats: long enough for a loaded driver or a slow object store, short
# enough that a run killed on another host blocks its output for two minutes at most.
STALE_AFTER_S = 120.0
# Object stores only: how long a writer waits before reading its lease back. A racing
# writer that saw no lease writes its own within milliseconds, so it lands before this.
SETTLE_S = 1.0


@dataclass(frozen=True)
class LeaseHolder:
    """What `_lease.json` says about the run that holds an output."""

    run_id: str
    host: str
    pid: int
    heartbeat: float  # seconds since the Unix epoch

    def describe(self, now: float) -> str:
        return (f"run {self.run_id} (host {self.host}, pid {self.pid}, "
                f"heartbeat {max(0.0, now - self.heartbeat):.0f} s ago)")  # fmt: skip

    def stale_reason(self, now: float, stale_after_s: float) -> str | None:
        """Why this lease is stale, or None while its run may still be writing."""
        if self.host == socket.gethostname() and not _process_alive(self.pid):
            return f"its process {self.pid} on {self.host} is gone"
        if now - self.heartbeat > stale_after_s:
            return f"no heartbeat for {now - self.heartbeat:.0f} s (> {stale_after_s:.0f} s)"
        return None


def _process_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists


def _read_at(fs: pafs.FileSystem, path: str) -> LeaseHolder | None:
    """The lease file at `path`; None when there is none.

    Raises:
        ValueError: the file exists but is not a lease (empty or cut short).
    """
    try:
        with fs.open_input_stream(path) as src:
            data = json.loads(src.read())
        return LeaseHolder(str(data["run_id"]), str(data["host"]), int(data["pid"]),
                           float(data["heartbeat"]))  # fmt: skip
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"unreadable lease {path}: {err!r}") from err


def _read_quietly(fs: pafs.FileSystem, path: str) -> LeaseHolder | None:
    """The lease file at `path`; None when it is missing or unreadable."""
    try:
        return _read_at(fs, path)
    except ValueError:
        return None


def read_holder(root: OutputRoot) -> LeaseHolder | None:
    """The holder named by the lease of `root`; None when there is no lease file.

    Raises:
        ValueError: the lease file exists but is not a lease (empty or cut short).
    """
    return _read_at(root.fs, root.join(LEASE_FILE))


def ensure_holder(root: OutputRoot, run_id: str) -> None:
    """Raise unless run `run_id` still holds the lease of `root` (checked before a publish).

    Raises:
        DatasetError: another run took the lease over, or it is gone.
    """
    holder = _read_quietly(root.fs, root.join(LEASE_FILE))
    if holder is None or holder.run_id != run_id:
        taken = "no run" if holder is None else holder.describe(time.time())
        raise DatasetError(
            f"output {root.uri!r}: run {run_id} lost its lease (now held by {taken}); "
            "nothing more is published by it"
        )


class OutputLease:
    """The lease of one run on one output root; a context manager.

    Args:
        root: the output root.
        stale_after_s: a lease whose heartbeat is older than this is taken over.
        heartbeat_s: how often the holder refreshes its heartbeat.
    """

    def __init__(
        self,
        root: OutputRoot,
        *,
        stale_after_s: float = STALE_AFTER_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.root = root
        self.run_id = uuid.uuid4().hex[:12]
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.notices: list[str] = []  # one line each: a takeover, stale temporaries removed
        self.lost: str | None = None  # why the heartbeat found the lease gone
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._path = root.join(LEASE_FILE)

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _record(self) -> bytes:
        holder = LeaseHolder(self.run_id, socket.gethostname(), os.getpid(), time.time())
        return json.dumps(asdict(holder)).encode()

    def acquire(self) -> None:
        """Take the lease (a stale one is taken over), then remove what earlier runs left
        in the root's run folder, and start the heartbeat.

        Raises:
            DatasetError: another live run holds the lease; the message names it.
        """
        self.root.fs.create_dir(self.root.path, recursive=True)
        if self.root.is_local:
            self._acquire_local()
        else:
            self._acquire_remote()
        removed = self.root.remove_other_runs(self.run_id)
        if removed:
            self.notices.append(
                f"removed {removed} temporary folder(s) of earlier killed runs in {self.root.uri}"
            )
        self._thread = threading.Thread(target=self._beat, name="plurel-lease", daemon=True)
        self._thread.start()

    def _refuse(self, holder: LeaseHolder | None) -> DatasetError:
        who = (
            "a run whose lease is still being written"
            if holder is None
            else holder.describe(time.time())
        )
        return DatasetError(
            f"output {self.root.uri!r} is being written by {who}; wait for it to end or "
            f"use another --out (a killed run's lease is taken over after "
            f"{self.stale_after_s:.0f} s, or at once on its own host)"
        )

    def _judge(self) -> LeaseHolder | None:
        """The current holder when it is stale (noting the takeover); raises when it is live."""
        now = time.time()
        try:
            holder = read_holder(self.root)
        except ValueError:
            # Created but not yet written, or cut short by a crash: judge it by its age.
            info = self.root.fs.get_file_info(self._path)
            if info.mtime is not None and now - info.mtime.timestamp() > self.stale_after_s:
                self.notices.append(f"took over the unreadable lease of {self.root.uri}")
                return None
            raise self._refuse(None) from None
        if holder is None:
            return None
        reason = holder.stale_reason(now, self.stale_after_s)
        if reason is None:
            raise self._refuse(holder)
        self.notices.append(
            f"took over the lease of {self.root.uri} from {holder.describe(now)}: {reason}"
        )
        return holder

    def _acquire_local(self) -> None:
        for _ in range(5):
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                stale = self._judge()
                # Move the stale lease aside: of several runs taking it over, one rename
                # wins; the others find no file and race for the exclusive create again.
                aside = self.root.join(f"{LEASE_FILE}.stale-{self.run_id}")
                try:
                    os.rename(self._path, aside)
                except FileNotFoundError:
                    continue
                moved = _read_quietly(self.root.fs, aside)
                if moved is not None and moved != stale:
                    # A run wrote or refreshed the lease after it was judged: it is live.
                    # Put it back (unless yet another run holds the name by now).
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, self._path)
                    os.unlink(aside)
                    raise self._refuse(moved) from None
                os.unlink(aside)
                continue
            with os.fdopen(fd, "wb") as out:
                out.write(self._record())
                out.flush()
                os.fsync(out.fileno())
            return
        raise self._refuse(_read_quietly(self.root.fs, self._path))

    def _acquire_remote(self) -> None:
        if self.root.fs.get_file_info(self._path).type != pafs.FileType.NotFound:
            self._judge()
        self._write()
        time.sleep(SETTLE_S)
        holder = _read_quietly(self.root.fs, self._path)
        if holder is None or holder.run_id != self.run_id:
            raise self._refuse(holder)

    def _write(self) -> None:
        """(Over)write the lease with a fresh heartbeat: atomically by rename where local."""
        if self.root.is_local:
            tmp = self.root.run_dir(self.run_id) / "lease.json"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(self._record())
            os.replace(tmp, self._path)
        else:
            # Written whole under its own name, then moved: a reader sees one run's complete
            # record, never two runs' writes interleaved (object PUTs are whole anyway; a
            # filesystem reached through pyarrow is not).
            tmp = self.root.join(f"{LEASE_FILE}.{self.run_id}.tmp")
            with self.root.fs.open_output_stream(tmp) as out:
                out.write(self._record())
            self.root.fs.move(tmp, self._path)

    def _beat(self) -> None:
        last_ok = time.time()
        while not self._stop.wait(self.heartbeat_s):
            try:
                holder = read_holder(self.root)
                if holder is None or holder.run_id != self.run_id:
                    self.lost = "taken over by " + (
                        "no run" if holder is None else holder.describe(time.time())
                    )
                    return
                self._write()
                last_ok = time.time()
            except (OSError, ValueError) as err:
                # A transient object-store error: keep trying until the lease would be stale.
                if time.time() - last_ok > self.stale_after_s:
                    self.lost = f"heartbeat failing for {self.stale_after_s:.0f} s: {one_line(err)}"
                    return

    def raise_if_lost(self) -> None:
        """Raise when the heartbeat found that another run took this lease over.

        Raises:
            DatasetError: the lease is lost; the message names the output and why.
        """
        if self.lost is not None:
            raise DatasetError(f"output {self.root.uri!r}: run {self.run_id} lost its lease "
                               f"({self.lost}); stopped")  # fmt: skip

    def release(self) -> None:
        """Stop the heartbeat, remove this run's temporaries and, if the lease is still
        ours, those a killed run's actors made after this run took over (they outlive
        their driver by seconds), then the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = _read_quietly(self.root.fs, self._path)
        if holder is not None and holder.run_id == self.run_id:
            self.root.remove_other_runs(self.run_id)
        self.root.remove_run_dir(self.run_id)
        if holder is not None and holder.run_id == self.run_id:
            self.root.fs.delete_file(self._path)
