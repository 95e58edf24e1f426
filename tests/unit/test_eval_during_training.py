"""Evaluation during training without Ray: the schedule, the capped evaluation order,
per-item predictions merged over ranks, eval.jsonl and best/ through `train_loop`, and
eval.jsonl across a resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tiny_bert import HIDDEN, write_tiny_bert

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import ConfigError
from plurel_ray.model import ModelConfig, init_model, load_checkpoint
from plurel_ray.pipeline.pretrain_data import task_sources
from plurel_ray.pipeline.pretrain_eval import eval_tasks
from plurel_ray.store import Sampler, embed, preprocess
from plurel_ray.synth.database import generate_database
from plurel_ray.train import TrainConfig, load_resume_state
from plurel_ray.train.eval_log import EvalLog, mean_row, restore
from plurel_ray.train.eval_schedule import EvalSchedule
from plurel_ray.train.evaluate import ItemPredictions, capped_batches, item_metrics, predict_items
from plurel_ray.train.loop import train_loop

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=HIDDEN)


def test_the_schedule_takes_step_0_powers_of_two_multiples_and_the_last_step():
    assert EvalSchedule(pow2=True, last_step=10).steps() == [0, 1, 2, 4, 8, 10]
    assert EvalSchedule(every=4, last_step=10).steps() == [0, 4, 8, 10]
    assert EvalSchedule(every=3, pow2=True, last_step=9).steps() == [0, 1, 2, 3, 4, 6, 8, 9]
    assert EvalSchedule(last_step=10).steps() == [] and not EvalSchedule(last_step=10).active
    with pytest.raises(ConfigError, match="--eval-every must be ≥ 0"):
        EvalSchedule(every=-1)


@pytest.fixture(scope="module")
def store(tmp_path_factory, small_config) -> Path:
    root = tmp_path_factory.mktemp("evaltrain")
    folder = write_dataset(generate_database(3, small_config), root / "plurel-3", small_config,
                           name="plurel-3")  # fmt: skip
    store = preprocess(folder, root / "stores")
    embed(store, model=str(write_tiny_bert(root / "bert", 0)), progress=False)
    return store


def _positions(sampler_of, max_items, world_size) -> list[int]:
    found = []
    for rank in range(world_size):
        sampler = sampler_of(rank, world_size)
        for first, batch in capped_batches(sampler, max_items, rank, world_size):
            assert (
                len(batch["is_targets"]) == batch["true_batch_size"]
                or first + len(batch["is_targets"]) > sampler.num_items
            )  # only the split's last batch is short
            found += range(first, first + int(batch["true_batch_size"]))
    return sorted(found)


def test_a_cap_scores_exactly_the_first_n_items_of_the_order_whatever_the_ranks(store):
    task = eval_tasks(task_sources([store], split="val")[:1], "val")[0]

    def sampler_of(rank, world_size):
        return task.sampler(3, 32, rank=rank, world_size=world_size)

    total = sampler_of(0, 1).num_items
    assert total > 7, "the store's first val task needs more items than the cap"
    for world_size in (1, 2, 3):
        assert _positions(sampler_of, 7, world_size) == list(range(7))
        assert _positions(sampler_of, None, world_size) == list(range(total))
    assert _positions(sampler_of, 10**6, 2) == list(range(total))
    # The same items in the same contexts: batches are pure functions of the slot.
    one = dict(capped_batches(sampler_of(0, 1), 7))
    again = dict(capped_batches(sampler_of(0, 1), 7))
    assert one.keys() == again.keys() and all(
        np.array_equal(one[k]["node_idxs"], again[k]["node_idxs"]) for k in one
    )


def test_ranks_predictions_merged_give_the_one_rank_items_and_metrics(store):
    model = init_model(SMALL, 0).eval()
    for task in eval_tasks(task_sources([store], split="val")[:3], "val"):
        per_rank = []
        for rank in range(2):
            sampler = task.sampler(3, 32, rank=rank, world_size=2)
            per_rank.append(predict_items(model, capped_batches(sampler, 8, rank, 2),
                                          sampler.embedding_matrix(), task.sem_type))  # fmt: skip
        one = task.sampler(3, 32)
        alone = predict_items(model, capped_batches(one, 8), one.embedding_matrix(),
                              task.sem_type)  # fmt: skip
        merged = ItemPredictions.merged(per_rank[::-1])  # rank order does not matter
        assert merged.positions.tolist() == alone.positions.tolist() == list(range(8))
        np.testing.assert_allclose(merged.predictions, alone.predictions, rtol=1e-5, atol=1e-6)
        assert merged.labels.tolist() == alone.labels.tolist()
        both, single = item_metrics(merged, task.sem_type), item_metrics(alone, task.sem_type)
        assert both.keys() == single.keys() and both["items"] == 8
        for key in both:
            assert both[key] == pytest.approx(single[key], rel=1e-5, nan_ok=True), key


def test_item_metrics_and_the_mean_row():
    scores, labels = np.array([0.1, 0.9, 0.2, 0.8]), np.array([0.0, 1.0, 1.0, 0.0])
    items = ItemPredictions(np.arange(4), scores, labels, np.array([1.0, 2.0, 3.0, 4.0]))
    # Positive-negative pairs ranked right: 0.9 > 0.1, 0.9 > 0.8, 0.2 > 0.1; not 0.2 < 0.8.
    assert item_metrics(items, "boolean") == {"items": 4, "loss": 2.5, "auroc": 0.75}
    rows = [{"split": "val", "task": "a", "items": 4, "loss": 1.0, "auroc": 0.5},
            {"split": "val", "task": "b", "items": 6, "loss": 3.0, "auroc": 0.9},
            {"split": "val", "task": "c", "items": 2, "loss": 2.0, "r2": 0.2, "mae": 0.5},
            {"split": "val", "task": "d", "items": 0, "note": "no items"}]  # fmt: skip
    mean = mean_row(3, "val", rows, 1.25)
    assert mean["task"] is None and mean["tasks"] == 3 and mean["items"] == 12
    assert mean["loss"] == pytest.approx(2.0) and mean["auroc"] == pytest.approx(0.7)
    assert mean["r2"] == pytest.approx(0.2) and mean["score"] == pytest.approx(0.45)
    assert mean_row(0, "test", rows[3:], 0.0)["score"] is None


def _local_evaluator(tasks, max_items):
    """`train_loop`'s hook on one rank, as the Ray workers run it but with local samplers."""
    samplers = [task.sampler(3, 32) for task in tasks]

    def evaluate(step, model):
        rows = []
        for task, sampler in zip(tasks, samplers, strict=True):
            items = None if sampler is None else predict_items(
                model, capped_batches(sampler, max_items), sampler.embedding_matrix(),
                task.sem_type)  # fmt: skip
            rows.append(task.score(items))
        return rows

    return evaluate


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def training(store):
    sources = task_sources([store])
    held_out = task_sources([store], split="val")[:2]
    tasks = [t for split in ("val", "test") for t in eval_tasks(held_out, split)]
    sampler = Sampler(sources, batch_size=3, ctx_len=32, seed=0)
    return sampler, tasks


def _train(training, run: Path, steps=6, start_state=None, model=None, batches=None):
    sampler, tasks = training
    cfg = TrainConfig(steps=steps, batch_size=3, ctx_len=32, checkpoint_every=2, device="cpu",
                      lr=3e-3)  # fmt: skip
    start = 0 if start_state is None else start_state["data_position"]
    if batches is None:
        batches = (sampler.batch(i) for i in range(start, 10**6))
    return train_loop(model or init_model(SMALL, 0), batches, sampler.embedding_matrix(), cfg, run,
                      start_state=start_state, progress=False,
                      eval_schedule=EvalSchedule(pow2=True, last_step=steps),
                      on_evaluate=_local_evaluator(tasks, 6))  # fmt: skip


def test_train_loop_writes_eval_jsonl_and_keeps_the_best_val_step(training, tmp_path):
    _train(training, tmp_path)
    rows = _rows(tmp_path)
    keys = {(r["step"], r["split"], r["task"]) for r in rows}
    assert len(keys) == len(rows) and sorted({r["step"] for r in rows}) == [0, 1, 2, 4, 6]
    assert {r["split"] for r in rows} == {"val", "test"}
    means = [r for r in rows if r["task"] is None and r["split"] == "val"]
    assert all(r["items"] <= 12 for r in means)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    scored = [r for r in means if r["score"] is not None]
    top = max(scored, key=lambda r: (r["score"], -r["step"]))
    assert best == {"step": top["step"], "score": top["score"], "split": "val"}
    # best/ is that step's model: scoring it again gives that step's rows.
    model = load_checkpoint(tmp_path / "best").model.eval()
    _, tasks = training
    again = _local_evaluator(tasks, 6)(best["step"], model)
    for row in again:
        logged = next(r for r in rows if (r["step"], r["split"], r["task"]) ==
                      (best["step"], row["split"], row["task"]))  # fmt: skip
        for key in ("items", "loss", "auroc", "r2"):
            if row.get(key) is not None and not (isinstance(row[key], float)
                                                 and math.isnan(row[key])):  # fmt: skip
                assert logged[key] == pytest.approx(row[key], rel=1e-5), key
    # Every checkpoint carries eval.jsonl up to its step and the best so far.
    folder = tmp_path / "checkpoints" / "step_00000004"
    carried = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines()]
    assert carried == [r for r in rows if r["step"] <= 4]
    assert (folder / "best" / "model.safetensors").is_file()


class Killed(Exception):
    """Stands in for a kill: the batch source dies mid-run."""


def test_a_resumed_run_keeps_every_eval_row_once(training, tmp_path):
    sampler, _ = training

    def dies_after(count):
        yield from (sampler.batch(i) for i in range(count))
        raise Killed

    with pytest.raises(Killed):  # step 4 is evaluated, then the run dies before step 6
        _train(training, tmp_path / "killed", batches=dies_after(5))
    killed = tmp_path / "killed"
    assert max(r["step"] for r in _rows(killed)) == 4
    folder = killed / "checkpoints" / "step_00000002"  # resume from an earlier checkpoint
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    restore(folder, resumed)
    # Rows after the checkpoint's step (here the killed run's step-4 rows, and a line cut
    # short) are dropped on resume, whatever brought them into the run folder.
    with (resumed / "eval.jsonl").open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in _rows(killed) if r["step"] > 2)
        f.write('{"step": 4, "spl')
    _train(
        training,
        resumed,
        start_state=load_resume_state(folder),
        model=load_checkpoint(folder).model,
    )
    rows = _rows(resumed)
    keys = [(r["step"], r["split"], r["task"]) for r in rows]
    assert len(keys) == len(set(keys)), "a row is duplicated"
    straight = tmp_path / "straight"
    _train(training, straight)
    assert keys == [(r["step"], r["split"], r["task"]) for r in _rows(straight)]
    assert EvalLog(resumed, 6).best == json.loads((straight / "best" / "best.json").read_text())


def test_logged_rows_are_the_last_steps_task_rows_as_evaluate_run_returns_them():
    from plurel_ray.pipeline.pretrain_eval import logged_rows

    task = {"split": "val", "store": "s", "task": "t", "task_type": "regression", "items": 5}
    rows = [
        {**task, "step": 0, "loss": 1.0, "r2": 0.1, "mae": 0.9},
        {**task, "step": 4, "loss": 0.5, "r2": None, "mae": 0.4},  # undefined R²: null
        {**task, "step": 4, "split": "test", "loss": 0.6, "r2": 0.2, "mae": 0.5},
        {"step": 4, "split": "val", "task": None, "items": 5, "score": 0.3},
        {**task, "step": 4, "task": "u", "items": 0, "note": "no items in the val split"},
    ]
    got = logged_rows(rows, "val")
    assert [r["task"] for r in got] == ["t", "u"]
    assert "step" not in got[0] and math.isnan(got[0]["r2"]) and got[0]["mae"] == 0.4
    assert got[1] == {k: v for k, v in rows[4].items() if k != "step"}
