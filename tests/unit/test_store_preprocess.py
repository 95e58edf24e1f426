"""Preprocessing dataset folders into node stores: contents, statistics, edges, meta.json,
errors and atomic replacement, on a generated database and on real-data-shaped Parquet."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from realdata import AUTOCOMPLETE_TASK, EXPECTED, FORECAST_TASK, write_realdata_folder

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import read_dataset_info, read_tables, write_dataset
from plurel_ray.errors import DatasetError, StoreError
from plurel_ray.store.preprocessing import META_FILE, preprocess
from plurel_ray.synth.database import generate_database

# file -> (tag, element code, numpy dtype), as docs/store-format.md lists them.
FILES = {
    "node_table.bin": ("NTAB", 2, "<u4"), "node_time.bin": ("NTIM", 5, "<i8"),
    "node_cells.bin": ("NCEL", 4, "<u8"), "cell_column.bin": ("CCOL", 2, "<u4"),
    "cell_type.bin": ("CTYP", 1, "u1"), "cell_value.bin": ("CVAL", 6, "<f4"),
    "cell_text.bin": ("CTXT", 3, "<i4"), "f2p_offsets.bin": ("FOFF", 4, "<u8"),
    "f2p_nodes.bin": ("FNOD", 2, "<u4"), "p2f_offsets.bin": ("POFF", 4, "<u8"),
    "p2f_nodes.bin": ("PNOD", 2, "<u4"), "p2f_time.bin": ("PTIM", 5, "<i8"),
    "task_p2f_offsets.bin": ("TPOF", 4, "<u8"), "task_p2f_nodes.bin": ("TPND", 2, "<u4"),
    "task_p2f_table.bin": ("TPTB", 2, "<u4"), "task_p2f_time.bin": ("TPTM", 5, "<i8"),
    "table_nodes.bin": ("TNOD", 4, "<u8"), "table_name.bin": ("TNAM", 2, "<u4"),
    "table_kind.bin": ("TKND", 1, "u1"), "column_name.bin": ("KNAM", 2, "<u4"),
    "column_table.bin": ("KTAB", 2, "<u4"), "vocab_offsets.bin": ("VOFF", 4, "<u8"),
    "vocab_bytes.bin": ("VBYT", 1, "u1"),
}  # fmt: skip
NO_TIME = np.iinfo(np.int64).min
SEM = {"number": 0, "text": 1, "datetime": 2, "boolean": 3}


def load(store: Path) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((store / META_FILE).read_text())
    return meta, {f: np.fromfile(store / f, dtype=d, offset=64) for f, (_, _, d) in FILES.items()}


def vocab(a: dict[str, np.ndarray]) -> list[str]:
    off, data = a["vocab_offsets.bin"], a["vocab_bytes.bin"].tobytes()
    return [data[off[i] : off[i + 1]].decode() for i in range(len(off) - 1)]


def row(offsets: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return values[offsets[n] : offsets[n + 1]]


def seconds(values: pd.Series) -> np.ndarray:
    return values.to_numpy("datetime64[ns]").astype(np.int64) / 1e9


def only_store(out: Path) -> Path:
    """The single entry of `out`: no temporary or replaced directory is left behind."""
    entries = list(out.iterdir())
    assert len(entries) == 1, entries
    return entries[0]


# --- a generated database -------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(small_config, tmp_path_factory):
    db = generate_database(3, small_config)
    root = tmp_path_factory.mktemp("gen")
    folder = write_dataset(db, root / "plurel-3", small_config)
    # The statistics tests below pin the strict rules (training rows, booleans 0/1);
    # tests/unit/test_context_rules.py holds both settings' values side by side.
    store = preprocess(folder, root / "stores", context_rules="strict")
    meta, arrays = load(store)
    return db, read_tables(folder), folder, meta, arrays


def test_every_array_file_matches_its_header_and_meta_json(generated):
    _, _, folder, meta, arrays = generated
    store = Path(meta["source"]["path"]).parent / "stores" / "plurel-3"
    assert meta["source"]["path"] == str(folder.resolve())
    assert set(meta["files"]) == set(FILES)
    for name, (tag, code, dtype) in FILES.items():
        data = (store / name).read_bytes()
        assert data[:8] == b"PLRLSTOR" and struct.unpack_from("<I", data, 8)[0] == 1
        assert data[16:20].decode() == tag and data[20] == code
        count, payload, crc = struct.unpack_from("<QQI", data, 24)
        assert count == len(arrays[name]) and payload == count * np.dtype(dtype).itemsize
        assert len(data) == 64 + payload == meta["files"][name]["bytes"]
        assert crc == zlib.crc32(data[64:]) == meta["files"][name]["crc32"]
    counts = meta["counts"]
    assert counts["nodes"] == len(arrays["node_table.bin"]) == len(arrays["node_time.bin"])
    assert counts["cells"] == len(arrays["cell_column.bin"]) == arrays["node_cells.bin"][-1]
    assert counts["f2p_edges"] == len(arrays["f2p_nodes.bin"])
    assert counts["p2f_edges"] == len(arrays["p2f_nodes.bin"])
    assert counts["vocab"] == len(vocab(arrays))
    assert counts["columns"] == len(meta["columns"]) == len(arrays["column_name.bin"])


def test_meta_json_describes_tables_columns_tasks_and_source(generated):
    db, _, folder, meta, arrays = generated
    assert meta["format"] == "plurel-ray node store" and meta["format_version"] == 1
    assert list(meta) == [
        "format", "format_version", "writer", "context_rules", "source", "counts", "datetime",
        "tables", "columns", "skipped_columns", "tasks", "files", "warnings",
    ]  # fmt: skip
    assert meta["context_rules"] == "strict"
    assert meta["source"]["name"] == "plurel-3" and meta["source"]["seed"] == 3
    assert {"content_hash", "config_hash", "manifest_sha256"} <= meta["source"].keys()
    offsets = arrays["table_nodes.bin"]
    for t, (entry, spec) in enumerate(zip(meta["tables"], db.schema.tables, strict=True)):
        assert (entry["name"], entry["kind"], entry["pkey"]) == (spec.name, "db", spec.pkey)
        assert entry["fkeys"] == [list(fk) for fk in spec.fkeys]
        assert entry["node_offset"] == offsets[t]
        assert entry["num_nodes"] == offsets[t + 1] - offsets[t] == len(db.tables[spec.name])
        assert entry["dangling_fkeys"] == 0
    names = vocab(arrays)
    assert [names[i] for i in arrays["table_name.bin"]] == [s.name for s in db.schema.tables]
    for column in meta["columns"]:
        expected = f"{column['name']} of {column['table']}"
        assert names[column["vocab_id"]] == expected
        assert names[arrays["column_name.bin"][column["id"]]] == expected
    assert len(meta["tasks"]) == len(read_dataset_info(folder)["autocomplete_tasks"]) > 0
    for task in meta["tasks"]:
        assert task["kind"] == "autocomplete"
        assert task["tables"] == dict.fromkeys(("train", "val", "test"), task["entity_table"])


def test_every_non_null_cell_appears_once_with_its_standardised_value(generated):
    db, tables, _, meta, a = generated
    val = db.timeline.val_timestamp
    columns = {(c["table"], c["name"]): c for c in meta["columns"]}
    cell_node = np.repeat(
        np.arange(meta["counts"]["nodes"]), np.diff(a["node_cells.bin"]).astype(int)
    )
    for t, spec in enumerate(db.schema.tables):
        df, first = tables[spec.name], int(a["table_nodes.bin"][t])
        keys = {spec.pkey, *(col for col, _ in spec.fkeys)}
        train = (df[spec.time_col] <= val) | df[spec.time_col].isna() if spec.time_col else True
        for name in (c for c in df.columns if c not in keys):
            column = columns[(spec.name, name)]
            picked = a["cell_column.bin"] == column["id"]
            assert (a["cell_type.bin"][picked] == SEM[column["sem_type"]]).all()
            values = df[name]
            if column["sem_type"] == "datetime":
                values = pd.Series(seconds(values)).where(df[name].notna())
            elif column["sem_type"] != "text":
                values = values.astype(float).replace([np.inf, -np.inf], np.nan)
            present = values.notna().to_numpy()
            assert (cell_node[picked] - first).tolist() == np.flatnonzero(present).tolist()
            if column["sem_type"] == "number":
                training = values[train if spec.time_col else slice(None)].dropna()
                std = training.std()
                std = std if math.isfinite(std) and std > 0 else 1.0
                assert column["mean"] == pytest.approx(training.mean(), rel=1e-9, abs=1e-12)
                assert column["std"] == pytest.approx(std, rel=1e-9)
                expected = ((values[present] - column["mean"]) / column["std"]).to_numpy()
                np.testing.assert_allclose(a["cell_value.bin"][picked], expected, rtol=1e-5)
    for n in range(meta["counts"]["nodes"]):
        assert (np.diff(row(a["node_cells.bin"], a["cell_column.bin"], n).astype(int)) > 0).all()


def test_datetimes_share_one_standardisation_from_training_rows(generated):
    db, tables, _, meta, _ = generated
    val = db.timeline.val_timestamp
    train = [
        seconds(tables[s.name][s.time_col][tables[s.name][s.time_col] <= val])
        for s in db.schema.tables
        if s.time_col
    ]
    values = np.concatenate(train)
    assert meta["datetime"]["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert meta["datetime"]["std"] == pytest.approx(values.std(ddof=1), rel=1e-9)


def test_f2p_edges_follow_the_foreign_key_columns_and_p2f_reverses_them_in_time_order(generated):
    db, tables, _, meta, a = generated
    index = {s.name: t for t, s in enumerate(db.schema.tables)}
    first = a["table_nodes.bin"]
    for t, spec in enumerate(db.schema.tables):
        df = tables[spec.name]
        for r in range(len(df)):
            expected = []
            for col, parent in spec.fkeys:
                if pd.notna(df[col].iloc[r]):
                    position = tables[parent][db.schema.table(parent).pkey].tolist()
                    expected.append(first[index[parent]] + position.index(df[col].iloc[r]))
            got = row(a["f2p_offsets.bin"], a["f2p_nodes.bin"], first[t] + r)
            assert got.tolist() == expected
    edges = {
        (int(p), c)
        for c in range(meta["counts"]["nodes"])
        for p in row(a["f2p_offsets.bin"], a["f2p_nodes.bin"], c)
    }
    reversed_ = set()
    for p in range(meta["counts"]["nodes"]):
        children = row(a["p2f_offsets.bin"], a["p2f_nodes.bin"], p)
        times = row(a["p2f_offsets.bin"], a["p2f_time.bin"], p)
        assert (times == a["node_time.bin"][children]).all()
        order = sorted(zip(times.tolist(), children.tolist(), strict=True))
        assert order == list(zip(times.tolist(), children.tolist(), strict=True))
        reversed_ |= {(p, int(c)) for c in children}
    assert reversed_ == edges
    assert meta["counts"]["max_f2p"] == np.diff(a["f2p_offsets.bin"]).max()


# --- a real-data-shaped folder --------------------------------------------------------


@pytest.fixture(scope="module")
def realdata(tmp_path_factory) -> Path:
    return write_realdata_folder(tmp_path_factory.mktemp("real") / "realdata")


@pytest.fixture
def copy(realdata, tmp_path) -> Path:
    """A private copy of the real-data folder, to break."""
    return Path(shutil.copytree(realdata, tmp_path / "realdata"))


def test_real_data_shaped_folder_gives_the_expected_store(realdata, tmp_path):
    store = preprocess(realdata, tmp_path, context_rules="strict")  # training-row statistics
    assert store == tmp_path / "realdata"
    meta, a = load(store)
    assert [t["name"] for t in meta["tables"]] == EXPECTED["tables"]
    assert [t["num_nodes"] for t in meta["tables"]] == EXPECTED["num_nodes"]
    assert [t["dangling_fkeys"] for t in meta["tables"]] == EXPECTED["dangling_fkeys"]
    assert meta["counts"]["f2p_edges"] == EXPECTED["f2p_edges"]
    assert meta["counts"]["max_f2p"] == EXPECTED["max_f2p"]
    assert meta["counts"]["cells"] == 43  # counted by hand in tests/realdata.py's tables
    skipped = [(s["table"], s["name"], s["reason"]) for s in meta["skipped_columns"]]
    assert skipped == EXPECTED["skipped"]
    assert list(a["table_kind.bin"]) == [0, 0, 0, 0, 1, 1, 1]
    names = vocab(a)
    assert {"[a, b]", "[]", "[c]", "likes tea", "runs"} <= set(names)
    assert names.count("likes tea") == 1
    assert [names[i] for i in a["table_name.bin"]][4:] == [FORECAST_TASK] * 3

    columns = {(c["table"], c["name"]): c for c in meta["columns"]}
    # Training rows of users: signup <= 2021-01-01 or none (u0, u1, u2): ages 30, 50.
    age = columns[("users", "age")]
    assert (age["mean"], age["std"]) == (40.0, pytest.approx(200**0.5))
    for name, texts in {
        "bio": ["likes tea", "likes tea", "runs"],
        "tags": ["[a, b]", "[]", "[c]"],
    }.items():
        picked = a["cell_column.bin"] == columns[("users", name)]["id"]
        assert [names[i] for i in a["cell_text.bin"][picked]] == texts
        assert (a["cell_type.bin"][picked] == SEM["text"]).all()
    assert columns[("users", "birthday")]["sem_type"] == "datetime"
    # The task's splits share its columns; the train split's statistics apply.
    churn = columns[(f"{FORECAST_TASK}/train", "churn")]
    assert churn["mean"] == pytest.approx(2 / 3)
    split_cells = slice(a["node_cells.bin"][a["table_nodes.bin"][4]], None)
    assert set(a["cell_column.bin"][split_cells]) == {
        columns[(f"{FORECAST_TASK}/train", "timestamp")]["id"], churn["id"],
    }  # fmt: skip

    # Node times: ms with a zone, ns in New York, none.
    times = a["node_time.bin"]
    assert times[0] == pd.Timestamp("2020-01-01", tz="UTC").value // 10**9
    assert times[9] == pd.Timestamp("2020-03-01", tz="UTC").value // 10**9
    assert times[2] == times[12] == NO_TIME
    # u0 (node 0) is the entity of train rows at June then September 2020.
    assert row(a["task_p2f_offsets.bin"], a["task_p2f_nodes.bin"], 0).tolist() == [13, 15]
    assert row(a["task_p2f_offsets.bin"], a["task_p2f_table.bin"], 3).tolist() == [5]
    tasks = {t["name"]: t for t in meta["tasks"]}
    assert tasks[FORECAST_TASK]["tables"] == {
        s: f"{FORECAST_TASK}/{s}" for s in ("train", "val", "test")
    }
    assert tasks[FORECAST_TASK]["remove_columns"] == [["users", "score"]]
    assert tasks[AUTOCOMPLETE_TASK]["tables"]["test"] == "users"
    only_store(tmp_path)


def test_task_selection_keeps_only_the_named_tasks(realdata, tmp_path):
    meta, _ = load(preprocess(realdata, tmp_path, tasks=[AUTOCOMPLETE_TASK]))
    assert [t["name"] for t in meta["tasks"]] == [AUTOCOMPLETE_TASK]
    assert [t["name"] for t in meta["tables"]] == EXPECTED["tables"][:4]


def _rewrite_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    edit(manifest)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        ("no_manifest", ["manifest.yaml"]),
        ("no_parquet", ["stores", "stores.parquet"]),
        ("unknown_parent", ["orders", "store_id", "unknown table", "shops"]),
        ("duplicate_pkey", ["products", "product_id", "duplicate value 205"]),
        ("unknown_task", ["'nope'", FORECAST_TASK, AUTOCOMPLETE_TASK]),
    ],
)
def test_dataset_errors_name_the_culprit_and_leave_nothing_behind(copy, tmp_path, breakage, words):
    tasks = None
    if breakage == "no_manifest":
        (copy / "manifest.yaml").unlink()
    elif breakage == "no_parquet":
        (copy / "db" / "stores.parquet").unlink()
    elif breakage == "unknown_parent":
        _rewrite_manifest(copy, lambda m: m["tables"]["orders"]["fkeys"].update(store_id="shops"))
    elif breakage == "duplicate_pkey":
        products = pq.read_table(copy / "db" / "products.parquet")
        ids = pa.array([100, 205, 205], pa.int64())
        pq.write_table(products.set_column(0, "product_id", ids), copy / "db/products.parquet")
    else:
        tasks = [AUTOCOMPLETE_TASK, "nope"]
    out = tmp_path / "stores"
    with pytest.raises(DatasetError) as err:
        preprocess(copy, out, tasks)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert "\n" not in str(err.value)
    assert not out.exists() or not list(out.iterdir())


def test_existing_store_is_kept_unless_overwrite_replaces_it(realdata, tmp_path):
    store = preprocess(realdata, tmp_path, tasks=[])
    with pytest.raises(StoreError, match="already exists"):
        preprocess(realdata, tmp_path)
    assert load(store)[0]["tasks"] == []
    assert preprocess(realdata, tmp_path, overwrite=True, name="realdata") == store
    assert len(load(store)[0]["tasks"]) == 2
    assert only_store(tmp_path) == store


def test_rerun_on_the_same_input_returns_the_store_untouched(copy, tmp_path):
    out = tmp_path / "stores"
    store = preprocess(copy, out, tasks=[FORECAST_TASK])
    files = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    assert load(store)[0]["source"]["input_sha256"]
    assert preprocess(copy, out, tasks=[FORECAST_TASK]) == store
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == files
    assert only_store(out) == store


@pytest.mark.parametrize("change", ["table", "labels", "tasks"])
def test_rerun_on_other_input_refuses_until_overwrite_rebuilds(copy, tmp_path, change):
    out = tmp_path / "stores"
    store = preprocess(copy, out, tasks=[FORECAST_TASK])
    tasks = [FORECAST_TASK]
    if change == "tasks":
        tasks = [FORECAST_TASK, AUTOCOMPLETE_TASK]
    else:
        file = next((copy / "db").glob("*.parquet")) if change == "table" else (
            copy / "tasks" / FORECAST_TASK / "train.parquet")  # fmt: skip
        table = pq.read_table(file)
        pq.write_table(table.slice(0, table.num_rows - 1), file)
    with pytest.raises(StoreError, match="already exists, built from other input") as err:
        preprocess(copy, out, tasks=tasks)
    assert str(store) in str(err.value) and "--overwrite" in str(err.value)
    assert preprocess(copy, out, tasks=tasks, overwrite=True) == store
    assert preprocess(copy, out, tasks=tasks) == store
    assert only_store(out) == store


def test_a_folder_that_is_not_a_store_is_refused(realdata, tmp_path):
    (tmp_path / "realdata").mkdir()
    (tmp_path / "realdata" / "mine.txt").write_text("keep")
    with pytest.raises(StoreError, match="already exists and is not a usable store"):
        preprocess(realdata, tmp_path)
    assert [p.name for p in (tmp_path / "realdata").iterdir()] == ["mine.txt"]


def test_cli_preprocesses_folders_and_reports_errors_in_one_line(realdata, tmp_path, capsys):
    out = tmp_path / "stores"
    args = ["preprocess", str(realdata), "--out", str(out), "--task-names", FORECAST_TASK]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert str(out / "realdata") in printed and "nodes=19" in printed
    assert main(["preprocess", str(realdata), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("plurel-ray: error:") and "--overwrite" in err[0]
    assert main(["preprocess", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "manifest.yaml" in capsys.readouterr().err
    assert only_store(out) == out / "realdata"


def test_package_functions_stay_functions_whatever_was_imported_first():
    # A submodule named like the package's function used to replace it once imported, so
    # `from plurel_ray.store import preprocess` depended on test order.
    code = (
        "import plurel_ray.store.preprocessing, plurel_ray.store.embedding, types\n"
        "from plurel_ray.store import embed, preprocess\n"
        "assert not isinstance(preprocess, types.ModuleType), preprocess\n"
        "assert not isinstance(embed, types.ModuleType), embed\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
