"""Evaluation during training on Ray Train: --eval-pow2 steps on a held-out store, best/
chosen by the val score, 1 and 2 workers scoring the same items, and a killed run that
resumes with every eval.jsonl row once."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.pipeline.pretrain_data import task_sources
from plurel_ray.pipeline.pretrain_eval import evaluate_run
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.pipeline.train_run import TrainRun, train_and_evaluate
from plurel_ray.store import embed, preprocess
from plurel_ray.synth.database import generate_database
from plurel_ray.train.config import recipe
from plurel_ray.train.eval_schedule import EvalSchedule

pytestmark = pytest.mark.slow  # Ray Train on an embedded Ray

MAX_ITEMS = 12
METRICS = ("loss", "auroc", "r2", "mae")


@pytest.fixture(scope="module")
def data(tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaltrain")
    folders = [write_dataset(generate_database(seed, tiny_config), root / f"db{seed}",
                             tiny_config) for seed in (0, 1)]  # fmt: skip
    stores = [preprocess(folder, root / "stores") for folder in folders]
    embed(stores, progress=False)
    train = task_sources(stores[:1], max_tasks_per_store=3)
    held_out = task_sources(stores[1:], split="val", max_tasks_per_store=3)
    # Logical oversubscription: 2 training workers + 2 sampler actors on 2 cores.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield train, held_out
    ray.shutdown()


def _train(data, storage: Path, name: str, steps: int, workers: int = 1) -> Path:
    """Train and evaluate a tiny run with --eval-pow2; returns its run folder."""
    train, held_out = data
    tiny = recipe("tiny", steps=steps, batch_size=4, ctx_len=64, checkpoint_every=2,
                  d_model=32, d_ff=64, lr=3e-3)  # fmt: skip
    resources = RunResources(num_workers=workers, sampler_cpus=0.5, max_failures=1)
    run = TrainRun(recipe=tiny, sources=train, eval_sources=held_out, name=name,
                   storage=str(storage), eval_max_items=MAX_ITEMS, eval_pow2=True,
                   progress=False, resources=resources)  # fmt: skip
    train_and_evaluate(run, say=lambda _: None)
    return storage / name


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]


def _key(row: dict) -> tuple:
    return row["step"], row["split"], row.get("store"), row["task"]


@pytest.fixture(scope="module")
def one_worker(data, tmp_path_factory) -> Path:
    return _train(data, tmp_path_factory.mktemp("runs"), "one", steps=4)


def test_pow2_evaluates_steps_0_1_2_4_on_val_and_test_of_the_held_out_store(data, one_worker):
    rows = _rows(one_worker)
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)), "a row is duplicated"
    tasks = [s.label for s in data[1]]
    expected = {(step, split, task) for step in (0, 1, 2, 4) for split in ("val", "test")
                for task in [*tasks, None]}  # fmt: skip
    assert {(step, split, task) for step, split, _, task in keys} == expected
    scored = [r for r in rows if r["task"] is not None and r["items"]]
    assert scored and all(r["items"] <= MAX_ITEMS for r in scored)
    report = (one_worker / "report.md").read_text()
    assert "Evaluation during training" in report and "![mean over tasks](eval-mean.png)" in report
    assert (one_worker / "eval-mean.png").stat().st_size > 0


def test_best_is_the_step_of_the_best_val_score_and_holds_its_weights(data, one_worker):
    rows = _rows(one_worker)
    val = [r for r in rows if r["task"] is None and r["split"] == "val" and r["score"] is not None]
    assert val, "no step has a val score"
    top = max(val, key=lambda r: (r["score"], -r["step"]))
    best = json.loads((one_worker / "best" / "best.json").read_text())
    assert best == {"step": top["step"], "score": top["score"], "split": "val"}
    # Scored again on the driver, best/ gives that step's val rows: its weights are that step's.
    rescored = evaluate_run(one_worker / "best", data[1], "val", 4, 64, max_items=MAX_ITEMS,
                            out_dir=one_worker / "check")  # fmt: skip
    for row in rescored:
        logged = next(r for r in rows if _key(r) == (best["step"], "val", row["store"],
                                                     row["task"]))  # fmt: skip
        assert row["items"] == logged["items"]
        for key in METRICS:
            if logged.get(key) is not None:
                assert row[key] == pytest.approx(logged[key], rel=1e-4, abs=1e-6), key


def test_two_workers_score_the_items_and_the_zero_shot_metrics_of_one(data, one_worker,
                                                                      tmp_path):  # fmt: skip
    two = {_key(r): r for r in _rows(_train(data, tmp_path, "two", steps=4, workers=2))}
    one = {_key(r): r for r in _rows(one_worker)}
    assert two.keys() == one.keys()
    for key, row in one.items():
        assert two[key]["items"] == row["items"], key
        if key[0] == 0:  # the same weights before any update: the same scores
            for metric in METRICS:
                if row.get(metric) is not None:
                    assert two[key][metric] == pytest.approx(row[metric], rel=1e-4, abs=1e-6)


def _train_workers() -> set[int]:
    """pids of the live Ray Train worker processes on this machine."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::RayTrainWorker"):
                found.add(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return found


def _kill_after(run: Path, step_dir: str, stale: set[int], seen: dict) -> None:
    """Once Ray registered checkpoint `step_dir`, keep its eval.jsonl and kill the worker."""
    snapshot = run / "checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + 300
    while not (snapshot.exists() and step_dir in snapshot.read_text()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    seen["rows"] = (run / step_dir / "eval.jsonl").read_text().splitlines()
    for pid in _train_workers() - stale:
        os.kill(pid, signal.SIGKILL)
        seen["killed"] = pid
        return


def test_a_killed_run_resumes_with_every_eval_row_once(data, tmp_path):
    steps, seen = 24, {}
    killer = threading.Thread(target=_kill_after, args=(tmp_path / "killed", "step_00000004",
                                                        _train_workers(), seen))  # fmt: skip
    killer.start()
    run = _train(data, tmp_path, "killed", steps=steps)
    killer.join()
    assert "killed" in seen, "no training worker was found to kill"
    rows = _rows(run)
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)), "a row is duplicated"
    due = EvalSchedule(pow2=True, last_step=steps).steps()
    assert sorted({r["step"] for r in rows}) == due == [0, 1, 2, 4, 8, 16, 24]
    per_step = {step: sum(1 for r in rows if r["step"] == step) for step in due}
    assert len(set(per_step.values())) == 1, per_step  # every step has all its rows
    # The rows up to the checkpoint are those it carried, not evaluated again.
    assert [json.dumps(r) for r in rows[: len(seen["rows"])]] == [
        json.dumps(json.loads(line)) for line in seen["rows"]
    ]


def test_the_final_evaluation_is_the_last_logged_step_not_a_second_pass(data, one_worker):
    with (one_worker / "eval_val.csv").open() as f:
        written = list(csv.DictReader(f))
    last = [r for r in _rows(one_worker) if r["step"] == 4 and r["split"] == "val" and r["task"]]
    assert [(r["store"], r["task"], int(r["items"])) for r in written] == [
        (r["store"], r["task"], r["items"]) for r in last
    ]
    # What the driver would have computed on the final checkpoint: the same scores.
    final = sorted(one_worker.glob("step_*"))[-1]
    rescored = evaluate_run(final, data[1], "val", 4, 64, max_items=MAX_ITEMS,
                            out_dir=one_worker / "check-final")  # fmt: skip
    for row, logged in zip(rescored, written, strict=True):
        assert row["items"] == int(logged["items"])
        for key in METRICS:
            if logged[key] not in ("", "nan"):
                assert row[key] == pytest.approx(float(logged[key]), rel=1e-4, abs=1e-6), key
