"""The pretraining jobs' flags and task selection, without Ray: --set parsing, recipes,
run names, `task_sources` over stores' meta.json, hold-out and leave-out rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from plurel_ray import _native
from plurel_ray.errors import ConfigError
from plurel_ray.model.config import ModelConfig
from plurel_ray.pipeline.flags import (
    OneLineParser,
    add_synthetic_data_arguments,
    add_training_arguments,
    key_value,
)
from plurel_ray.pipeline.pretrain_args import (
    check_training_arguments,
    parse_field,
    recipe_from_args,
    run_name_from_args,
)
from plurel_ray.pipeline.pretrain_data import leave_one_out, split_holdout, task_sources
from plurel_ray.store.sampler import STORE_FORMAT, Source


def _parse(*argv: str) -> argparse.Namespace:
    parser = OneLineParser(prog="job")
    add_synthetic_data_arguments(parser)
    add_training_arguments(parser)
    return parser.parse_args(["--data", "d", *argv])


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [("20", 1, 20), ("1e-3", 0.5, 1e-3), ("3", 0.5, 3.0), ("true", False, True),
     ("No", True, False), ("fp32", "auto", "fp32"), ("0.9,0.95", (0.1, 0.2), (0.9, 0.95))],
)  # fmt: skip
def test_set_values_are_parsed_as_the_fields_type(text, default, expected):
    value = parse_field("key", text, default)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("text", "default"), [("abc", 1), ("1.5", 1), ("maybe", True)])
def test_a_set_value_of_the_wrong_type_names_the_field_and_its_type(text, default):
    with pytest.raises(ConfigError, match=rf"--set steps={text}: steps takes "):
        parse_field("steps", text, default)


def test_set_needs_key_equals_value():
    assert key_value(" steps = 20 ") == ("steps", "20")
    assert key_value("precision=") == ("precision", "")
    for bad in ("steps", "=20"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
            key_value(bad)


def test_set_overrides_model_and_training_fields_and_the_last_one_wins():
    args = _parse("--set", "steps=20", "--set", "lr=1e-3", "--set", "d_model=32", "--set",
                  "compile=true", "--set", "betas=0.9,0.95", "--set", "steps=30")  # fmt: skip
    chosen = recipe_from_args(args)
    assert (chosen.train.steps, chosen.train.lr, chosen.train.compile) == (30, 1e-3, True)
    assert chosen.train.betas == (0.9, 0.95) and chosen.model.d_model == 32
    assert chosen.model.num_blocks == 2  # the rest is the tiny recipe's


def test_an_unknown_field_or_recipe_is_a_config_error_with_suggestions():
    with pytest.raises(ConfigError, match=r"stpes.*steps"):
        recipe_from_args(_parse("--set", "stpes=3"))
    with pytest.raises(ConfigError, match=r"unknown recipe 'huge'.*tiny"):
        recipe_from_args(_parse("--recipe", "huge"))
    with pytest.raises(ConfigError, match="steps must be ≥ 1"):
        recipe_from_args(_parse("--set", "steps=0"))


def test_a_model_from_a_checkpoint_keeps_its_sizes():
    model = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64)
    chosen = recipe_from_args(_parse("--set", "steps=5", "--set", "attention=dense"), model)
    assert chosen.model == ModelConfig(1, 32, 4, 64, attention="dense")
    assert chosen.train.steps == 5
    with pytest.raises(ConfigError, match="--set d_ff, d_model: the model's sizes come from"):
        recipe_from_args(_parse("--set", "d_model=64", "--set", "d_ff=8"), model)


def test_flag_errors_are_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse("--num-workers", "two")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--num-workers" in err and "usage" not in err


def test_resource_flags_out_of_range_are_named():
    check_training_arguments(_parse())
    with pytest.raises(ConfigError, match="--num-workers must be ≥ 1; --eval-max-items must be"):
        check_training_arguments(_parse("--num-workers", "0", "--eval-max-items", "0"))
    with pytest.raises(ConfigError, match=r"^--eval-every must be ≥ 0$"):
        check_training_arguments(_parse("--eval-every", "-1"))
    with pytest.raises(ConfigError, match="--storage s3://b/runs: must be a local"):
        check_training_arguments(_parse("--storage", "s3://b/runs"))


def test_run_names_follow_what_defines_the_run():
    identity = {"train": ["plurel-0"]}
    name = run_name_from_args(_parse("--set", "steps=3"), "tiny-my data", identity)
    assert name.startswith("tiny-my-data-") and " " not in name
    assert run_name_from_args(_parse("--set", "steps=3"), "tiny-my data", identity) == name
    assert run_name_from_args(_parse("--set", "steps=4"), "tiny-my data", identity) != name
    assert run_name_from_args(_parse("--set", "steps=3"), "tiny-my data", {"train": ["x"]}) != name
    assert run_name_from_args(_parse("--name", "mine"), "tiny", identity) == "mine"


def _column(table: str, name: str, sem_type: str) -> dict:
    return {"id": 0, "table": table, "name": name, "sem_type": sem_type}


def _task(name: str, task_type: str, kind: str, tables: dict, target: str) -> dict:
    return {"name": name, "kind": kind, "task_type": task_type, "tables": tables,
            "target_col": target}  # fmt: skip


def _store(root: Path, name: str, tasks: list[dict], columns: list[dict]) -> Path:
    """A store folder with only its meta.json: all `task_sources` reads."""
    store = root / name
    store.mkdir()
    meta = {"format": STORE_FORMAT, "format_version": _native.STORE_FORMAT_VERSION,
            "tasks": tasks, "columns": columns}  # fmt: skip
    (store / "meta.json").write_text(json.dumps(meta))
    return store


@pytest.fixture
def stores(tmp_path) -> list[Path]:
    all_splits = dict.fromkeys(("train", "val", "test"), "users")
    first = _store(tmp_path, "a", [
        _task("users-age", "regression", "autocomplete", all_splits, "age"),
        _task("users-vip", "binary_classification", "autocomplete", all_splits, "vip"),
        _task("users-city", "multiclass_classification", "autocomplete", all_splits, "city"),
        _task("users-bio", "regression", "autocomplete", all_splits, "bio"),  # text target
        _task("users-pic", "regression", "autocomplete", all_splits, "pic"),  # skipped column
        _task("churn", "binary_classification", "forecast",
              {"train": "churn/train", "test": "churn/test"}, "churn"),  # no val split
    ], [_column("users", "age", "number"), _column("users", "vip", "boolean"),
        _column("users", "city", "text"), _column("users", "bio", "text"),
        _column("churn/train", "churn", "number")])  # fmt: skip
    second = _store(tmp_path, "b", [
        _task(f"t{i}", "regression", "autocomplete", all_splits, f"c{i}") for i in range(10)
    ], [_column("users", f"c{i}", "number") for i in range(10)])  # fmt: skip
    return [first, second]


def _names(sources: list[Source]) -> list[str]:
    return [f"{Path(s.store).name}/{s.task}" for s in sources]


def test_task_sources_take_number_and_boolean_targets_in_store_and_meta_order(stores):
    sources = task_sources(stores)
    assert _names(sources) == ["a/users-age", "a/users-vip", "a/churn"] + [
        f"b/t{i}" for i in range(10)
    ]
    assert sources[0] == Source(str(stores[0]), task="users-age", split="train")


def test_task_sources_keep_only_tasks_with_the_split_and_kind(stores):
    assert _names(task_sources(stores[:1], split="val")) == ["a/users-age", "a/users-vip"]
    assert _names(task_sources(stores[:1], split="test", kinds=["forecast"])) == ["a/churn"]
    assert all(s.split == "test" for s in task_sources(stores, split="test"))


def test_max_tasks_per_store_spreads_over_the_tasks(stores):
    assert _names(task_sources(stores[1:], max_tasks_per_store=3)) == ["b/t0", "b/t3", "b/t6"]
    assert len(task_sources(stores, max_tasks_per_store=100)) == 13
    with pytest.raises(ConfigError, match="max_tasks_per_store"):
        task_sources(stores, max_tasks_per_store=0)


def test_holdout_keeps_the_last_stores_out_by_default_one_of_two_or_more():
    assert split_holdout(["a", "b", "c"], None) == (["a", "b"], ["c"])
    assert split_holdout(["a"], None) == (["a"], [])
    assert split_holdout(["a", "b", "c"], 2) == (["a"], ["b", "c"])
    with pytest.raises(ConfigError, match="--holdout 2 must be in"):
        split_holdout(["a", "b"], 2)


def test_leave_out_is_required_with_several_datasets_and_must_name_one():
    assert leave_one_out(["f1", "hm"], "hm") == (["f1"], "hm")
    assert leave_one_out(["f1"], None) == (["f1"], "f1")
    with pytest.raises(ConfigError, match=r"--leave-out NAME is required.*f1, hm"):
        leave_one_out(["f1", "hm"], None)
    with pytest.raises(ConfigError, match="--leave-out xx: no such dataset"):
        leave_one_out(["f1", "hm"], "xx")
    with pytest.raises(ConfigError, match="leaves no dataset to train on"):
        leave_one_out(["f1"], "f1")
