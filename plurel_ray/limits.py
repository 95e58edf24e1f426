"""Caps on what input may ask for, so hostile or mistaken input fails fast, in one line.

Every limit here is listed in docs/limits.md with what it protects. The ones a user
with a legitimately large input might need to raise read an environment variable; the
others guard parsers against pathological documents and are far above any real input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plurel_ray.errors import ConfigError, PlurelError


@dataclass(frozen=True)
class Limit:
    """A cap with a default, optionally raised or lowered by an environment variable.

    Args:
        default: the cap when the variable is unset.
        env: the environment variable that overrides it, or None when fixed.
    """

    default: int
    env: str | None = None

    @property
    def value(self) -> int:
        """The cap in force: the variable's positive integer value, else the default."""
        text = os.environ.get(self.env) if self.env else None
        if text is None or text == "":
            return self.default
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{self.env}: expected a positive integer, got {text!r}")
        return value

    def how_to_raise(self) -> str:
        """The end of an error message: how to lift the cap, if it can be lifted."""
        return f" (set {self.env} to raise the limit)" if self.env else ""


# SQL schemas (plurel_ray/synth/sql_schema.py). sqlglot parses DDL at about 60 KB/s on
# one core of our 2-core Xeon test machine, so 1 MB is ~20 s per dialect tried; a schema
# of 1,000 tables of 20 columns is about 300 KB.
SCHEMA_BYTES = Limit(1_000_000, "PLUREL_MAX_SCHEMA_BYTES")
SCHEMA_TABLES = Limit(1_000, "PLUREL_MAX_SCHEMA_TABLES")
SCHEMA_COLUMNS_PER_TABLE = Limit(1_000, "PLUREL_MAX_SCHEMA_COLUMNS")
# sqlglot recurses per parenthesis and hits Python's recursion limit at ~50 levels; real
# DDL nests CHECK and DEFAULT expressions a few levels deep.
SQL_PAREN_DEPTH = Limit(32)

# YAML and JSON documents: config files (plurel_ray/config.py) and dataset manifests
# (plurel_ray/store/preprocessing.py). The default config is 3.5 KB and 391 YAML nodes; a
# 1.4 KB YAML alias bomb expands to billions of nodes, which took 55 s and 3.2 GB.
DOCUMENT_BYTES = Limit(1_000_000)
DOCUMENT_NODES = Limit(100_000)
DOCUMENT_DEPTH = Limit(32)

# Seeds of one generation run (plurel_ray/pipeline/seeds.py): far more databases than any
# run makes (10**9 databases at 0.3 s each are ten CPU-years), and a count that fails at
# once instead of hanging like `--num-dbs 10**12` did.
SEEDS_PER_RUN = Limit(1_000_000_000)


def load_yaml_file(path: Path, where: str, error: type[PlurelError], what: str) -> Any:
    """The YAML document at `path`, read bounded (a pipe or a device cannot hang it) and
    measured by `check_document` before anything looks inside it.

    Args:
        path: the file.
        where: the flag and file, for messages (e.g. "--keys keys.yaml").
        error: the PlurelError subclass to raise.
        what: what the file should be, for the size message (e.g. "a suite").

    Raises:
        error: unreadable, more than DOCUMENT_BYTES, invalid YAML, too many values or too deep.
    """
    import yaml  # the limits are read by `--help`; the parser only when a file is

    try:
        with open(path, "rb") as f:
            data = f.read(DOCUMENT_BYTES.value + 1)
    except OSError as err:
        raise error(f"{where}: cannot read: {err.strerror or err}") from None
    if len(data) > DOCUMENT_BYTES.value:
        raise error(f"{where}: more than {DOCUMENT_BYTES.value:,} bytes, not {what}")
    try:
        content = yaml.safe_load(data)
    # ValueError: an integer of more than 4300 digits; RecursionError: deep nesting.
    except (yaml.YAMLError, ValueError, RecursionError) as err:
        raise error(f"{where}: invalid YAML: {' '.join(str(err).split())}") from None
    check_document(content, where, error)
    return content


def check_document(document: Any, where: str, error: type[PlurelError]) -> None:
    """Refuse a parsed YAML/JSON document too big or too deep to validate safely.

    YAML aliases share one object between their uses, so parsing an alias bomb is cheap
    and everything after it (validation, error messages that print values) is not: the
    document is measured as if every alias were written out, without expanding it.

    Args:
        document: the parsed document (dicts, lists, sets and scalars; may share parts).
        where: the file or field, for the message.
        error: the PlurelError subclass to raise.
    """
    max_nodes, max_depth = DOCUMENT_NODES.value, DOCUMENT_DEPTH.value
    # Post-order walk with a stack; sizes and depths memoised by object id, so shared
    # parts are measured once and counted at every use.
    measured: dict[int, tuple[int, int]] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            open_ids.discard(id(node))
            size = 1 + sum(measured[id(c)][0] for c in children)
            depth = 1 + max((measured[id(c)][1] for c in children), default=0)
            if size > max_nodes:
                raise error(
                    f"{where}: the document expands to more than {max_nodes:,} values "
                    "(YAML aliases count at every use); write it out without aliases"
                )
            if depth > max_depth:
                raise error(f"{where}: the document nests deeper than {max_depth} levels")
            measured[id(node)] = (size, depth)
        elif id(node) not in measured:
            if id(node) in open_ids:
                raise error(f"{where}: a YAML alias refers to its own anchor (a cycle)")
            open_ids.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    return []
