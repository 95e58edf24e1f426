"""Any sentence-transformers BERT-family model embeds stores: from a local folder, or by
Hub id through the real huggingface_hub client against the local test Hub, downloaded
once into the cache. The model is a tiny random BERT the tests write (tests/tiny_bert.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hub_server import HubServer
from huggingface_hub import HfApi
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import HubError, ModelError
from plurel_ray.store.arrays import read_array
from plurel_ray.store.encoder import TextEncoder, text_model_name
from plurel_ray.store.meta import read_meta
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.synth.database import generate_database

TOKEN = "hf_test_secret_tiny_bert_7c1d"
REPO = "org/tiny-bert"
STRINGS = ["table_1", "feature_3 of table_2", "a longer label, with punctuation!", "x"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, small_config) -> Path:
    folder = tmp_path_factory.mktemp("data") / "plurel-0"
    write_dataset(generate_database(0, small_config), folder, small_config, name="plurel-0")
    return folder


@pytest.fixture
def store(tmp_path, dataset) -> Path:
    return preprocess(dataset, tmp_path / "stores", name="plurel-0")


def test_a_local_bert_folder_loads_and_embeds_as_its_width(tiny_bert):
    encoder = TextEncoder.load(str(tiny_bert), device="cpu")
    assert (encoder.name, encoder.dim) == (str(tiny_bert.resolve()), HIDDEN)
    vectors = encoder.encode(STRINGS)
    assert vectors.shape == (len(STRINGS), HIDDEN) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)  # Normalize
    assert len({row.tobytes() for row in vectors}) == len(STRINGS)
    # The same weights give the same vectors, one string at a time or in a batch.
    np.testing.assert_allclose(encoder.encode(STRINGS[:1]), vectors[:1], atol=1e-6)


def test_plurel_ray_embed_records_the_folder_model_and_its_width(tiny_bert, store, capsys):
    assert main(["embed", str(store), "--text-model", str(tiny_bert), "--no-progress"]) == 0
    assert f"({HIDDEN}-d)" in capsys.readouterr().out
    meta = read_meta(store)
    assert meta["embedding"] == {"model": str(tiny_bert.resolve()), "dim": HIDDEN,
                                 "file": "text_emb.bin"}  # fmt: skip
    table = read_array(store / "text_emb.bin", "TEMB", np.float32)
    assert table.size == meta["counts"]["vocab"] * HIDDEN


def test_preprocess_with_a_text_model_embeds_the_new_stores(tiny_bert, dataset, tmp_path):
    argv = ["preprocess", str(dataset), "--out", str(tmp_path), "--context-rules", "strict",
            "--text-model", str(tiny_bert), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    meta = read_meta(tmp_path / "plurel-0")
    assert meta["context_rules"] == "strict"
    assert (meta["embedding"]["model"], meta["embedding"]["dim"]) == (
        str(tiny_bert.resolve()),
        HIDDEN,
    )


def test_sentence_bert_config_is_optional(tiny_bert, tmp_path):
    # sentence-transformers reads a model without it (full length, cased), and so do we.
    folder = shutil.copytree(tiny_bert, tmp_path / "bare")
    (folder / "sentence_bert_config.json").unlink()
    assert TextEncoder.load(str(folder), device="cpu").encode(STRINGS).shape == (4, HIDDEN)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda f: (f / "modules.json").unlink(), r"modules\.json is missing"),
        (lambda f: (f / "1_Pooling" / "config.json").unlink(),
         r"1_Pooling/config\.json is missing"),
        (lambda f: (f / "tokenizer.json").unlink(), r"tokenizer\.json is missing"),
        (lambda f: (f / "model.safetensors").unlink(), r"model\.safetensors is missing"),
        (lambda f: _edit(f / "config.json", model_type="roberta"), "model_type 'roberta'"),
        (lambda f: _edit(f / "config.json", position_embedding_type="relative_key"),
         "only absolute position embeddings"),
        (lambda f: _edit(f / "1_Pooling" / "config.json", pooling_mode_weightedmean_tokens=True),
         "pooling.*weightedmean_tokens"),
    ],
)  # fmt: skip
def test_an_unsupported_or_incomplete_folder_names_the_part(tiny_bert, tmp_path, change, named):
    folder = shutil.copytree(tiny_bert, tmp_path / "model")
    change(folder)
    with pytest.raises(ModelError, match=named):
        TextEncoder.load(str(folder), device="cpu")


def _edit(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


# --- by Hub id ---------------------------------------------------------------------------


@pytest.fixture
def hub(monkeypatch, tmp_path, tiny_bert):
    with HubServer(tokens={TOKEN}) as server:
        # CI exports HF_HUB_OFFLINE=1; the local test Hub must stay reachable, for the
        # fixture's own uploads too.
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        api = HfApi(endpoint=server.endpoint, token=TOKEN)
        api.create_repo(REPO, repo_type="model")
        api.upload_folder(repo_id=REPO, folder_path=str(tiny_bert), repo_type="model")
        yield server


def test_a_hub_id_is_downloaded_once_into_the_cache(hub, tiny_bert, tmp_path):
    before = len(hub.requests)
    encoder = TextEncoder.load(REPO, device="cpu")
    assert len(hub.requests) > before  # fetched from the test Hub
    assert (encoder.name, encoder.dim) == (REPO, HIDDEN)
    local = TextEncoder.load(str(tiny_bert), device="cpu")
    np.testing.assert_array_equal(encoder.encode(STRINGS), local.encode(STRINGS))

    fetched = len(hub.requests)
    again = TextEncoder.load(REPO, device="cpu")
    assert len(hub.requests) == fetched, [r.path for r in hub.requests[fetched:]]
    assert again.name == REPO
    # The cached snapshot folder, passed as a path, is still recorded by its Hub id.
    snapshots = list((tmp_path / "hf-cache").glob("models--org--tiny-bert/snapshots/*"))
    assert len(snapshots) == 1 and text_model_name(str(snapshots[0])) == REPO


def test_embed_by_hub_id_records_the_id(hub, store):
    assert main(["embed", str(store), "--text-model", REPO, "--no-progress"]) == 0
    assert read_meta(store)["embedding"]["model"] == REPO


def test_an_unknown_hub_id_is_one_hub_error(hub):
    with pytest.raises(HubError, match="org/absent") as caught:
        TextEncoder.load("org/absent", device="cpu")
    assert "\n" not in str(caught.value)
