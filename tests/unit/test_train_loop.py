"""The training loop: schedule, learning, metrics, resumable checkpoints (evaluation:
test_evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plurel_ray.errors import ConfigError
from plurel_ray.model import ModelConfig, init_model, load_checkpoint
from plurel_ray.train import (
    TrainConfig,
    load_resume_state,
    one_cycle,
    recipe,
    train_loop,
)
from plurel_ray.train.synthetic import SyntheticSchema, random_batch, random_text_emb

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=16)
VOCAB = 96


def batch_set(seed: int, count: int, batch_size: int = 4, ctx_len: int = 32, **kwargs):
    """`count` random compact batches (numpy) over one schema, and text embeddings."""
    rng = np.random.default_rng(seed)
    schema = SyntheticSchema.random(rng, vocab_size=VOCAB, **kwargs)
    batches = [random_batch(rng, schema, batch_size, ctx_len, mask_prob=0.3) for _ in range(count)]
    return batches, random_text_emb(rng, VOCAB, SMALL.d_text)


def config(**overrides) -> TrainConfig:
    base = dict(steps=10, batch_size=4, ctx_len=32, lr=3e-3, checkpoint_every=0, device="cpu")
    return TrainConfig(**{**base, **overrides})


def test_one_cycle_is_torchs_one_cycle_learning_rate_curve():
    steps = 50
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=1.0,
        total_steps=steps,
        pct_start=0.2,
        anneal_strategy="linear",
        cycle_momentum=False,
    )
    expected = []
    for _ in range(steps):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    factor = one_cycle(steps, 0.2)
    assert [factor(s) for s in range(steps)] == pytest.approx(expected, rel=1e-9)
    assert factor(0) == pytest.approx(1 / 25) and max(map(factor, range(steps))) == pytest.approx(1)


def test_tiny_model_loss_decreases_over_100_steps(tmp_path):
    batches, text_emb = batch_set(seed=0, count=4)
    model = init_model(SMALL, seed=0)
    result = train_loop(model, iter(batches * 25), text_emb, config(steps=100), tmp_path)
    assert result.step == 100 and len(result.losses) == 100
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert last < 0.6 * first, (first, last)


def test_every_step_is_logged_and_the_result_holds_the_last(tmp_path):
    batches, text_emb = batch_set(seed=1, count=3)
    result = train_loop(init_model(SMALL, seed=0), iter(batches), text_emb, config(), tmp_path)
    assert result.step == 3, "the loop stops when the batches run out"
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    keys = {"loss", "lr", "grad_norm", "tokens_per_s", "data_wait_frac", "step_time_s"}
    assert keys <= lines[-1].keys() and lines[-1] == result.metrics
    real_cells = int((~batches[2]["is_padding"]).sum())
    assert result.metrics["tokens"] == real_cells and 0 <= result.metrics["data_wait_frac"] <= 1
    assert [m["loss"] for m in lines] == list(result.losses)


def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_losses(tmp_path):
    batches, text_emb = batch_set(seed=2, count=8)
    cfg = config(steps=8, checkpoint_every=4, seed=5)
    full = train_loop(init_model(SMALL, seed=5), iter(batches), text_emb, cfg, tmp_path / "a")
    folder = full.checkpoints[0]
    assert folder.name == "step_00000004"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "resume.pt",
    ]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["step_00000004", "step_00000008"]

    state = load_resume_state(folder)
    assert state["step"] == 4 and state["data_position"] == 4
    model = load_checkpoint(folder).model
    rest = iter(batches[state["data_position"] :])
    resumed = train_loop(model, rest, text_emb, cfg, tmp_path / "b", start_state=state)
    assert resumed.step == 8
    assert resumed.losses == full.losses[4:]


class Killed(Exception):
    """Stands in for a kill: the batch source dies mid-run."""


def _dies_after(batches, count):
    yield from batches[:count]
    raise Killed


def test_a_resumed_run_continues_metrics_jsonl_with_every_step_once(tmp_path):
    batches, text_emb = batch_set(seed=4, count=10)
    cfg = config(steps=10, checkpoint_every=4, seed=1)
    with pytest.raises(Killed):  # steps 5-6 are logged after the last checkpoint, then lost
        train_loop(init_model(SMALL, seed=1), _dies_after(batches, 6), text_emb, cfg, tmp_path)
    log = tmp_path / "metrics.jsonl"
    with log.open("a") as f:
        f.write('{"step": 7, "lo')  # a record cut short by the kill
    folder = tmp_path / "checkpoints" / "step_00000004"
    state = load_resume_state(folder)
    model = load_checkpoint(folder).model
    train_loop(model, iter(batches[4:]), text_emb, cfg, tmp_path, start_state=state)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 11))


def test_on_checkpoint_is_called_with_each_folder(tmp_path):
    batches, text_emb = batch_set(seed=3, count=4)
    seen = []
    train_loop(
        init_model(SMALL, seed=0),
        iter(batches),
        text_emb,
        config(steps=4, checkpoint_every=2),
        tmp_path,
        on_checkpoint=lambda step, folder: seen.append((step, folder.name)),
    )
    assert seen == [(2, "step_00000002"), (4, "step_00000004")]


def test_errors_of_the_batch_source_reach_the_caller(tmp_path):
    batches, text_emb = batch_set(seed=4, count=1)

    def broken():
        yield batches[0]
        raise RuntimeError("sampler died")

    with pytest.raises(RuntimeError, match="sampler died"):
        train_loop(init_model(SMALL, seed=0), broken(), text_emb, config(), tmp_path)


def test_recipes_are_complete_and_take_overrides():
    tiny = recipe("tiny", steps=7, d_model=32)
    assert tiny.train.steps == 7 and tiny.model.d_model == 32 and tiny.model.num_blocks == 2
    paper = recipe("plurel-paper")
    assert (paper.model.num_blocks, paper.model.d_model, paper.model.num_heads) == (12, 256, 8)
    assert (paper.train.batch_size, paper.train.ctx_len, paper.train.lr) == (128, 1024, 5e-4)
    with pytest.raises(ConfigError, match="lr"):
        recipe("tiny", lrr=1e-3)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")
