"""`<out>/_generation.json`: what every run into an output must agree on.

The index decides which seeds are done without opening any database, so what makes two
runs' databases interchangeable is checked once per run instead: the generator config
(its hash), the layout, whether task folders are written and — packed, where a shard
cannot be added to — whether stores are made and under which context rules. The first
run writes the record; a later run that differs is refused in one line before it starts.
An output written before the record existed gets one from its first run.
"""

from __future__ import annotations

import json

from plurel_ray.errors import DatasetError
from plurel_ray.limits import DOCUMENT_BYTES
from plurel_ray.pipeline.output import OutputRoot

RECORD_FILE = "_generation.json"
RECORD_VERSION = 1


def record_of(request) -> dict:
    """The record a `GenerationRequest` writes and must match."""
    record = {
        "record_version": RECORD_VERSION,
        "layout": request.layout,
        "config_hash": request.config.content_hash(),
        "write_tasks": request.write_tasks,
    }
    if request.layout == "packed":
        record["preprocess"] = request.preprocess
        record["context_rules"] = request.context_rules if request.preprocess else None
    return record


def read_record(root: OutputRoot) -> dict | None:
    """The `_generation.json` of `root` (read bounded); None when there is none.

    Raises:
        DatasetError: it is there but not a JSON object.
    """
    path = root.join(RECORD_FILE)
    try:
        with root.fs.open_input_stream(path) as src:
            found = json.loads(src.read(DOCUMENT_BYTES.value))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise DatasetError(f"{path}: unreadable ({err}); it records how this output was "
                           "written — restore it or write to another --out") from None  # fmt: skip
    if not isinstance(found, dict):
        raise DatasetError(f"{path}: not a JSON object; restore it or use another --out")
    return found


def check_or_write(root: OutputRoot, request) -> None:
    """Write the record of `request` at `root`, or check it against the one there.

    Args:
        root: the output root (this run holds its lease).
        request: the run's `GenerationRequest`.

    Raises:
        DatasetError: the output was written with another config, layout or task or
            store setting; the message names the first difference.
    """
    wanted = record_of(request)
    found = read_record(root)
    if found is None:
        # The whole config too: `plurel-ray runs verify --repair` makes seeds again with it.
        record = {**wanted, "config": request.config.to_dict()}
        root.write_bytes(RECORD_FILE, (json.dumps(record, indent=1) + "\n").encode())
        return
    for key, value in wanted.items():
        if key != "record_version" and found.get(key) != value:
            shown = str(found.get(key))[:12] if key == "config_hash" else found.get(key)
            mine = str(value)[:12] if key == "config_hash" else value
            raise DatasetError(
                f"output {root.uri!r} was written with {key} {shown!r}, this run has "
                f"{mine!r}; write to another --out (or run with the same settings)"
            )
