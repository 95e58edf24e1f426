"""One orchestration path: the resource flags are the fields of one dataclass, data is
prepared and runs are trained and evaluated by one module each, sources stay `Source`
objects, and every run-folder file name is defined once. Read from the source with `ast`
and from real parsers; nothing here starts Ray."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import pickle
import runpy
from pathlib import Path

import pytest

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.prepare import prepare_synthetic
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.pipeline.train_run import run_name
from plurel_ray.store.sampler import Source

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plurel_ray"
TRAINING_JOBS = ("pretrain.py", "continue_pretrain.py", "baseline_pretrain.py", "scaling_law.py")


def _parser(job: str):
    return runpy.run_path(str(REPO / "jobs" / job), run_name="flags")["build_parser"]()


def _calls(name: str) -> set[str]:
    """The modules of the package (and jobs) that call a function called `name`."""
    found = set()
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "jobs").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.add(path.relative_to(REPO).as_posix())
    return found


@pytest.mark.parametrize("job", TRAINING_JOBS)
def test_every_training_job_has_one_flag_per_resource_field(job):
    fields = {f.metadata["flag"]: f for f in dataclasses.fields(RunResources)}
    options = {name for action in _parser(job)._actions for name in action.option_strings}
    assert set(fields) <= options
    args = _parser(job).parse_args([
        *(["--grid", "tiny"] if job == "scaling_law.py" else []),
        *(["--datasets", "d"] if job == "baseline_pretrain.py" else ["--data", "d"]),
        *(["--init", "x.pt"] if job == "continue_pretrain.py" else []),
        *(["--out", "o"] if job == "scaling_law.py" else []),
        "--num-workers", "3", "--use-gpu", "--sampler-cpus", "0.5", "--max-failures", "0",
    ])  # fmt: skip
    assert RunResources.from_args(args) == RunResources(
        num_workers=3, use_gpu=True, sampler_cpus=0.5, max_failures=0
    )


def test_resource_bounds_are_named_by_their_flag():
    assert RunResources.problems({**dataclasses.asdict(RunResources()), "num_workers": 0}) == [
        "--num-workers must be ≥ 1"
    ]
    with pytest.raises(ConfigError, match="--num-workers must be ≥ 1; --max-failures must be ≥ 0"):
        RunResources(num_workers=0, max_failures=-1)


def test_data_is_prepared_and_runs_are_trained_by_one_module_each():
    assert _calls("run_generation") == {
        "plurel_ray/pipeline/prepare.py",  # the training commands and the demo
        "plurel_ray/pipeline/generate_args.py",  # `generate` itself
        "plurel_ray/pipeline/verify.py",  # `runs verify --repair` makes bad seeds again
    }
    assert _calls("run_pretraining") == {"plurel_ray/pipeline/train_run.py"}
    assert _calls("evaluate_run") == {"plurel_ray/pipeline/train_run.py"}
    assert _calls("PretrainRequest") == {"plurel_ray/pipeline/train_run.py"}


def test_training_and_evaluation_sources_come_from_the_data_selection_module():
    selection = "plurel_ray/pipeline/data_selection.py"
    # Every pretraining job, the demo and the scaling sweep get their sources there.
    assert {f"jobs/{job}" for job in TRAINING_JOBS[:3]} <= _calls("select_data")
    assert _calls("synthetic_sources") == {
        selection, "plurel_ray/pipeline/demo.py", "plurel_ray/pipeline/scaling_sweep.py",
    }  # fmt: skip
    # Nothing else picks tasks or reads a suite on its own; `tasks add` reads a task file
    # only to write the task folders it defines.
    assert _calls("task_sources") == {selection}
    assert _calls("resolve_suite") == {selection}
    assert _calls("load_suite") == {selection, "plurel_ray/dataset/task_writer.py"}


def test_run_folder_file_names_are_defined_once():
    names = {"METRICS_FILE", "WEIGHTS_FILE", "CONFIG_FILE", "RESUME_FILE"}
    defined = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in names:
                        defined.setdefault(target.id, []).append(path.name)
    assert defined == {name: ["run_files.py"] for name in names}


def test_sources_travel_as_source_objects_through_pickle():
    source = Source("/data/stores/plurel-0", task="table_1-feature_2", split="val")
    assert pickle.loads(pickle.dumps(source)) == source  # what Ray does to actor arguments


def test_run_names_hash_like_the_sweep_did_so_started_runs_resume():
    identity = {"recipe": {"steps": 4}, "data": "/d", "workers": 1, "max_tasks": None}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    assert run_name("scaling-2dbs-4steps", identity) == f"scaling-2dbs-4steps-{digest}"
    assert run_name("tiny-my data", identity).startswith("tiny-my-data-")


def test_a_bad_holdout_fails_before_anything_is_generated(tmp_path):
    with pytest.raises(ConfigError, match="--holdout 3 must be in"):
        prepare_synthetic(tmp_path / "data", range(3), 3)
    assert not (tmp_path / "data").exists()
