"""The generation pipeline on a simulated 3-node cluster (`ray.cluster_utils.Cluster`)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster
from ray_helpers import assert_same_as_single_process

from plurel_ray.pipeline.generate import GenerationRequest, run_generation

pytestmark = pytest.mark.slow  # a 3-node Ray Cluster


@pytest.fixture(scope="module")
def three_nodes():
    # A head that runs nothing (as in cluster.yaml) and two 1-CPU workers: a pool of two
    # generator actors must land on both workers.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield {w.node_id for w in workers}
    ray.shutdown()
    cluster.shutdown()


def test_databases_come_from_several_nodes_and_match_one_process(
    three_nodes, tmp_path, tiny_config
):
    # A tiny database takes ~25 ms and its hand-over as much: with 12 seeds one actor
    # finished them all before the other was ready (seen in CI). 96 seeds keep one actor
    # alone busy for ~5 s, several times the start-up gap between two actors.
    seeds = list(range(96))
    request = GenerationRequest(seeds=seeds, out=str(tmp_path / "out"), config=tiny_config,
                                num_actors=2, no_progress_timeout_s=120)  # fmt: skip
    summary = run_generation(request, progress=False)
    assert summary.generated == len(seeds) and summary.failed == 0
    index = pq.read_table(tmp_path / "out" / "_index.parquet").to_pylist()
    nodes = {row["node"] for row in index}
    assert nodes <= three_nodes and len(nodes) == 2, nodes
    for seed in seeds:
        assert_same_as_single_process(tmp_path / "out" / f"plurel-{seed}", seed, tiny_config,
                                      tmp_path)  # fmt: skip
