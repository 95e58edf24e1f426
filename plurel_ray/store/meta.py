"""The one reader of a node store's `meta.json` (docs/store-format.md).

Every consumer — the sampler, `embed`, the pretraining data and evaluation code — reads
meta.json through `read_meta`, which checks the format and version and the type of every
field they use, so a damaged or hand-edited file is one `StoreError` naming the file and
the field, never a `TypeError` or `KeyError` deep inside a consumer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plurel_ray import _native
from plurel_ray.errors import StoreError

STORE_FORMAT = "plurel-ray node store"
META_FILE = "meta.json"
# The context rules a store is written under (docs/contexts.md): "reference" builds
# contexts and values as the reference implementation did for the published checkpoint,
# "strict" keeps labels and statistics on the known side of time.
CONTEXT_RULES = ("reference", "strict")
DEFAULT_CONTEXT_RULES = "reference"
# Stores written before meta.json recorded the rules hold strict values.
UNRECORDED_CONTEXT_RULES = "strict"
# The sentence encoder that embeds a store's text unless told otherwise; meta.json's
# "embedding" names the one that did (docs/model.md).
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_TEXT = (str, type(None))  # a name that may be null
_PAIR = "pair"  # a [str, str] list (foreign keys, leakage columns)
# Field → type for the document and each kind of entry; "?" marks a field that may be
# absent (its readers have a default), whose type is still checked when present.
_FIELDS = {
    "meta": {"format": str, "format_version": int, "counts?": dict, "tables?": list,
             "columns?": list, "tasks?": list, "files?": dict, "embedding?": dict,
             "source?": dict, "datetime?": dict, "writer?": dict, "warnings?": list,
             "skipped_columns?": list, "context_rules?": str},
    "tables": {"name": str, "kind?": str, "task?": _TEXT, "node_offset?": int,
               "num_nodes?": int, "pkey?": _TEXT, "time_col?": _TEXT, "fkeys?": list,
               "item_splits?": dict},
    "columns": {"id": int, "table": str, "name": str, "sem_type?": str},
    "tasks": {"name": str, "target_col": _TEXT, "kind?": str, "task_type?": _TEXT,
              "tables?": dict, "remove_columns?": list, "item_splits?": dict},
    "embedding": {"model": str, "dim": int},
}  # fmt: skip
_REBUILD = "rebuild the store (plurel-ray preprocess --overwrite, then embed)"


def read_meta(store: str | Path) -> dict[str, Any]:
    """The meta.json of `store`, checked to be a node store of this format version whose
    fields have the types the readers rely on.

    Args:
        store: the node store folder.

    Raises:
        StoreError: missing, unreadable, of another format or version, or a field of the
            wrong type; the message names the file and the field.
    """
    store = Path(store)
    path = store / META_FILE
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise StoreError(
            f"{path} is missing: {store} is not a node store (build it with plurel-ray preprocess)"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bad UTF-8
        raise StoreError(f"{path}: unreadable ({err}); {_REBUILD}") from None
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: not a {STORE_FORMAT!r} description")
    version = meta.get("format_version")
    if version != _native.STORE_FORMAT_VERSION:
        raise StoreError(
            f"{path}: format_version {version!r}, this build reads "
            f"{_native.STORE_FORMAT_VERSION}; rebuild the store with this plurel-ray version"
        )
    problem = next(_problems(meta), None)
    if problem is not None:
        raise StoreError(f"{path}: {problem}; {_REBUILD}")
    return meta


def context_rules_of(meta: Mapping[str, Any]) -> str:
    """The context rules a store was written under (its meta.json "context_rules";
    "strict" for a store written before meta.json recorded them).

    Args:
        meta: the store's meta.json, as `read_meta` returns it (the value is checked).
    """
    return meta.get("context_rules", UNRECORDED_CONTEXT_RULES)


def _problems(meta: dict) -> Iterator[str]:
    """What is wrong with the structure of `meta`, first problem first; each check runs
    only once those before it passed, so it may rely on them."""
    if (found := _mistyped("", meta, _FIELDS["meta"])) is not None:
        yield found
        return
    if meta.get("context_rules", UNRECORDED_CONTEXT_RULES) not in CONTEXT_RULES:
        yield _wrong("context_rules", meta["context_rules"], '"reference" or "strict"')
        return
    checks = [("counts", meta.get("counts", {}), {str: int})]
    if "embedding" in meta:
        checks.append(("embedding", meta["embedding"], _FIELDS["embedding"]))
    for key in ("tables", "columns", "tasks"):
        entries = enumerate(meta.get(key, []))
        checks += [(f"{key}[{i}]", entry, _FIELDS[key]) for i, entry in entries]
    for where, value, kind in checks:
        if (found := _mistyped(where, value, kind)) is not None:
            yield found
            return
    for i, table in enumerate(meta.get("tables", [])):
        yield from _found(
            _mistyped(f"tables[{i}].fkeys", table.get("fkeys", []), [_PAIR]),
            _item_splits(f"tables[{i}].item_splits", table.get("item_splits", {})),
        )
    for i, task in enumerate(meta.get("tasks", [])):
        yield from _found(
            _mistyped(f"tasks[{i}].tables", task.get("tables", {}), {str: str}),
            _mistyped(f"tasks[{i}].remove_columns", task.get("remove_columns", []), [_PAIR]),
            _item_splits(f"tasks[{i}].item_splits", task.get("item_splits", {})),
        )


def _found(*problems: str | None) -> Iterator[str]:
    yield from (problem for problem in problems if problem is not None)


def _mistyped(where: str, value: Any, kind: Any) -> str | None:
    """Why `value` at `where` is not of `kind`: a type or tuple of types; a dict of
    required field → type; {str: type} for a mapping of any keys; [type] for a list."""
    if isinstance(kind, Mapping) and list(kind) == [str]:
        if not isinstance(value, dict):
            return _wrong(where, value, "an object")
        bad = next((k for k, v in value.items() if not _is(v, kind[str])), None)
        return None if bad is None else _wrong(f"{where}.{bad}", value[bad], kind[str])
    if isinstance(kind, Mapping):
        if not isinstance(value, dict):
            return _wrong(where, value, "an object")
        for key, field_kind in kind.items():
            field = key.removesuffix("?")
            name = f"{where}.{field}" if where else field
            if field not in value:
                if field == key:
                    return f"{name} is missing"
            elif not _is(value[field], field_kind):
                return _wrong(name, value[field], field_kind)
        return None
    if isinstance(kind, list):
        if not isinstance(value, list):
            return _wrong(where, value, "a list")
        bad = next((i for i, v in enumerate(value) if not _is(v, kind[0])), None)
        return None if bad is None else _wrong(f"{where}[{bad}]", value[bad], kind[0])
    return None if _is(value, kind) else _wrong(where, value, kind)


def _is(value: Any, kind: Any) -> bool:
    if kind == _PAIR:
        pair = isinstance(value, list) and len(value) == 2
        return pair and all(isinstance(v, str) for v in value)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # JSON true is no count
        return False
    return isinstance(value, kinds)


def _item_splits(where: str, splits: Any) -> str | None:
    """A database table's or autocomplete task's split rules:
    {split: {"time" | "rows": [low, high]}}."""
    if not isinstance(splits, dict):
        return _wrong(where, splits, "an object")
    for split, rule in splits.items():
        bounds = next(iter(rule.values()), None) if isinstance(rule, dict) and rule else None
        if not (
            isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in ("time", "rows")
            and isinstance(bounds, list) and len(bounds) == 2
            and all(b is None or _is(b, int) for b in bounds)
        ):  # fmt: skip
            return _wrong(f"{where}.{split}", rule, '{"time" or "rows": [low, high]}')
    return None


def _wrong(where: str, value: Any, kind: Any) -> str:
    if isinstance(kind, tuple):
        wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kind)
    elif isinstance(kind, type):
        wanted = {int: "an integer", str: "a string", dict: "an object", list: "a list"}.get(
            kind, kind.__name__
        )
    elif kind == _PAIR:
        wanted = "a [table, column] pair"
    else:
        wanted = str(kind)
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{where or 'the document'} is {shown}, expected {wanted}"
