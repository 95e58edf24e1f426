"""plurel-ray: seeds in, pretrained relational foundation model out, on any Ray cluster.

`import plurel_ray` stays light (config and errors only, ~0.2 s): the generator and the
RelBench writer pull in relbench, scipy and networkx (~2 s), so `SyntheticDataset`,
`generate_database` and `write_dataset` are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("plurel-ray")
except PackageNotFoundError:  # running from a source tree that is not pip-installed
    __version__ = "0.0.0+local"

from plurel_ray.config import Choices, Config, DAGParams, DatabaseParams, SCMParams
from plurel_ray.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from plurel_ray.relbench_io import write_dataset
    from plurel_ray.synth.database import generate_database
    from plurel_ray.synth.dataset import SyntheticDataset

_LAZY = {
    "SyntheticDataset": "plurel_ray.synth.dataset",
    "generate_database": "plurel_ray.synth.database",
    "write_dataset": "plurel_ray.relbench_io",
}

__all__ = [
    "Choices",
    "Config",
    "ConfigError",
    "DAGParams",
    "DatabaseParams",
    "SCMParams",
    "SchemaError",
    "SyntheticDataset",
    "__version__",
    "generate_database",
    "write_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plurel_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
