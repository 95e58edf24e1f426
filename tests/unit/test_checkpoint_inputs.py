"""A checkpoint records the context rules and text encoder of its training stores
(config.json, model card); another encoder's stores are refused, other context rules
warned about once; a reference `.pt` expects the reference rules and all-MiniLM-L12-v2.

Real stores throughout: small generated databases, preprocessed under either setting and
embedded by tiny random BERTs (tests/tiny_bert.py), one per folder, hence one encoder
name each.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from hub_server import HubServer
from huggingface_hub import hf_hub_download
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import ConfigError, EncoderMismatchError
from plurel_ray.hub.push import push_checkpoint
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.pipeline.prepare import prepare_synthetic
from plurel_ray.pipeline.pretrain_data import task_sources
from plurel_ray.pipeline.pretrain_eval import evaluate_run
from plurel_ray.store import Sampler, embed, preprocess
from plurel_ray.store.meta import read_meta
from plurel_ray.synth.database import generate_database
from plurel_ray.train import TrainConfig
from plurel_ray.train.expectations import (
    REFERENCE_PT_INPUTS,
    ContextRulesWarning,
    checkpoint_inputs,
    training_inputs,
)
from plurel_ray.train.loop import train_loop

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=HIDDEN)
TOKEN = "hf_test_secret_inputs_3b9e"
L12 = "sentence-transformers/all-MiniLM-L12-v2"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="module")
def berts(root) -> dict[str, Path]:
    return {name: write_tiny_bert(root / "models" / name, seed) for seed, name in
            enumerate(["bert-a", "bert-b"])}  # fmt: skip


@pytest.fixture(scope="module")
def datasets(root, small_config) -> list[Path]:
    folders = []
    for seed in (0, 1):
        folder = root / "data" / f"plurel-{seed}"
        write_dataset(generate_database(seed, small_config), folder, small_config,
                      name=folder.name)  # fmt: skip
        folders.append(folder)
    return folders


def make_store(root: Path, dataset: Path, rules: str, model: Path | str) -> Path:
    """The store of `dataset` under `rules`, embedded by `model`, in a folder of its own."""
    label = Path(model).name if Path(model).is_dir() else "minilm"
    store = preprocess(dataset, root / f"{rules}-{label}", context_rules=rules)
    embed(store, model=str(model), progress=False)
    return store


@pytest.fixture(scope="module")
def stores(root, datasets, berts) -> dict[str, Path]:
    return {
        "reference-a": make_store(root, datasets[0], "reference", berts["bert-a"]),
        "reference-b": make_store(root, datasets[0], "reference", berts["bert-b"]),
        "strict-a": make_store(root, datasets[0], "strict", berts["bert-a"]),
        "strict-a-1": make_store(root / "second", datasets[1], "strict", berts["bert-a"]),
    }


@pytest.fixture(scope="module")
def checkpoint(root, stores) -> Path:
    """A checkpoint trained two steps on the reference store that bert-a embedded."""
    store = stores["reference-a"]
    sampler = Sampler(task_sources([store])[:2], batch_size=2, ctx_len=32, seed=0)
    batches = (sampler.batch(i) for i in range(10))
    config = TrainConfig(steps=2, batch_size=2, ctx_len=32, checkpoint_every=2, device="cpu")
    result = train_loop(init_model(SMALL, 0), batches, sampler.embedding_matrix(), config,
                        root / "run", progress=False, inputs=training_inputs([store]))  # fmt: skip
    return result.checkpoints[-1]


def test_every_checkpoint_records_its_stores_context_rules_and_text_encoder(checkpoint, berts):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["context_rules"] == "reference"
    assert config["text_encoder"] == {"name": str(berts["bert-a"].resolve()), "dim": HIDDEN}
    assert checkpoint_inputs(checkpoint) == {
        "context_rules": "reference", "text_encoder": config["text_encoder"],
    }  # fmt: skip


def evaluate(checkpoint, stores, **options) -> list[dict]:
    return evaluate_run(checkpoint, task_sources(stores, split="val"), "val", 2, 32,
                        max_items=2, **options)  # fmt: skip


def test_evaluating_on_another_encoders_stores_is_one_line_naming_both(checkpoint, stores,
                                                                       berts):  # fmt: skip
    with pytest.raises(EncoderMismatchError) as caught:
        evaluate(checkpoint, [stores["reference-a"], stores["reference-b"]])
    message = str(caught.value)
    assert "\n" not in message and "--allow-encoder-mismatch" in message
    assert str(berts["bert-a"].resolve()) in message and str(berts["bert-b"].resolve()) in message
    rows = evaluate(checkpoint, [stores["reference-b"]], allow_encoder_mismatch=True)
    assert rows and all(row["store"] == stores["reference-b"].name for row in rows)


def test_other_context_rules_are_warned_about_once_per_evaluation(checkpoint, stores):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count the calls, not what the registry lets through
        evaluate(checkpoint, [stores["strict-a"], stores["strict-a-1"]])
    found = [w for w in caught if issubclass(w.category, ContextRulesWarning)]
    assert len(found) == 1
    message = str(found[0].message)
    assert "'reference'" in message and "'strict'" in message and "\n" not in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContextRulesWarning)
        evaluate(checkpoint, [stores["reference-a"]])  # same rules: silent


def test_a_reference_pt_expects_the_reference_rules_and_minilm_l12(root, stores):
    pt = root / "published.pt"
    torch.save(init_model(SMALL, 1).state_dict(), pt)
    assert checkpoint_inputs(pt) == REFERENCE_PT_INPUTS
    assert REFERENCE_PT_INPUTS["text_encoder"] == {"name": L12, "dim": 384}
    with pytest.raises(EncoderMismatchError, match=f"{L12} \\(384-d\\).*bert-a \\(32-d\\)"):
        evaluate(pt, [stores["reference-a"]])


def test_the_model_card_shows_the_inputs(checkpoint, berts, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with HubServer(tokens={TOKEN}) as hub:
        push_checkpoint(checkpoint, "org/rt", endpoint=hub.endpoint, token=TOKEN)
        card = Path(hf_hub_download("org/rt", "README.md", endpoint=hub.endpoint, token=TOKEN,
                                    local_dir=tmp_path / "card")).read_text()  # fmt: skip
    section = card.split("## Inputs")[1].split("##")[0]
    assert "Context rules: `reference`" in section
    assert f"Text encoder: `{berts['bert-a'].resolve()}`, {HIDDEN}-d" in section


# --- generation and the data of training jobs ---------------------------------------------


@pytest.fixture(scope="module")
def generated(root, berts, small_config) -> Path:
    """A data root of `plurel-ray generate --context-rules strict --text-model bert-a`."""
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(small_config.to_dict()))
    out = root / "generated"
    argv = ["generate", "--num-dbs", "2", "--out", str(out), "--config", str(config),
            "--context-rules", "strict", "--text-model", str(berts["bert-a"]),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_generate_preprocesses_and_embeds_as_asked(generated, berts):
    for seed in (0, 1):
        meta = read_meta(generated / "stores" / f"plurel-{seed}")
        assert meta["context_rules"] == "strict"
        assert meta["embedding"]["model"] == str(berts["bert-a"].resolve())


def test_generating_into_stores_of_the_other_rules_fails_those_seeds(generated, root, capsys):
    argv = ["generate", "--num-dbs", "1", "--out", str(generated), "--config",
            str(root / "small.yaml"), "--preprocess", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    index = json.dumps(read_index(generated))
    assert "context rules 'strict', not this run's 'reference'" in index


def read_index(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "_index.parquet").to_pylist()


def test_a_training_jobs_data_must_match_the_rules_and_encoder_it_asks_for(generated, berts):
    data = prepare_synthetic(generated, None, 1, context_rules="strict",
                             text_model=str(berts["bert-a"]))  # fmt: skip
    assert [p.name for p in data.train + data.held_out] == ["plurel-0", "plurel-1"]
    assert prepare_synthetic(generated, None, 1).train == data.train  # nothing asked: any
    with pytest.raises(ConfigError, match="context rules 'strict', not --context-rules reference"):
        prepare_synthetic(generated, None, 1, context_rules="reference")
    with pytest.raises(ConfigError, match=r"bert-a, not --text-model .*bert-b; re-embed"):
        prepare_synthetic(generated, None, 1, text_model=str(berts["bert-b"]))


def test_the_training_jobs_take_the_flags():
    import runpy

    job = Path(__file__).resolve().parents[2] / "jobs" / "continue_pretrain.py"
    parser = runpy.run_path(str(job), run_name="flags")["build_parser"]()
    args = parser.parse_args(["--init", "x.pt", "--data", "d", "--allow-encoder-mismatch",
                              "--context-rules", "strict", "--text-model", L12])  # fmt: skip
    assert (args.allow_encoder_mismatch, args.context_rules, args.text_model) == (
        True, "strict", L12,
    )  # fmt: skip
    defaults = parser.parse_args(["--init", "x.pt", "--data", "d"])
    assert (defaults.allow_encoder_mismatch, defaults.context_rules) == (False, None)


@pytest.mark.slow
def test_training_from_a_checkpoint_of_another_encoder_is_refused_before_it_starts(
    root, stores, monkeypatch
):
    import ray

    from plurel_ray.pipeline.pretrain import PretrainRequest, run_pretraining
    from plurel_ray.pipeline.resources import RunResources
    from plurel_ray.train import recipe

    pt = root / "published-for-training.pt"
    torch.save(init_model(SMALL, 2).state_dict(), pt)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        request = PretrainRequest(
            sources=task_sources([stores["reference-a"]])[:1], name="continued",
            recipe=recipe("tiny", steps=2, batch_size=2, ctx_len=32, d_model=32, d_ff=64,
                          num_blocks=1, d_text=HIDDEN),
            storage_path=str(root / "ray-runs"), init_checkpoint=str(pt),
            resources=RunResources(num_workers=1, cpus_per_worker=1, sampler_cpus=0.5),
        )  # fmt: skip
        with pytest.raises(EncoderMismatchError, match=f"{L12} \\(384-d\\)"):
            run_pretraining(request)
        assert not (root / "ray-runs" / "continued").exists()  # nothing trained
    finally:
        ray.shutdown()
