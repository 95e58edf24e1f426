"""`plurel_ray.from_pretrained`: a checkpoint folder, a reference `.pt` and a Hub repo
load as the same model with what each records (sizes, context rules, encoder, training
config); a path that is none of these fails in one line. The CLI's `--init` and
`plurel-ray evaluate` load through it (tests/unit/test_evaluate_checkpoint.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from hub_server import HubServer

import plurel_ray
from plurel_ray.errors import CheckpointError
from plurel_ray.hub.push import push_checkpoint
from plurel_ray.model import ModelConfig, init_model
from plurel_ray.model.checkpoint import save_checkpoint
from plurel_ray.pipeline.pretrain_args import init_weights
from plurel_ray.predict.pretrained import REFERENCE_CTX_LEN
from plurel_ray.train import TrainConfig
from plurel_ray.train.expectations import REFERENCE_PT_INPUTS

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=24)
TOKEN = "hf_test_secret_pretrained_51c2"
ENCODER = "org/some-encoder"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    inputs = {"context_rules": "paper", "train": TrainConfig(ctx_len=48).to_dict(),
              "text_encoder": {"name": ENCODER, "dim": 24}}  # fmt: skip
    path = tmp_path_factory.mktemp("pretrained") / "run" / "step_00000003"
    return save_checkpoint(path, init_model(SMALL, 0), SMALL, inputs)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))  # fmt: skip


def test_a_folder_loads_in_eval_mode_with_what_it_records(folder):
    pretrained = plurel_ray.from_pretrained(folder)
    assert not pretrained.model.training
    assert pretrained.model_config == SMALL and pretrained.d_text == 24
    assert pretrained.context_rules == "paper" and pretrained.text_encoder == ENCODER
    assert pretrained.ctx_len == 48 and pretrained.train_config["ctx_len"] == 48
    assert pretrained.path == folder.resolve()
    assert same_weights(pretrained.model, init_model(SMALL, 0))
    assert init_weights(str(folder)) == (str(folder.resolve()), SMALL)


def test_a_reference_pt_expects_the_reference_inputs(tmp_path):
    pt = tmp_path / "published.pt"
    torch.save({"model": init_model(SMALL, 1).state_dict()}, pt)
    pretrained = plurel_ray.from_pretrained(str(pt))
    assert pretrained.model_config == SMALL and pretrained.train_config is None
    assert pretrained.ctx_len == REFERENCE_CTX_LEN
    assert pretrained.context_rules == REFERENCE_PT_INPUTS["context_rules"]
    assert pretrained.text_encoder == REFERENCE_PT_INPUTS["text_encoder"]["name"]
    assert same_weights(pretrained.model, init_model(SMALL, 1))


def test_a_hub_repo_is_downloaded_then_loaded(folder, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with HubServer(tokens={TOKEN}) as hub:
        push_checkpoint(folder, "org/rt", endpoint=hub.endpoint, token=TOKEN)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        pretrained = plurel_ray.from_pretrained("org/rt@main")
    assert pretrained.path.is_relative_to(tmp_path)
    assert pretrained.text_encoder == ENCODER and pretrained.ctx_len == 48
    assert same_weights(pretrained.model, init_model(SMALL, 0))


def test_neither_a_path_nor_a_repo_id_fails_in_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="--init nothing/here/at/all: no such file") as err:
        plurel_ray.from_pretrained("nothing/here/at/all", flag="--init")
    assert "\n" not in str(err.value)
