"""The packed layout in one process: shards, their manifests, the index parts, resume,
reading one database back, and `runs verify` on damaged outputs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from plurel_ray.cli import main
from plurel_ray.config import Config
from plurel_ray.dataset.relbench_io import read_dataset_info, read_tables
from plurel_ray.dataset.shards import ShardManifest, ShardMember, ShardWriter, extract_member
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline import seed_worker
from plurel_ray.pipeline.generate import GenerationRequest, run_generation
from plurel_ray.pipeline.output import OutputRoot
from plurel_ray.pipeline.packed_read import open_database, open_store
from plurel_ray.pipeline.verify import verify_run


def _packed(out: Path, seeds, config: Config, **options):
    options.setdefault("dbs_per_shard", 2)
    request = GenerationRequest(seeds=seeds, out=str(out), config=config, layout="packed",
                                **options)  # fmt: skip
    return run_generation(request, use_ray=False, progress=False)


def _index(out: Path) -> list[dict]:
    return pq.read_table(out / "_index.parquet").sort_by("seed").to_pylist()


def test_a_shard_is_plain_tar_with_exact_spans_and_the_same_bytes_every_time(tmp_path):
    folder = tmp_path / "plurel-1"
    (folder / "db").mkdir(parents=True)
    (folder / "db" / "t.parquet").write_bytes(b"x" * 700)
    (folder / "plurel.json").write_text("{}")
    manifests = []
    for name in ("a.tar", "b.tar"):
        writer = ShardWriter(tmp_path / name)
        writer.add_folder(folder, "plurel-1", "database")
        writer.add_folder(folder, "plurel-2", "database")
        manifests.append(writer.close())
    assert manifests[0].sha256 == manifests[1].sha256  # normalised headers, sorted files
    with tarfile.open(tmp_path / "a.tar") as tar:  # what `tar -x` and WebDataset read
        assert "plurel-2/db/t.parquet" in tar.getnames()
    data = (tmp_path / "a.tar").read_bytes()
    second = manifests[0].member("plurel-2")
    out = extract_member(data[second.offset: second.offset + second.length], second,
                         tmp_path / "x", "a.tar")  # fmt: skip
    assert (out / "db" / "t.parquet").read_bytes() == b"x" * 700
    again = ShardManifest.from_json(manifests[0].to_json(), "a.json")
    assert again == manifests[0]


def _span_with(member_name: str, kind=tarfile.REGTYPE) -> tuple[bytes, ShardMember]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(member_name)
        info.type = kind
        info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        info.size = 0 if kind == tarfile.SYMTYPE else 3
        tar.addfile(info, None if kind == tarfile.SYMTYPE else io.BytesIO(b"bad"))
    data = buffer.getvalue()
    import hashlib

    return data, ShardMember(
        "plurel-1", "database", 0, len(data), hashlib.sha256(data).hexdigest(), 1
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [("plurel-1/../../evil", tarfile.REGTYPE), ("/etc/evil", tarfile.REGTYPE),
     ("other/file", tarfile.REGTYPE), ("plurel-1/link", tarfile.SYMTYPE)],
)  # fmt: skip
def test_a_hostile_span_is_refused_and_nothing_is_written(tmp_path, name, kind):
    data, member = _span_with(name, kind)
    with pytest.raises(DatasetError, match="refused member"):
        extract_member(data, member, tmp_path, "evil.tar")
    assert list(tmp_path.iterdir()) == []


def test_a_packed_run_writes_shards_manifests_and_an_index(tmp_path, small_config):
    out = tmp_path / "out"
    summary = _packed(out, range(5), small_config, preprocess=True)
    assert summary.generated == 5
    shards = sorted(p.name for p in (out / "shards").iterdir())
    assert len(shards) == 6 and sum(s.endswith(".tar") for s in shards) == 3
    assert sorted(p.name for p in out.iterdir()) == ["_generation.json", "_index.parquet", "shards"]
    rows = _index(out)
    assert [r["seed"] for r in rows] == list(range(5))
    assert all(r["shard"] and r["sha256"] and r["store"] == f"stores/{r['db_name']}" for r in rows)
    # one database back: the same tables as the folders layout writes for its seed
    folders = tmp_path / "folders"
    run_generation(GenerationRequest(seeds=[3], out=str(folders), config=small_config),
                   use_ray=False, progress=False)  # fmt: skip
    back = open_database(str(out), "plurel-3", tmp_path / "back")
    assert read_dataset_info(back)["content_hash"] == read_dataset_info(
        folders / "plurel-3")["content_hash"]  # fmt: skip
    read_tables(back, verify=True)
    store = open_store(str(out), "plurel-3", tmp_path / "stores")
    assert json.loads((store / "meta.json").read_text())["tasks"]


def test_a_rerun_reads_the_index_and_makes_only_what_is_missing(
    tmp_path, small_config, monkeypatch
):
    out = tmp_path / "out"
    real = seed_worker.generate_database

    def interrupted_at_seed_4(seed, *args, **kwargs):
        if seed == 4:
            raise KeyboardInterrupt
        return real(seed, *args, **kwargs)

    monkeypatch.setattr(seed_worker, "generate_database", interrupted_at_seed_4)
    with pytest.raises(KeyboardInterrupt):
        _packed(out, range(8), small_config)
    # shards of seeds 0-1 and 2-3 are indexed (parts); the one of 4-5 never was
    parts = [pq.read_table(p) for p in (out / "_index").iterdir()]
    assert sorted(s for part in parts for s in part["seed"].to_pylist()) == [0, 1, 2, 3]
    monkeypatch.setattr(seed_worker, "generate_database", real)
    summary = _packed(out, range(8), small_config)
    assert (summary.generated, summary.skipped) == (4, 4)
    assert [r["seed"] for r in _index(out)] == list(range(8))
    assert not (out / "_index").exists() and not (out / ".runs").exists()
    assert verify_run(str(out)).ok


def test_a_shard_never_indexed_is_removed_by_the_next_run(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    (out / "shards" / "dead-000000.tar").write_bytes(b"left by a killed run")
    (out / "shards" / "dead-000000.json").write_text("{}")
    assert verify_run(str(out)).orphans == ["dead-000000.tar"]
    summary = _packed(out, range(3), small_config)
    assert any("removed 1 shard(s)" in notice for notice in summary.notices)
    assert not list((out / "shards").glob("dead-*"))


def test_a_truncated_shard_is_named_refused_and_repaired(tmp_path, small_config, capsys):
    out = tmp_path / "out"
    _packed(out, range(4), small_config)
    rows = _index(out)
    shard = out / rows[3]["shard"]  # the shard of seeds 2 and 3
    other = {p: p.read_bytes() for p in (out / "shards").iterdir() if p.stem != shard.stem}
    shard.write_bytes(shard.read_bytes()[: rows[3]["offset"] + 100])
    report = verify_run(str(out))
    assert not report.ok and report.bad_seeds == {2, 3}
    assert any("truncated" in p for p in report.problems)
    with pytest.raises(DatasetError, match="cut short") as err:
        open_database(str(out), "plurel-3", tmp_path / "back")
    assert "\n" not in str(err.value) and not (tmp_path / "back" / "plurel-3").exists()
    assert {p: p.read_bytes() for p in other} == other  # nothing else touched
    assert main(["runs", "verify", str(out)]) == 1
    assert "truncated" in capsys.readouterr().out
    assert main(["runs", "verify", str(out), "--repair", "--no-progress"]) == 0
    assert "repaired: 2 database(s)" in capsys.readouterr().out
    read_tables(open_database(str(out), "plurel-3", tmp_path / "again"), verify=True)


def test_a_shard_whose_bytes_changed_is_refused(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    (row,) = [r for r in _index(out) if r["seed"] == 1]
    shard = out / row["shard"]
    data = bytearray(shard.read_bytes())
    data[row["offset"] + 1024] ^= 0xFF  # a byte of the database's first file
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="does not match its recorded sha256"):
        open_database(str(out), "plurel-1", tmp_path / "back")
    assert verify_run(str(out)).bad_seeds == {0, 1}  # a damaged shard is made again whole


def test_a_deleted_shard_is_one_line_naming_it_and_repaired(tmp_path, small_config, capsys):
    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    (row,) = [r for r in _index(out) if r["seed"] == 1]
    (out / row["shard"]).unlink()  # its manifest and the index still name it
    with pytest.raises(DatasetError, match="missing, though its manifest") as err:
        open_database(str(out), "plurel-1", tmp_path / "back")
    assert "\n" not in str(err.value) and str(out / row["shard"]) in str(err.value)
    assert not verify_run(str(out)).ok
    assert main(["runs", "verify", str(out), "--repair", "--no-progress"]) == 0
    capsys.readouterr()
    read_tables(open_database(str(out), "plurel-1", tmp_path / "again"), verify=True)


def test_repair_without_the_run_record_is_one_line_and_changes_nothing(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    (row,) = [r for r in _index(out) if r["seed"] == 1]
    (out / row["shard"]).unlink()
    (out / "_generation.json").unlink()
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(DatasetError, match=r"cannot repair without a readable _generation\.json"):
        verify_run(str(out), repair=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_folders_database_edited_after_the_run_is_found_by_verify(tmp_path, small_config):
    out = tmp_path / "out"
    run_generation(GenerationRequest(seeds=range(2), out=str(out), config=small_config),
                   use_ray=False, progress=False)  # fmt: skip
    table = next((out / "plurel-1" / "db").iterdir())
    table.write_bytes(table.read_bytes() + b"!")
    report = verify_run(str(out))
    assert report.bad_seeds == {1} and "content_hash" in report.problems[0]


def test_a_run_with_other_settings_is_refused_before_it_starts(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    with pytest.raises(DatasetError, match="layout 'packed', this run has 'folders'"):
        run_generation(GenerationRequest(seeds=range(2), out=str(out), config=small_config),
                       use_ray=False, progress=False)  # fmt: skip
    with pytest.raises(DatasetError, match="config_hash"):
        _packed(out, range(2), Config())
    with pytest.raises(ConfigError, match="--embed"):
        GenerationRequest(seeds=[0], out=str(out), layout="packed", embed=True)


def test_an_unknown_database_name_is_one_line(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(1), small_config)
    for name, says in (("plurel-9", "no complete database plurel-9"),
                       ("../../etc", "expected plurel-<seed>")):  # fmt: skip
        with pytest.raises(DatasetError, match=says):
            open_database(OutputRoot(str(out)), name, tmp_path / "back")


def test_shards_spread_over_the_actors_but_stay_large_for_the_hub():
    from plurel_ray.pipeline.packed import DBS_PER_SHARD, shard_sizes

    assert shard_sizes(1024, actors=2, dbs_per_shard=None) == 256  # 2 shards per actor
    assert shard_sizes(10**6, actors=2, dbs_per_shard=None) == DBS_PER_SHARD
    assert shard_sizes(10**6, actors=16_000, dbs_per_shard=None) == 100  # ≤ MAX_SHARDS
    assert shard_sizes(10**5, actors=16_000, dbs_per_shard=None) == 10
    assert shard_sizes(10**6, actors=16_000, dbs_per_shard=None, for_hub=True) == 256
    assert shard_sizes(10, actors=16_000, dbs_per_shard=7, for_hub=True) == 7  # as asked


def test_verify_says_when_a_run_holds_the_output(tmp_path, small_config):
    from plurel_ray.pipeline.lease import OutputLease

    out = tmp_path / "out"
    _packed(out, range(2), small_config)
    assert verify_run(str(out)).writer is None
    with OutputLease(OutputRoot(str(out))) as lease:
        report = verify_run(str(out))
        assert report.ok and lease.run_id in report.writer
        assert any("holds the output" in line for line in report.lines())


def test_an_unreadable_packed_index_is_rebuilt_from_the_shard_manifests(tmp_path, small_config):
    out = tmp_path / "out"
    _packed(out, range(3), small_config)
    before = {r["seed"]: r for r in _index(out)}
    (out / "_index.parquet").write_bytes(b"PAR1 not really")
    summary = _packed(out, range(4), small_config)
    assert any("rebuilt from 3 databases" in notice for notice in summary.notices)
    assert (summary.generated, summary.skipped) == (1, 3)  # nothing made twice
    rows = {r["seed"]: r for r in _index(out)}
    for seed in range(3):  # the spans come back from the manifests
        assert rows[seed]["status"] == "skipped"
        keys = ("shard", "offset", "length", "sha256")
        assert [rows[seed][k] for k in keys] == [before[seed][k] for k in keys]
    assert verify_run(str(out)).ok
