"""cluster.yaml against Ray's own config validation, and autoscaling on Ray's fake
multi-node provider: a generation run the head cannot hold scales workers up."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from jsonschema import ValidationError
from local_head import free_port, local_head
from ray.autoscaler._private.util import prepare_config, validate_config

from plurel_ray.pipeline.generate import GenerationRequest, run_generation

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_validation(cluster_config):
    config = prepare_config(copy.deepcopy(cluster_config))  # no network: no bootstrap_config
    validate_config(config)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # the head runs no tasks
    assert types["cpu_gen"]["resources"]["gen"] == 1
    assert types["gpu_train"]["resources"]["GPU"] >= 1
    assert all(types[t]["min_workers"] == 0 for t in ("cpu_gen", "gpu_train"))
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    assert any("auth_token" in target for target in config["file_mounts"])


def test_validation_catches_a_typo(cluster_config):
    broken = copy.deepcopy(cluster_config)
    broken["available_node_types"]["cpu_gen"]["max_worker"] = 3
    with pytest.raises(ValidationError, match="max_worker"):
        validate_config(prepare_config(broken))


def fake_autoscaler_config(head_resources: dict, worker_node_types: dict, gcs_address: str):
    """The config `AutoscalingCluster` would write, inlined: the wheel lacks the example.yaml
    it reads. Its start() and shutdown() run `ray stop --force`, which stops every Ray on the
    machine, so the test starts the head itself (`local_head`)."""
    commands = ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands",
                "worker_start_ray_commands")  # fmt: skip
    return {
        "cluster_name": "fake_multinode",
        "max_workers": 8,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,  # launched nodes join this head, not port 6379
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        **{key: [] for key in commands},
        "available_node_types": {
            **worker_node_types,
            "ray.head.default": {"resources": head_resources, "node_config": {}, "max_workers": 0},
        },
    }


@pytest.fixture
def autoscaling_cluster(tmp_path):
    """A head that runs nothing and an autoscaler launching 1-CPU `gen` workers (Ray's
    fake multi-node provider); stopping it stops only its own processes."""
    port = free_port()
    gen = {"CPU": 1, "gen": 1, "object_store_memory": 200 * 2**20}
    workers = {"cpu_gen": {"resources": gen, "node_config": {}, "min_workers": 0, "max_workers": 2}}
    config_file = tmp_path / "autoscaler.json"
    config_file.write_text(json.dumps(
        fake_autoscaler_config({"CPU": 0}, workers, f"127.0.0.1:{port}")))  # fmt: skip
    fake_cluster = {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1"}
    autoscaling = (f"--autoscaling-config={config_file}",)
    with local_head(REPO, num_cpus=0, extra_args=autoscaling, env=fake_cluster, port=port) as head:
        ray.init(address=head.address, log_to_driver=False)
        yield
        ray.shutdown()


@pytest.mark.slow
def test_generation_scales_workers_up_from_zero(autoscaling_cluster, tmp_path, tiny_config):
    assert ray.cluster_resources().get("CPU", 0) == 0  # nothing but a head that runs nothing
    request = GenerationRequest(seeds=range(6), out=str(tmp_path), config=tiny_config,
                                num_actors=2, node_resource="gen",
                                no_progress_timeout_s=300)  # fmt: skip
    summary = run_generation(request, progress=False)
    assert summary.generated == 6 and summary.failed == 0
    nodes = {row["node"] for row in pq.read_table(tmp_path / "_index.parquet").to_pylist()}
    head = ray.get_runtime_context().get_node_id()  # the driver runs on the head
    assert nodes and head not in nodes  # every database came from a launched worker
    assert ray.cluster_resources().get("gen", 0) >= 1
