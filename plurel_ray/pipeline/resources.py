"""What a training run reserves, and whether the cluster can fit it, asked before any
sampler actor or trainer starts.

    wanted = RunResources(num_workers=8, cpus_per_worker=1, sampler_cpus=1, use_gpu=False)
    wait_for_resources(wanted)   # returns, or raises ConfigError in one line

`RunResources` is the one declaration of the resource flags: each field carries its flag
(name, help, parsing, lower bound) in its metadata, and `plurel_ray.pipeline.flags`
turns the fields into the flags of every training command, so a new resource is one
field here. This module imports Ray only inside the functions that ask the cluster, so
building a parser stays light.

Ray keeps a request it cannot place pending forever, without a word; its sampler actors
meanwhile hold CPUs the workers wait for. So a run compares what it asks for with the
cluster's capacity (every alive node's total resources, not what is free now: a busy
cluster frees its resources, a small one never grows). On a fixed cluster a run that
cannot fit fails at once. On an autoscaling cluster it asks the autoscaler for its
bundles (`ray.autoscaler.sdk.request_resources`) and waits up to `resource_wait_s`
seconds for nodes that fit, saying so; a run above the autoscaler's known maximum fails
at once.

The check uses necessary conditions only (the totals, and each bundle on some node), so
it never refuses a run Ray could place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plurel_ray.errors import ConfigError

# How often a waiting run looks at the cluster again.
POLL_S = 2.0
# An autoscaler starts a node in a few minutes; a GPU node can take ten.
DEFAULT_RESOURCE_WAIT_S = 600.0
# The prefix of the node types the autoscaler's read-only provider gives the nodes of a
# cluster started by hand (`ray start`, `ray.init`): such a cluster never grows.
READONLY_NODE_TYPE_PREFIX = "node_"
_RESOURCES = ("CPU", "GPU")
_FIX = "lower --num-workers, --cpus-per-worker or --sampler-cpus (or drop --use-gpu)"


def non_negative_float(text: str) -> float:
    """`text` as a number ≥ 0 (CPUs, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _flag(default: Any, name: str, help: str, minimum: float | None = None,
          **options: Any) -> Any:  # fmt: skip
    """A field whose metadata is its flag: `name`, `help`, argparse `options`, and the
    `minimum` value a run accepts (checked by `RunResources.problems`)."""
    return field(default=default, metadata={"flag": name, "help": help, "options": options,
                                            "minimum": minimum})  # fmt: skip


@dataclass(frozen=True)
class RunResources:
    """What a training run reserves and how it copes with failures: per worker
    `cpus_per_worker` CPUs (and a GPU with `use_gpu`) and one sampler actor of
    `sampler_cpus` CPUs. Each field is also a flag (its metadata).

    Args:
        num_workers: data-parallel training workers.
        cpus_per_worker: CPUs reserved per worker.
        sampler_cpus: CPUs reserved per sampler actor (one per worker).
        use_gpu: one GPU per worker.
        max_failures: worker-group restarts from the last checkpoint before giving up.
        resource_wait_s: on an autoscaling cluster, the longest wait for nodes that fit
            the workers and samplers; a fixed cluster too small fails at once.

    Raises:
        ConfigError: a field below its minimum, named by its flag.
    """

    num_workers: int = _flag(1, "--num-workers", "data-parallel training workers "
                             "(default: %(default)s)", 1, type=int, metavar="N")  # fmt: skip
    cpus_per_worker: float = _flag(
        1.0, "--cpus-per-worker", "CPUs reserved per training worker (default: %(default)s)",
        type=non_negative_float, metavar="C",
    )  # fmt: skip
    sampler_cpus: float = _flag(
        1.0, "--sampler-cpus",
        "CPUs reserved per sampler actor, one per worker (default: %(default)s)",
        type=non_negative_float, metavar="C",
    )  # fmt: skip
    use_gpu: bool = _flag(False, "--use-gpu", "one GPU per training worker", action="store_true")
    max_failures: int = _flag(
        3, "--max-failures",
        "restarts of the worker group from its last checkpoint (default: %(default)s)", 0,
        type=int, metavar="N",
    )  # fmt: skip
    resource_wait_s: float = _flag(
        DEFAULT_RESOURCE_WAIT_S, "--resource-wait-s",
        "on an autoscaling cluster, seconds to wait for nodes that fit the workers and "
        "samplers before failing; a fixed cluster that cannot fit them fails at once "
        "(default: %(default)s)",
        type=non_negative_float, metavar="S",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if bad := self.problems(dataclasses.asdict(self)):
            raise ConfigError("; ".join(bad))

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[str]:
        """`--flag must be ≥ N` for each field of `values` (a field → value mapping, e.g.
        `vars(args)`) below its minimum."""
        bounded = [(f, f.metadata["minimum"]) for f in dataclasses.fields(cls)
                   if f.metadata["minimum"] is not None]  # fmt: skip
        return [f"{f.metadata['flag']} must be ≥ {low}" for f, low in bounded
                if values[f.name] < low]  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunResources:
        """The resources of parsed flags (`flags.add_resource_arguments`)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def worker_resources(self) -> dict[str, float]:
        """What Ray Train reserves per worker (`resources_per_worker`)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": 1.0} if self.use_gpu else {})}

    def bundles(self) -> list[dict[str, float]]:
        """The resource bundles Ray places: one per worker, then one per sampler."""
        worker = {"CPU": self.cpus_per_worker, "GPU": 1.0 if self.use_gpu else 0.0}
        sampler = {"CPU": self.sampler_cpus}
        bundles = [worker] * self.num_workers + [sampler] * self.num_workers
        return [{k: v for k, v in b.items() if v > 0} for b in bundles if any(b.values())]

    def totals(self) -> dict[str, float]:
        """CPUs and GPUs of all bundles together."""
        return {key: sum(b.get(key, 0.0) for b in self.bundles()) for key in _RESOURCES}

    def describe(self) -> str:
        """E.g. `8 workers × 1 CPU + 8 samplers × 1 CPU = 16 CPUs and 0 GPUs`."""
        gpu = " + 1 GPU" if self.use_gpu else ""
        totals = self.totals()
        return (f"{self.num_workers} workers × {_num(self.cpus_per_worker)} CPU{gpu} + "
                f"{self.num_workers} samplers × {_num(self.sampler_cpus)} CPU = "
                f"{_num(totals['CPU'])} CPUs and {_num(totals['GPU'])} GPUs")  # fmt: skip


def _num(value: float) -> str:
    return f"{value:g}"


def _describe_nodes(nodes: list[dict[str, float]]) -> str:
    cpus, gpus = (sum(n.get(key, 0.0) for n in nodes) for key in _RESOURCES)
    big = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    return (f"{_num(cpus)} CPUs and {_num(gpus)} GPUs on {len(nodes)} node(s), the largest "
            f"{_num(big.get('CPU', 0.0))} CPUs and {_num(big.get('GPU', 0.0))} GPUs")  # fmt: skip


def shortfall(wanted: RunResources, nodes: list[dict[str, float]]) -> str | None:
    """Why a cluster of `nodes` (each node's total resources) cannot fit `wanted`, or
    None when it may: the totals suffice and every bundle fits on some node.

    Args:
        wanted: the run's resources.
        nodes: the total resources of each alive node.
    """
    have = {key: sum(n.get(key, 0.0) for n in nodes) for key in _RESOURCES}
    short = [key for key, need in wanted.totals().items() if need > have[key] + 1e-9]
    unplaceable = [
        b for b in wanted.bundles()
        if not any(all(n.get(k, 0.0) + 1e-9 >= v for k, v in b.items()) for n in nodes)
    ]  # fmt: skip
    if not short and not unplaceable:
        return None
    why = f" (no node has {_num(unplaceable[0]['CPU'])} CPUs for one bundle)" if (
        unplaceable and not short and "CPU" in unplaceable[0]) else ""  # fmt: skip
    return (f"the run asks for {wanted.describe()}{why}; the cluster has "
            f"{_describe_nodes(nodes)}")  # fmt: skip


def node_resources() -> list[dict[str, float]]:
    """The total resources of every alive node of the connected cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]


def autoscaler_maximum() -> dict[str, float] | None:
    """The most CPUs and GPUs the autoscaler may grow the cluster to, when it published
    its configuration (KubeRay, autoscaler v2); None when it did not."""
    from ray._private.state import state

    try:
        return state.get_max_resources_from_cluster_config()
    except Exception:  # no such record on this Ray: the check then only waits
        return None


def is_autoscaling() -> bool:
    """Whether an autoscaler may add nodes: it published a configuration, or the
    autoscaler's status names node types from a cluster config (a cluster started by
    hand only has the read-only provider's anonymous `node_<id>` types)."""
    if autoscaler_maximum():
        return True
    from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
    from ray.experimental.internal_kv import _internal_kv_get

    status = _internal_kv_get(DEBUG_AUTOSCALING_STATUS)
    if not status:
        return False
    report = json.loads(status).get("autoscaler_report") or {}
    types = {*(report.get("active_nodes") or {}), *(report.get("idle_nodes") or {}),
             *(report.get("pending_launches") or {})}  # fmt: skip
    return any(not t.startswith(READONLY_NODE_TYPE_PREFIX) for t in types)


def wait_for_resources(wanted: RunResources, say: Callable[[str], None] = print) -> None:
    """Return once the connected cluster can fit `wanted`; on an autoscaling cluster
    ask for it and wait up to `wanted.resource_wait_s` seconds.

    Args:
        wanted: the run's resources.
        say: where the one waiting line goes.

    Raises:
        ConfigError: the cluster cannot fit the run: it is fixed, the autoscaler's
            maximum is too small, or the wait ran out. The message is one line naming
            what the run asks for and what the cluster has.
    """
    missing = shortfall(wanted, node_resources())
    if missing is None:
        return
    if not is_autoscaling():
        raise ConfigError(f"{missing}, and it does not autoscale; {_FIX}")
    maximum = autoscaler_maximum()
    if maximum and (over := [k for k, v in wanted.totals().items() if v > maximum.get(k, 0)]):
        limits = ", ".join(f"{_num(maximum.get(k, 0))} {k}s" for k in over)
        raise ConfigError(f"{missing}; its autoscaler grows it to at most {limits}; {_FIX}")
    from ray.autoscaler.sdk import request_resources

    wait_s = wanted.resource_wait_s
    say(f"waiting up to {_num(wait_s)} s (--resource-wait-s) for the autoscaler: {missing}")
    request_resources(bundles=wanted.bundles())
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            missing = shortfall(wanted, node_resources())
            if missing is None:
                return
        raise ConfigError(f"{missing}, still after waiting {_num(wait_s)} s for the "
                          f"autoscaler (--resource-wait-s); {_FIX}")  # fmt: skip
    finally:
        request_resources(bundles=[])  # the run's actors now hold what it needs
