"""`plurel-ray runs verify ROOT`: check every shard and database of an output against the
hashes its index and manifests record; with `repair`, drop what is bad and make it again.

    report = verify_run("data/run1")            # read-only: problems, one line each
    report = verify_run("data/run1", repair=True, use_ray=False)

Packed: each shard the index names is read once, front to back: its length and sha256
against its manifest, every member's span against the manifest, every database's index
row against its member. A shard no index row names is an orphan. Folders: each complete
database's tables against the content hash in its plurel.json. Failed seeds are listed
as missing. Repair takes the output's lease, removes bad shards (all their databases are
made again) and bad folders, drops their index rows, then generates every bad, missing
or failed seed with the settings in `_generation.json`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from plurel_ray.errors import DatasetError, PlurelError
from plurel_ray.pipeline.index import COMPLETE, INDEX_PARTS, part_names, read_all, table_bytes
from plurel_ray.pipeline.lease import OutputLease, read_holder
from plurel_ray.pipeline.output import INDEX_FILE, SHARDS_DIR, OutputRoot, one_line
from plurel_ray.pipeline.packed import manifest_name, read_manifest, shard_names
from plurel_ray.pipeline.seed_worker import STATUS_FAILED

_CHUNK = 1 << 20


@dataclass
class VerifyReport:
    """What `verify_run` found (and did)."""

    out: str
    shards: int = 0
    databases: int = 0
    problems: list[str] = field(default_factory=list)  # one line each
    bad_seeds: set[int] = field(default_factory=set)  # corrupt or missing: to make again
    bad_shards: set[str] = field(default_factory=set)  # `shards/<id>.tar`
    failed_seeds: set[int] = field(default_factory=set)
    orphans: list[str] = field(default_factory=list)
    redone: int = 0
    writer: str | None = None  # a run holding the output's lease while it was checked

    @property
    def ok(self) -> bool:
        return not (self.problems or self.failed_seeds)

    def lines(self) -> list[str]:
        lines = [f"{self.out}: {self.databases} databases in "
                 + (f"{self.shards} shards" if self.shards else "folders")
                 + f" checked; {len(self.problems)} problem(s), {len(self.bad_seeds)} bad or "
                 f"missing database(s), {len(self.failed_seeds)} failed seed(s)"]  # fmt: skip
        if self.writer is not None:
            lines.append(f"note: {self.writer} holds the output: shards it is publishing "
                         "show as orphans until it indexes them")  # fmt: skip
        lines += [f"problem: {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"... and {len(self.problems) - 20} more")
        if self.redone:
            lines.append(f"repaired: {self.redone} database(s) made again")
        return lines


def _hash_shard(root: OutputRoot, shard: str, manifest, report: VerifyReport) -> set[str]:
    """Read shard file `shard` once; return the names of its members that are bad."""
    path = root.join(shard)
    spans = sorted(manifest.members, key=lambda m: m.offset)
    bad: set[str] = set()
    whole = hashlib.sha256()
    size = 0
    try:
        with root.fs.open_input_stream(path) as src:
            for member in spans:
                if size < member.offset:
                    chunk = src.read(member.offset - size)
                    whole.update(chunk)
                    size += len(chunk)
                span, left = hashlib.sha256(), member.length
                while left and (chunk := src.read(min(_CHUNK, left))):
                    span.update(chunk)
                    whole.update(chunk)
                    left -= len(chunk)
                    size += len(chunk)
                if left or span.hexdigest() != member.sha256:
                    bad.add(member.name)
            while chunk := src.read(_CHUNK):
                whole.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        report.problems.append(f"{shard}: missing (its databases are in the index)")
        return {m.name for m in manifest.members}
    if size != manifest.bytes:
        report.problems.append(f"{shard}: {size:,} bytes, its manifest says {manifest.bytes:,} "
                               "(truncated)")  # fmt: skip
    elif whole.hexdigest() != manifest.sha256:
        report.problems.append(f"{shard}: sha256 differs from its manifest (corrupt)")
    for name in sorted(bad):
        report.problems.append(f"{shard}: {name} does not match its recorded sha256")
    return bad


def _check_packed(root: OutputRoot, rows: list[dict], report: VerifyReport) -> None:
    by_shard: dict[str, list[dict]] = {}
    for row in rows:
        by_shard.setdefault(row["shard"], []).append(row)
    for shard, shard_rows in sorted(by_shard.items()):
        report.shards += 1
        try:
            manifest = read_manifest(root, shard.rsplit("/", 1)[-1])
        except DatasetError as err:
            report.problems.append(one_line(err))
            report.bad_shards.add(shard)
            report.bad_seeds.update(r["seed"] for r in shard_rows)
            continue
        bad = _hash_shard(root, shard, manifest, report)
        for row in shard_rows:
            member = manifest.member(row["db_name"])
            recorded = (row["offset"], row["length"], row["sha256"])
            if member is None or (member.offset, member.length, member.sha256) != recorded:
                report.problems.append(f"{shard}: {row['db_name']} differs from its index row")
                bad.add(row["db_name"])
        if bad:
            report.bad_shards.add(shard)
            # A damaged shard is made again whole: every database in it.
            report.bad_seeds.update(r["seed"] for r in shard_rows)
    indexed = set(by_shard)
    report.orphans = [s for s in shard_names(root) if f"{SHARDS_DIR}/{s}" not in indexed]
    report.problems += [f"{SHARDS_DIR}/{s}: no index row names it (orphan of a killed run)"
                        for s in report.orphans]  # fmt: skip


def _check_folder(root: OutputRoot, row: dict, report: VerifyReport) -> None:
    name = row["db_name"]
    info = root.read_info(name)
    if info is None:
        report.problems.append(f"{name}: missing or without plurel.json")
        report.bad_seeds.add(row["seed"])
        return
    digest = hashlib.sha256()
    try:
        for table in sorted(info.get("rows", {})):
            with root.fs.open_input_stream(root.join(name, "db", f"{table}.parquet")) as src:
                data = src.read()
            digest.update(f"{table}\n{len(data)}\n".encode())
            digest.update(data)
    except OSError as err:
        report.problems.append(f"{name}: {one_line(err)}")
        report.bad_seeds.add(row["seed"])
        return
    if digest.hexdigest() != info.get("content_hash"):
        report.problems.append(f"{name}: db/*.parquet do not match its content_hash")
        report.bad_seeds.add(row["seed"])


def verify_run(root: str | OutputRoot, *, repair: bool = False, use_ray: bool = False,
               progress: bool = False) -> VerifyReport:  # fmt: skip
    """Check (and with `repair`, mend) the output at `root`; see the module docstring.

    Args:
        root: the output root (local path or URI).
        repair: remove what is bad and generate the bad, missing and failed seeds again.
        use_ray: make them on Ray (else in this process).
        progress: progress bars while making them.

    Raises:
        DatasetError: no index at `root`, or (repair) another run holds the output.
    """
    root = root if isinstance(root, OutputRoot) else OutputRoot(root)
    has_index = root.fs.get_file_info(root.join(INDEX_FILE)).type == pafs.FileType.File
    if not has_index and not part_names(root):
        raise DatasetError(f"{root.uri}: no {INDEX_FILE} or {INDEX_PARTS}/; not a generated run")
    index = read_all(root)
    report = VerifyReport(out=root.uri)
    try:
        holder = read_holder(root)
    except ValueError:  # a lease being written: some run holds it
        report.writer = "a run"
    else:
        report.writer = None if holder is None else f"run {holder.run_id} (host {holder.host})"
    status = index["status"].to_numpy(zero_copy_only=False)
    report.failed_seeds = set(index["seed"].to_numpy()[status == STATUS_FAILED].tolist())
    complete = index.filter(pc.is_in(index["status"], value_set=pa.array(COMPLETE))).to_pylist()
    report.databases = len(complete)
    _check_packed(root, [r for r in complete if r["shard"] is not None], report)
    for row in complete:
        if row["shard"] is None:
            _check_folder(root, row, report)
    if repair and (report.bad_seeds or report.failed_seeds or report.orphans):
        _repair(root, report, use_ray=use_ray, progress=progress)
    return report


def _repair(root: OutputRoot, report: VerifyReport, *, use_ray: bool, progress: bool) -> None:
    from plurel_ray.config import Config
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation
    from plurel_ray.pipeline.run_record import RECORD_FILE, read_record

    try:
        record = read_record(root)
        if record is None:
            raise DatasetError(f"no {RECORD_FILE}")
        config = Config.from_dict(record["config"])
    except (OSError, KeyError, PlurelError) as err:
        raise DatasetError(f"{root.uri}: cannot repair without a readable {RECORD_FILE} "
                           f"({one_line(err)})") from None  # fmt: skip
    redo = sorted(report.bad_seeds | report.failed_seeds)
    with OutputLease(root):
        index = read_all(root)
        keep = pc.invert(pc.is_in(index["seed"], value_set=pa.array(redo, pa.int64())))
        root.write_bytes(INDEX_FILE, table_bytes(index.filter(keep).sort_by("seed")))
        for name in part_names(root):  # merged into the file just written
            root.fs.delete_file(root.join(INDEX_PARTS, name))
        for shard in sorted(report.bad_shards) + [f"{SHARDS_DIR}/{s}" for s in report.orphans]:
            for path in (shard, manifest_name(shard.rsplit("/", 1)[-1])):
                if root.fs.get_file_info(root.join(path)).type == pafs.FileType.File:
                    root.fs.delete_file(root.join(path))
        for seed in redo:
            root.remove(f"plurel-{seed}")
    if redo:
        request = GenerationRequest(seeds=redo, out=root.location, config=config,
                                    layout=record["layout"],
                                    preprocess=bool(record.get("preprocess")),
                                    context_rules=record.get("context_rules") or "reference",
                                    write_tasks=bool(record.get("write_tasks")))  # fmt: skip
        summary = run_generation(request, use_ray=use_ray, progress=progress)
        report.redone = summary.generated
