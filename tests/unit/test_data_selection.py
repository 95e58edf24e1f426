"""Data selection (pipeline/data_selection.py): synthetic and real data mixed, a left-out
dataset, a task suite, and RelBench-3 dataset ids resolved from the local test Hub — on
real stores (preprocess, embedding with a tiny BERT folder), no Ray."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from hub_server import HubServer
from realshaped import write_all
from tiny_bert import write_tiny_bert

from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import ConfigError, DatasetError
from plurel_ray.pipeline.data_selection import select_data
from plurel_ray.pipeline.flags import OneLineParser, add_data_arguments, add_training_arguments
from plurel_ray.pipeline.prepare import PreparedData
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.synth.database import generate_database

TOKEN = "hf_test_secret_data_9c1e"


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_config):
    """Two real-shaped folders, two synthetic stores, a tiny text encoder."""
    root = tmp_path_factory.mktemp("selection")
    folders = write_all(root / "real")
    synthetic = [preprocess(write_dataset(generate_database(seed, small_config),
                                          root / "gen" / f"plurel-{seed}", small_config),
                            root / "stores") for seed in (0, 1)]  # fmt: skip
    return {"shop": folders["shop"], "forum": folders["forum"], "synthetic": synthetic,
            "encoder": write_tiny_bert(root / "bert"), "root": root}  # fmt: skip


def parse(world, *flags: str) -> argparse.Namespace:
    parser = OneLineParser(prog="test")
    add_data_arguments(parser, synthetic=True, real=True)
    add_training_arguments(parser)
    storage = str(world["root"] / "runs")
    return parser.parse_args([*flags, "--storage", storage, "--no-progress",
                              "--text-model", str(world["encoder"])])  # fmt: skip


def synthetic(world):
    return lambda args: PreparedData(train=world["synthetic"][:1], held_out=world["synthetic"][1:])


def labels(sources) -> list[tuple[str, str, str | None]]:
    return [(Path(s.store).name, s.label, s.split) for s in sources]


def test_text_model_flag_exists_with_the_data_flags(world):
    assert parse(world, "--data", "d").text_model == str(world["encoder"])


def test_synthetic_and_real_data_mix_and_the_held_out_stores_are_evaluated(world):
    args = parse(world, "--data", "d", "--datasets", str(world["shop"]), str(world["forum"]))
    chosen = select_data(args, synthetic_data=synthetic(world))
    stores = {Path(s.store).name for s in chosen.train}
    assert stores == {"plurel-0", "shop", "forum"}
    assert all(s.split == "train" for s in chosen.train)
    assert {(Path(s.store).name, s.split) for s in chosen.eval} == {("plurel-1", "val")}
    assert chosen.left_out is None and set(chosen.real_stores) == {"shop", "forum"}
    assert (world["root"] / "runs" / "shop" / "stores" / "shop" / "meta.json").is_file()
    assert chosen.identity["train"] == ["plurel-0", "shop", "forum"]


def test_a_left_out_dataset_is_evaluated_and_kept_out_of_training(world):
    args = parse(world, "--data", "d", "--datasets", str(world["shop"]), str(world["forum"]),
                 "--leave-out", "forum", "--eval-split", "test")  # fmt: skip
    chosen = select_data(args, synthetic_data=synthetic(world))
    assert {Path(s.store).name for s in chosen.train} == {"plurel-0", "shop"}
    assert sorted(labels(chosen.eval)) == [
        ("forum", "comments-accepted", "test"), ("forum", "comments-upvotes", "test"),
        ("forum", "user-active", "test"),
    ]  # fmt: skip
    assert chosen.identity["eval"] == "forum"


def test_a_suite_chooses_the_training_and_the_evaluation_tasks(world, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "tasks": [
        {"dataset": "shop", "table": "orders", "target": "quantity", "leakage": ["amount"]},
        {"dataset": "forum", "task": "user-active"},
    ]}))  # fmt: skip
    args = parse(world, "--datasets", str(world["shop"]), str(world["forum"]),
                 "--leave-out", "forum", "--tasks", str(suite))  # fmt: skip
    chosen = select_data(args)
    assert labels(chosen.train) == [("shop", "orders-quantity", "train")]
    assert chosen.train[0].leakage == [["orders", "amount"]]
    assert labels(chosen.eval) == [("forum", "user-active", "val")]


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--tasks", "relbench-paper", "--data", "d"], "--tasks selects tasks of --datasets"),
        (["--datasets", "SHOP", "FORUM"], "--leave-out NAME is required"),
        (["--datasets", "SHOP", "--leave-out", "shop"], "leaves no dataset to train on"),
        (["--datasets", "SHOP", "FORUM", "--leave-out", "shp"], "--leave-out shp: no such"),
        (["--datasets", "SHOP", "FORUM", "--leave-out", "shop", "--tasks", "nope"],
         "not a built-in suite"),
        (["--datasets", "./missing/folder/x"], "no such folder, and not a Hub dataset id"),
    ],
)  # fmt: skip
def test_bad_data_flags_are_one_line_config_errors(world, flags, match):
    flags = [str(world[f.lower()]) if f in ("SHOP", "FORUM") else f for f in flags]
    with pytest.raises((ConfigError, DatasetError), match=match) as err:
        select_data(parse(world, *flags), synthetic_data=synthetic(world))
    assert "\n" not in str(err.value)


def test_without_data_flags_nothing_is_selected(world):
    with pytest.raises(ConfigError, match="no data: give --data"):
        select_data(argparse.Namespace(data=None, datasets=None, tasks=None, max_tasks=None))


RESOLVE = """
import sys
from plurel_ray.errors import DatasetError
from plurel_ray.pipeline.data_selection import dataset_folder
for text in sys.argv[1:]:
    try:
        print(dataset_folder(text))
    except DatasetError as err:
        print("error:", err)
"""


def test_a_hub_dataset_id_is_downloaded_once_from_hf_endpoint_and_a_bad_one_is_one_line(
    world, tmp_path, monkeypatch
):
    # CI exports HF_HUB_OFFLINE=1; the local test Hub must stay reachable for the upload.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with HubServer(tokens={TOKEN}) as hub:
        api = huggingface_hub.HfApi(endpoint=hub.endpoint, token=TOKEN)
        api.create_repo("org/relbench3", repo_type="dataset")
        api.upload_folder(folder_path=str(world["shop"]), path_in_repo="shop",
                          repo_id="org/relbench3", repo_type="dataset")  # fmt: skip
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN,
               "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}  # fmt: skip
        ids = ["org/relbench3/shop", "org/relbench3/shop", "org/nothing/shop"]
        done = subprocess.run([sys.executable, "-c", RESOLVE, *ids], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        first, again, bad = done.stdout.splitlines()
        assert first == again and first.startswith(str(tmp_path / "hf"))
        assert (Path(first) / "manifest.yaml").read_bytes() == (
            world["shop"] / "manifest.yaml"
        ).read_bytes()
        manifests = [
            r for r in hub.requests if r.method == "GET" and r.path.endswith("/shop/manifest.yaml")
        ]
        assert len(manifests) == 1  # the second resolution reads the cache
        assert bad.startswith("error: --datasets org/nothing/shop: the Hub dataset cannot be")
        assert TOKEN not in done.stdout


def test_a_store_of_another_folder_or_of_changed_files_is_refused(world, tmp_path):
    from plurel_ray.errors import StoreError
    from plurel_ray.pipeline.prepare import prepare_datasets

    storage = tmp_path / "runs"
    encoder = str(world["encoder"])
    store = prepare_datasets({"forum": world["forum"]}, storage, False, encoder)["forum"]
    again = prepare_datasets({"forum": world["forum"]}, storage, False, encoder)["forum"]
    assert again == store  # the same folder and files: the store is reused
    twin = tmp_path / "elsewhere" / "forum"
    shutil.copytree(world["forum"], twin)
    with pytest.raises(StoreError, match="two datasets share the name 'forum'") as err:
        prepare_datasets({"forum": twin}, storage, False, encoder)
    assert str(twin) in str(err.value) and "\n" not in str(err.value)
    changed = tmp_path / "changed"
    shutil.copytree(world["forum"], changed / "forum")
    other = prepare_datasets({"forum": changed / "forum"}, changed / "runs", False, encoder)
    users = changed / "forum" / "db" / "users.parquet"
    users.write_bytes(world["shop"].joinpath("db", "customers.parquet").read_bytes())
    with pytest.raises(StoreError, match="before its tables or task folders changed"):
        prepare_datasets({"forum": changed / "forum"}, changed / "runs", False, encoder)
    assert (other["forum"] / "meta.json").is_file()  # refused, not replaced
