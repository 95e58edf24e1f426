"""The rooms of the package and the arrows between them (docs/architecture.md, "Rules that
keep the layout honest"), read from the source with `ast`: nothing is imported.

A room is a subpackage of `plurel_ray` (`synth`, `dataset`, `store`, `model`, `train`,
`pipeline`, `hub`, `util`) or a top-level module (`config`, `errors`, `cli`, …). Every
import counts, also those inside functions, since a lazy import is an arrow too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plurel_ray"
HEAVY_RUNTIMES = ("ray", "torch")


def _room(path: Path) -> str:
    """`synth` for plurel_ray/synth/dag.py, `config` for plurel_ray/config.py."""
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["plurel_ray", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from plurel_ray import config` imports the module plurel_ray.config.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules() -> dict[Path, set[str]]:
    return {path: _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _rooms_of(imports: set[str]) -> set[str]:
    """The rooms among `imports` (`plurel_ray.synth.dag` → synth); a name that is not a
    module of ours (`plurel_ray.__version__`) counts for no room."""
    rooms = set()
    for name in imports:
        parts = name.split(".")
        if parts[0] != "plurel_ray" or len(parts) < 2:
            continue
        if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
            rooms.add(parts[1])
    return rooms


def _graph() -> dict[str, set[str]]:
    arrows: dict[str, set[str]] = defaultdict(set)
    for path, imports in _modules().items():
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue  # the package's front door re-exports from every room
        room = _room(path)
        arrows[room] |= _rooms_of(imports) - {room}
    return arrows


def _cycle(arrows: dict[str, set[str]]) -> list[str] | None:
    """One cycle of rooms, as a path that returns to its start, or None."""
    state: dict[str, str] = {}

    def visit(room: str, path: list[str]) -> list[str] | None:
        state[room] = "open"
        for target in sorted(arrows.get(room, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [room, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[room] = "done"
        return None

    for room in sorted(arrows):
        if room not in state and (found := visit(room, [room])):
            return found
    return None


def _offenders(room: str, allowed: set[str]) -> dict[str, set[str]]:
    """Files of `room` importing one of our rooms outside `allowed`."""
    found = {}
    for path, imports in _modules().items():
        if _room(path) == room and (bad := _rooms_of(imports) - allowed - {room}):
            found[str(path.relative_to(PACKAGE))] = bad
    return found


def _runtime_users(room: str) -> dict[str, set[str]]:
    found = {}
    for path, imports in _modules().items():
        used = {name.split(".")[0] for name in imports} & set(HEAVY_RUNTIMES)
        if _room(path) == room and used:
            found[str(path.relative_to(PACKAGE))] = used
    return found


def test_no_import_cycle_between_rooms():
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_synth_imports_neither_ray_nor_torch():
    assert _runtime_users("synth") == {}


def test_model_imports_torch_and_only_errors_and_util_of_ours():
    assert {path: used - {"torch"} for path, used in _runtime_users("model").items()
            if used - {"torch"}} == {}  # fmt: skip
    assert _offenders("model", {"errors", "util"}) == {}


@pytest.mark.parametrize("room", ["synth", "dataset", "store", "model", "train", "hub", "util"])
def test_only_the_pipeline_and_the_commands_import_ray(room):
    assert {path for path, used in _runtime_users(room).items() if "ray" in used} == set()


def test_util_is_a_leaf():
    assert _offenders("util", {"errors"}) == {}


def test_the_lower_rooms_do_not_import_the_pipeline_or_the_commands():
    upper = {"pipeline", "cli"}
    assert {room: targets & upper for room, targets in _graph().items()
            if room not in upper and targets & upper} == {}  # fmt: skip


def test_test_modules_have_unique_names_across_folders():
    """The test folders are not packages, so pytest imports each test file by its bare name:
    two files of one name (tests/unit/x.py, tests/integration/x.py) make `pytest tests`,
    the command CI runs, fail at collection."""
    tests = PACKAGE.parent / "tests"
    names = [path.name for path in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
