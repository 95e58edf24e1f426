"""The repository explains itself: no file points outside it, and every link into docs/
from the README and the docs resolves to a file (and a heading, for `#anchor` links)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Names of documents that live outside the repository; a clone has none of them. Built
# from parts so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "SPEC" + r"\.md", "SPEC" + " §",
                               "RAY" + "_NOTES", "DESIGN" + r"\.md"]))  # fmt: skip
LINK = re.compile(r"\]\(((?:docs/)?[\w./-]+\.md)(#[\w-]+)?\)")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    skipped = (".lock", ".npz", ".png", ".parquet", ".so")
    return [REPO / n for n in names if not n.endswith(skipped) and (REPO / n).is_file()]


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [
            f"{path.relative_to(REPO)}:{i}" for i, line in enumerate(text.splitlines(), 1)
            if OUTSIDE.search(line)
        ]  # fmt: skip
    assert not offenders, offenders


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    "source", ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))]
)
def test_links_into_docs_resolve(source):
    path = REPO / source if source == "README.md" else REPO / "docs" / source
    for target, anchor in LINK.findall(path.read_text()):
        linked = (path.parent / target).resolve()
        assert linked.is_file(), f"{source} links to missing {target}"
        if anchor:
            assert anchor[1:] in _anchors(linked.read_text()), f"{source}: {target}{anchor}"


def test_docs_anchors_cited_in_code_exist():
    cited = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")
    missing = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for doc, anchor in cited.findall(text):
            target = REPO / "docs" / doc
            if not target.is_file() or anchor not in _anchors(target.read_text()):
                missing.append(f"{path.relative_to(REPO)}: docs/{doc}#{anchor}")
    assert not missing, missing
