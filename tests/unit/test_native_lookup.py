"""A copy of `plurel_ray/` without the compiled extension (what `ray job submit
--working-dir .` uploads: Ray honours .gitignore, which lists *.so) imports the installed
package's extension, and refuses one of another version in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import plurel_ray
from plurel_ray import _native

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[2]
PROBE = "import plurel_ray, plurel_ray._native as n; print(plurel_ray.__file__); print(n.__file__)"


def _upload_like_copy(root: Path, version: str | None = None) -> Path:
    """The checkout as Ray's working-dir upload has it: sources and pyproject.toml, no .so."""
    shutil.copytree(REPO / "plurel_ray", root / "plurel_ray",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))  # fmt: skip
    pyproject = (REPO / "pyproject.toml").read_text()
    if version is not None:
        pyproject = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject, count=1)
    (root / "pyproject.toml").write_text(pyproject)
    return root


def _run_in(cwd: Path) -> subprocess.CompletedProcess:
    # `python -c` puts the working directory first on sys.path, as Ray does for a job.
    return subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_copy_without_the_extension_uses_the_installed_one(tmp_path):
    copy = _upload_like_copy(tmp_path)
    assert not list((copy / "plurel_ray").glob("_native*.so"))
    run = _run_in(copy)
    assert run.returncode == 0, run.stderr
    package_file, native_file = run.stdout.split()
    assert Path(package_file).parent == copy / "plurel_ray"  # the uploaded code runs …
    assert Path(native_file) == Path(_native.__file__)  # … with the installed extension


def test_an_extension_of_another_version_is_one_line(tmp_path):
    copy = _upload_like_copy(tmp_path, version="9.9.9")
    run = _run_in(copy)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: plurel_ray at ")
    assert f"is version 9.9.9 but the installed extension {_native.__file__} is" in last
    assert "reinstall plurel-ray" in last


def test_extension_and_package_declare_the_same_version():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    cargo = tomllib.loads((REPO / "native" / "Cargo.toml").read_text())["package"]["version"]
    assert pyproject == cargo == _native.__version__
    if plurel_ray.__version__ != "0.0.0+local":
        assert plurel_ray.__version__ == pyproject


def test_the_installed_dirs_hold_this_environments_extension():
    dirs = [d.resolve() for d in plurel_ray._installed_package_dirs()]
    assert Path(_native.__file__).resolve().parent in dirs, dirs
