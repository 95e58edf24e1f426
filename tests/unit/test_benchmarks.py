"""The benchmark scripts still run and print their documented JSON keys.

Smoke runs on tiny inputs: they check that the scripts work, not how fast anything is
(figures come from full runs, recorded in the README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from realdata import write_realdata_folder

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_json(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def test_bench_generate_prints_the_four_required_figures():
    figures = run_json("bench_generate.py", "--seeds", "13-13")
    assert {"median_s", "max_s", "cells_per_s", "peak_rss_mb"} <= figures.keys()
    assert figures["total_cells"] > 0 and figures["cells_per_s"] > 0


@pytest.mark.parametrize("write_tasks", [False, True])
def test_bench_generate_times_generation_and_write_apart(write_tasks, tmp_path):
    args = ["--seeds", "13-13", "--write", str(tmp_path)] + ["--write-tasks"] * write_tasks
    figures = run_json("bench_generate.py", *args)
    assert figures["write_s_total"] > 0 and figures["write_tasks"] is write_tasks
    assert figures["generate_and_write_s"] == figures["total_s"] + figures["write_s_total"]
    assert 0 < figures["median_cells_per_s_with_write"] < figures["median_cells_per_s"]
    assert (tmp_path / "seed-000013" / "tasks").is_dir() is write_tasks


def test_bench_native_mlp_compares_kernel_and_numpy_for_every_case():
    rows = run_json("bench_native_mlp.py", "--n", "64", "--repeats", "1")
    assert any(key.startswith("accumulate/mixed") for key in rows)
    assert all(row["native_ns"] > 0 and row["numpy_ns"] > 0 for row in rows.values())


@pytest.mark.slow  # ray.init and a Ray Data run
def test_bench_pipeline_prints_speedup_and_overhead():
    figures = run_json("bench_pipeline.py", "--num-dbs", "2")
    assert {"single_dbs_per_s", "ray_dbs_per_s", "speedup", "overhead_frac"} <= figures.keys()
    assert figures["single_dbs_per_s"] > 0 and figures["ray_dbs_per_s"] > 0
    assert figures["actor_start_s"] is not None and figures["heavy_imports"] == []
    # the timeline split: both actors constructed, then on a database, within the run
    assert 0 < figures["actor_init_at_s"] < figures["ray_s"]
    assert 0 < figures["first_db_at_s"] < figures["ray_s"]
    assert 0 <= figures["tail_s"] <= figures["ray_s"]


@pytest.mark.slow  # builds stores, then samples: an end-to-end run
def test_bench_sampler_prints_throughput_figures():
    args = "--dbs 1 --tasks-per-store 2 --batch-size 8 --ctx-len 128 --batches 3 --skip-full"
    figures = run_json("bench_sampler.py", *args.split())
    keys = {"contexts_per_s", "batches_per_s", "compact_batches_per_s", "preprocess_s_median"}
    assert keys <= figures.keys()
    assert figures["compact_batches_per_s"] > 0 and figures["items"] > 0


def test_bench_preprocess_prints_median_and_max_per_database(tmp_path):
    folder = write_realdata_folder(tmp_path / "realdata")
    figures = run_json("bench_preprocess.py", str(folder), "--repeats", "1")
    assert figures["max_s"] >= figures["median_s"] > 0
    assert figures["per_db"][0]["cells"] > 0


@pytest.mark.slow  # imports torch and trains: an end-to-end run
def test_bench_train_runs_the_tiny_recipe_on_cpu():
    tiny = ["--recipe", "tiny", "--steps", "3", "--batch-size", "2", "--ctx-len", "128"]
    figures = run_json("bench_train.py", *tiny, "--device", "cpu")
    assert {"tokens_per_s", "step_time_s", "mfu", "data_wait_frac", "device"} <= figures.keys()
    assert figures["tokens_per_s"] > 0 and 0 <= figures["data_wait_frac"] <= 1
    assert figures["mfu"] is None, "no peak FLOP/s is known for a CPU"


def test_bench_embed_prints_strings_per_second_for_both_workloads():
    figures = run_json("bench_embed.py", "--labels", "6", "--long", "2", "--repeats", "1")
    for workload in ("labels", "long"):
        assert figures[workload]["strings_per_s"] > 0 and figures[workload]["strings_per_cpu_s"] > 0
    assert figures["long"]["mean_tokens"] > 5 * figures["labels"]["mean_tokens"]
    assert figures["cpu_model"]


@pytest.mark.slow  # builds and embeds a store, then scores items with two models
def test_bench_eval_prints_items_per_second_on_one_core_and_all_cores():
    smoke = ["--seconds", "0.2", "--batch-size", "2", "--ctx-len", "64"]
    figures = run_json("bench_eval.py", *smoke)
    assert figures["machine"]["model"] and figures["machine"]["cpus"] >= 1
    for name in ("tiny", "plurel-paper"):
        one, every = figures["recipes"][name]["one_core"], figures["recipes"][name]["all_cores"]
        assert one["threads"] == 1 and every["threads"] == figures["machine"]["cpus"]
        assert one["items"] > 0 and one["items_per_s"] > 0 and 0 <= one["sample_frac"] <= 1
        assert set(one["items_by_task"]) == {"customer-churn", "orders-amount", "orders-returned"}


@pytest.mark.slow  # builds and embeds a store, then predicts over Ray with 1 and 2 actors
def test_bench_predict_prints_items_per_second_for_one_and_two_actors():
    smoke = ["--items", "8", "--ctx-len", "32", "--recipes", "tiny"]
    figures = run_json("bench_predict.py", *smoke)
    assert figures["machine"]["model"] and figures["task"] == "orders-amount"
    runs = figures["recipes"]["tiny"]
    assert [runs[k]["actors"] for k in ("1", "2")] == [1, 2]
    assert all(r["items"] == 8 and r["items_per_s"] > 0 and r["speedup"] >= 0
               for r in runs.values())  # fmt: skip
