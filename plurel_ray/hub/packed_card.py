"""What the Hub side knows of a packed run, and its dataset card (README.md).

A packed output (`plurel-ray generate --layout packed`) is pushed to a dataset repo at
the same paths it has on disk:

    shards/<run>-<k>.tar    whole database folders plurel-<seed>/ (and stores/plurel-<seed>/)
    shards/<run>-<k>.json   the shard's manifest: every folder's offset, length and sha256
    _index.parquet          one row per database: status, shard, offset, length, sha256, …
    _generation.json        the settings every run into the output shares
    README.md               this module's card

The names are the pipeline's (`pipeline/output.py`, `pipeline/run_record.py`,
`pipeline/seed_worker.py`); the hub room may not import the pipeline, so they are
repeated here and tests/unit/test_hub_packed.py checks that they still agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from plurel_ray.hub.card import LIBRARY_NAME, int_ranges

INDEX_FILE = "_index.parquet"
RECORD_FILE = "_generation.json"
SHARDS_DIR = "shards"
COMPLETE = ("generated", "skipped")  # index statuses of a database that is there
DATASET_TAGS = ("plurel-ray", "relbench", "synthetic-data", "relational-database")


def manifest_path(shard: str) -> str:
    """`shards/<id>.json`, the manifest of shard file `shards/<id>.tar`.

    Args:
        shard: the shard's path in the run (`shards/<id>.tar`).
    """
    return f"{shard.removesuffix('.tar')}.json"


def indexed_shards(index: pa.Table) -> list[str]:
    """The shard paths the complete databases of `index` name, sorted.

    Args:
        index: the run's `_index.parquet` (its `status` and `shard` columns).
    """
    complete = index.filter(pc.is_in(index["status"], value_set=pa.array(COMPLETE)))
    return sorted(set(complete["shard"].drop_null().to_pylist()))


def packed_run_card(repo_id: str, index: pa.Table, record: Mapping[str, Any]) -> str:
    """The README.md of a packed run's dataset repo: what it is, how to get one database,
    the layout with its file counts, and how it was generated.

    Args:
        repo_id: the dataset repo.
        index: the run's `_index.parquet`.
        record: the run's `_generation.json`.
    """
    front = yaml.safe_dump(
        {"library_name": LIBRARY_NAME, "tags": list(DATASET_TAGS),
         # The Hub's viewer shows the index; it would read the tars as WebDataset samples.
         "configs": [{"config_name": "index", "data_files": INDEX_FILE, "default": True}]},
        sort_keys=False,
    )  # fmt: skip
    status = index["status"].to_pylist()
    complete = index.filter(pc.is_in(index["status"], value_set=pa.array(COMPLETE)))
    shards = indexed_shards(index)
    total = pc.sum(complete["length"]).as_py() or 0
    example = complete["db_name"][0].as_py() if complete.num_rows else "plurel-0"
    lines = [
        f"---\n{front}---",
        "",
        f"# {repo_id}",
        "",
        f"A plurel-ray packed run: {complete.num_rows:,} synthetic relational databases from "
        f"the PluRel prior ({status.count('failed'):,} seeds failed), in {len(shards):,} "
        f"shard(s), {total / 1e6:,.1f} MB. Each database is a RelBench-3 folder "
        "`plurel-<seed>/` (manifest.yaml, db/*.parquet, plurel.json) stored whole, as one "
        "contiguous span, in one shard.",
        "",
        "## One database",
        "",
        "Only that database's bytes are fetched (one HTTP range request), checked against "
        "its sha256 and unpacked to `DIR/<name>/`:",
        "",
        "```bash",
        f"plurel-ray hub download {repo_id} --repo-type dataset --database {example} --out DIR",
        "```",
        "",
        "```python",
        "from plurel_ray.hub.download import download_database",
        f'folder = download_database("{repo_id}", "{example}", "DIR")',
        "# from the run's own output (a folder or bucket), the same by one ranged read:",
        "from plurel_ray.pipeline.packed_read import open_database",
        f'folder = open_database("s3://bucket/run", "{example}", "DIR")',
        "```",
        "",
        "Every shard is a plain tar: `tar -xf shards/<id>.tar` unpacks all its databases.",
        "",
        "## Layout",
        "",
        "| path | files | what |",
        "|---|---|---|",
        f"| `shards/<run>-<k>.tar` | {len(shards):,} | whole database folders "
        "(and `stores/plurel-<seed>/` node stores with --preprocess) |",
        f"| `shards/<run>-<k>.json` | {len(shards):,} | each shard's manifest: every "
        "folder's offset, length and sha256 |",
        f"| `{INDEX_FILE}` | 1 | one row per database ({index.num_rows:,}): db_name, seed, "
        "status, shard, offset, length, sha256, tables, rows, cells |",
        f"| `{RECORD_FILE}` | 1 | the settings every run into this output shares |",
        "",
        "## Generation",
        "",
        "| field | value |",
        "|---|---|",
        f"| seeds | {int_ranges(complete['seed'].to_pylist()) or '-'} |",
    ]
    lines += [f"| {key} | {_shown(record[key])} |" for key in sorted(record) if key != "config"]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
