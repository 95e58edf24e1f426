"""cluster.yaml against Ray's own config validation, and autoscaling on Ray's fake
multi-node provider: a generation run the head cannot hold scales workers up."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.cluster_utils import AutoscalingCluster

from plurel_ray.pipeline.generate import GenerationRequest, run_generation

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


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


class LocalAutoscalingCluster(AutoscalingCluster):
    """AutoscalingCluster with its config inlined: the wheel lacks the example.yaml it
    reads (RAY_NOTES §4.2)."""

    def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **kw):
        commands = ("initialization_commands", "setup_commands", "head_setup_commands",
                    "worker_setup_commands", "head_start_ray_commands",
                    "worker_start_ray_commands")  # fmt: skip
        config = {
            "cluster_name": "fake_multinode",
            "max_workers": 8,
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
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
        }
        config["available_node_types"] = {
            **worker_node_types,
            "ray.head.default": {"resources": head_resources, "node_config": {}, "max_workers": 0},
        }
        config.update(kw)
        return config


@pytest.fixture
def autoscaling_cluster(monkeypatch):
    # AutoscalingCluster runs the `ray` CLI by name: make it this environment's.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    gen = {"CPU": 1, "gen": 1, "object_store_memory": 200 * 2**20}
    cluster = LocalAutoscalingCluster(
        head_resources={"CPU": 0},
        worker_node_types={
            "cpu_gen": {"resources": gen, "node_config": {}, "min_workers": 0, "max_workers": 2}
        },
    )
    cluster.start()
    ray.init("auto", log_to_driver=False)
    yield
    ray.shutdown()
    cluster.shutdown()


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
