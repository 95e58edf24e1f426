"""One flag vocabulary: every parser of `plurel-ray` and jobs/*.py, walked for real. Every
flag has help text; a flag name means the same destination, action and parsing wherever
it appears; and building the parsers imports none of the heavy libraries."""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from plurel_ray.cli import build_parser
from plurel_ray.pipeline.flags import DEFAULT_EVAL_SPLIT

REPO = Path(__file__).resolve().parents[2]
JOBS = sorted((REPO / "jobs").glob("*.py"))
# What `--help` must not pay for: each takes from 0.3 s to several seconds to import.
HEAVY = ("ray", "torch", "relbench", "pandas", "pyarrow", "sklearn")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """`parser` and every (nested) subcommand parser, by program name."""
    found = {parser.prog: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.update(_subcommands(sub))
    return found


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = _subcommands(build_parser())
    for job in JOBS:
        parsers[f"jobs/{job.name}"] = runpy.run_path(str(job), run_name="flags")["build_parser"]()
    return parsers


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    ignored = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in parser._actions if not isinstance(a, ignored)]


def test_every_command_and_job_is_walked():
    names = set(_all_parsers())
    assert {"plurel-ray generate", "plurel-ray preprocess", "plurel-ray hub download",
            "plurel-ray demo"} <= names  # fmt: skip
    assert {f"jobs/{job.name}" for job in JOBS} <= names and len(JOBS) == 6


def test_every_flag_and_argument_has_help_text():
    missing = [f"{prog} {'/'.join(action.option_strings) or action.dest}"
               for prog, parser in _all_parsers().items() for action in _options(parser)
               if not (action.help or "").strip()]  # fmt: skip
    assert missing == []


def test_a_flag_name_means_the_same_thing_in_every_command():
    seen: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for prog, parser in _all_parsers().items():
        for action in _options(parser):
            parse = getattr(action.type, "__name__", None)
            kind = (action.dest, type(action).__name__, parse, action.nargs,
                    tuple(action.choices or ()), tuple(action.option_strings))  # fmt: skip
            for name in action.option_strings:
                seen[name][kind].append(prog)
    differing = {name: dict(kinds) for name, kinds in seen.items() if len(kinds) > 1}
    assert differing == {}


@pytest.mark.parametrize(
    "flag", ["--out", "--data", "--storage", "--ray", "--progress", "--eval-split"]
)
def test_shared_flags_are_one_definition(flag):
    holders = {prog: action for prog, parser in _all_parsers().items()
               for action in _options(parser) if flag in action.option_strings}  # fmt: skip
    assert holders, flag
    # The vocabulary's spelling only: no command keeps a second name for it.
    spellings = {(flag,), (flag, f"--no-{flag[2:]}")}
    assert {tuple(a.option_strings) for a in holders.values()} <= spellings


def test_old_spellings_are_gone_and_one_evaluation_split_default():
    parsers = _all_parsers()
    options = {name for p in parsers.values() for a in _options(p) for name in a.option_strings}
    assert not options & {"--local", "--local-dir", "--seed", "--no-progress-bars"}
    assert "--no-progress" in options and "--no-ray" in options  # BooleanOptionalAction
    defaults = {prog: a.default for prog, p in parsers.items() for a in _options(p)
                if "--eval-split" in a.option_strings}  # fmt: skip
    assert len(defaults) == 5 and set(defaults.values()) == {DEFAULT_EVAL_SPLIT}


def test_ray_defaults_per_entry_point():
    parsers = _all_parsers()
    assert parsers["plurel-ray generate"].parse_args(["--out", "x"]).ray is False
    assert parsers["jobs/generate.py"].parse_args(["--out", "x"]).ray is True
    assert parsers["jobs/generate.py"].parse_args(["--out", "x", "--no-ray"]).ray is False


_IMPORT_CHECK = """
import json, runpy, sys, time
start = time.perf_counter()
target = sys.argv[1]
if target == "cli":
    import plurel_ray.cli
    plurel_ray.cli.build_parser().format_help()
else:
    runpy.run_path(target, run_name="flags")["build_parser"]().format_help()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
print(json.dumps({{"heavy": heavy, "seconds": time.perf_counter() - start}}))
"""


@pytest.mark.parametrize("target", ["cli", *(f"jobs/{job.name}" for job in JOBS)])
def test_building_the_parsers_imports_no_heavy_library(target):
    code = _IMPORT_CHECK.format(heavy=set(HEAVY))
    done = subprocess.run([sys.executable, "-c", code, target], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{target}: import and build the parser in {result['seconds']:.2f} s")
    assert result["heavy"] == []
