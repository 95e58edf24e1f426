"""README.md is executed: its ```bash and ```python blocks run as written, in order, twice.

Each block runs from a fresh copy of the checkout (the files git tracks or would track,
without build outputs: what a clone has), so relative outputs such as `data/` land there.
Shell blocks run under `bash -e` with this venv activated; Python blocks under `python -c`,
which puts the working directory first on sys.path as an interactive session does. A
`ray job submit` finds the head this test starts from the checkout's root through
`RAY_API_SERVER_ADDRESS`, the variable the README tells a user to export. `~` is a fresh
home folder. A block is skipped only under a marker on the line before it,
`<!-- readme-test: skip (reason) -->`; the reasons are printed with the results.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_head import activated_venv_env, local_head

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced block of README.md: its language, text and first line number."""

    lang: str
    code: str
    line: int
    skip_reason: str | None


def readme_blocks(text: str) -> list[Block]:
    """The ```bash and ```python blocks of `text`, with the skip reason marked above each."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        marker = SKIP.match(lines[index - 1].strip()) if index else None
        if fence["lang"] in ("bash", "python"):
            code = "\n".join(lines[index + 1 : end]) + "\n"
            reason = marker["reason"] if marker else None
            blocks.append(Block(fence["lang"], code, index + 2, reason))
        index = end + 1
    return blocks


def checkout_copy(destination: Path) -> Path:
    """The files git tracks or would track (not ignored), copied: a fresh clone's tree."""
    git = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(git, cwd=REPO, check=True, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # skips files deleted but not yet committed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_every_pip_install_uses_the_constraints():
    """Skipped blocks included: the install commands are what a fresh machine runs."""
    shell = "".join(b.code for b in readme_blocks(README.read_text()) if b.lang == "bash")
    installs = re.findall(r"pip install[^&\n]*", shell)
    assert installs, "README.md shows no install command"
    for command in installs:
        assert "-c constraints.txt" in command, f"README.md: `{command.strip()}`"


def test_every_skip_has_a_reason_and_the_job_submit_runs():
    blocks = readme_blocks(README.read_text())
    assert all(b.skip_reason is None or b.skip_reason.strip() for b in blocks)
    runs = [b.code for b in blocks if b.skip_reason is None]
    assert any("ray job submit --working-dir . --" in code for code in runs), (
        "README.md: no `ray job submit --working-dir .` block is executed"
    )


@pytest.fixture(scope="module")
def readme_head():
    with local_head(cwd=REPO, num_cpus=2) as head:
        yield head


@pytest.mark.slow  # a Ray head, and the README's jobs on it
def test_readme_runs_as_written_twice(readme_head, tmp_path):
    copy = checkout_copy(tmp_path / "plurel-ray")
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in activated_venv_env().items() if key != "RAY_ADDRESS"}
    env.update(HOME=str(home), RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1",
               RAY_API_SERVER_ADDRESS=readme_head.dashboard)  # fmt: skip
    blocks = readme_blocks(README.read_text())
    for block in blocks:
        if block.skip_reason:
            print(f"README.md:{block.line} skipped: {block.skip_reason}")
    for attempt in ("first", "second"):
        for block in (b for b in blocks if b.skip_reason is None):
            _run(block, attempt, copy, env)
    assert not (copy / "~").exists(), "a README command made a literal `~` folder"


def _run(block: Block, attempt: str, cwd: Path, env: dict[str, str]) -> None:
    if block.lang == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    start = time.monotonic()
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=BLOCK_TIMEOUT_S)  # fmt: skip
    output = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, (
        f"README.md:{block.line} ({block.lang} block) failed on the {attempt} run, "
        f"exit {run.returncode}:\n{block.code}\n--- output (tail) ---\n{output}"
    )
    took = time.monotonic() - start
    print(f"README.md:{block.line} {block.lang} block: ok on the {attempt} run in {took:.1f} s")
