"""plurel-ray: seeds in, pretrained relational foundation model out, on any Ray cluster.

`import plurel_ray` stays light (config and errors only, ~0.2 s): the generator and the
RelBench writer pull in relbench, scipy and networkx (~2 s), so `SyntheticDataset`,
`generate_database` and `write_dataset` are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plurel_ray.config import Choices, Config, DAGParams, DatabaseParams, SCMParams
from plurel_ray.errors import ConfigError, SchemaError

try:
    __version__ = version("plurel-ray")
except PackageNotFoundError:  # running from a source tree that is not pip-installed
    __version__ = "0.0.0+local"


def _has_native(package_dir: Path) -> bool:
    return any((package_dir / f"_native{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def _installed_package_dirs() -> list[Path]:
    """The `plurel_ray/` folders of the pip-installed distribution: where its compiled
    extension is (a wheel) or the source tree its `.pth` file names (an editable install)."""
    try:
        dist = distribution("plurel-ray")
    except PackageNotFoundError:
        return []
    dirs = []
    for file in dist.files or []:
        located = Path(str(dist.locate_file(file)))
        if file.parent.name == "plurel_ray" and file.name.startswith("_native"):
            dirs.append(located.parent)
        elif file.suffix == ".pth" and located.is_file():
            lines = located.read_text().splitlines()
            dirs += [Path(line) / "plurel_ray" for line in lines if line.startswith("/")]
    return dirs


def _source_tree_version(package_dir: Path) -> str:
    """The version this copy of the code declares: its source tree's pyproject.toml when
    it sits in one (a Ray working dir does), else the installed distribution's."""
    import tomllib  # only on this fallback path

    try:
        project = tomllib.loads((package_dir.parent / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return __version__
    return project["version"] if project.get("name") == "plurel-ray" else __version__


def _use_installed_native() -> None:
    """Import `plurel_ray._native` from the installed package when this copy has none.

    `ray job submit --working-dir .` uploads the checkout without its compiled extension
    (Ray honours .gitignore, which lists *.so) and puts the upload first on sys.path, so
    this copy shadows the installed one on every worker. Extending `__path__` keeps the
    uploaded Python code and takes the extension the node built for itself — rather than
    shipping the submitter's `.so` (RAY_RUNTIME_ENV_IGNORE_GITIGNORE or a .rayignore),
    which breaks whenever the cluster's CPU, OS or Python differ from the laptop's and
    would need a variable the README's command does not set. The version check turns a
    stale extension into one line instead of a missing function deep inside a job.
    """
    here = Path(__file__).resolve().parent
    if _has_native(here):
        return
    for package_dir in _installed_package_dirs():
        if package_dir.resolve() != here and _has_native(package_dir):
            __path__.append(str(package_dir))
            break
    else:
        return  # nothing installed to fall back on: the import fails as Python says
    native = import_module("plurel_ray._native")
    expected = _source_tree_version(here)
    if native.__version__ != expected:
        raise ImportError(
            f"plurel_ray at {here} is version {expected} but the installed extension "
            f"{native.__file__} is {native.__version__}: reinstall plurel-ray from this "
            "source where it runs (pip install -c constraints.txt -e .)"
        )


_use_installed_native()

if TYPE_CHECKING:
    from plurel_ray.dataset.relbench_io import write_dataset
    from plurel_ray.dataset.synthetic import SyntheticDataset
    from plurel_ray.pipeline.packed_read import open_database
    from plurel_ray.predict.pretrained import from_pretrained
    from plurel_ray.synth.database import generate_database

_LAZY = {
    "SyntheticDataset": "plurel_ray.dataset.synthetic",
    "from_pretrained": "plurel_ray.predict.pretrained",
    "generate_database": "plurel_ray.synth.database",
    "open_database": "plurel_ray.pipeline.packed_read",
    "write_dataset": "plurel_ray.dataset.relbench_io",
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
    "from_pretrained",
    "generate_database",
    "open_database",
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
