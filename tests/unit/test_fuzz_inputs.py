"""Fuzzing what users and the Internet hand us: SQL schemas, config documents, store bytes.

For every example the outcome is success or a typed `PlurelError` whose message is one
line; it takes under `SECONDS` and grows the process by under `MEMORY_BYTES`; and no
file appears outside the example's own output folder. Hypothesis runs derandomized
(the same examples on every machine) with a few dozen examples per input kind, so the
module stays well under a minute in CI.
"""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import PlurelError
from plurel_ray.store.preprocessing import preprocess
from plurel_ray.store.sampler import Sampler, Source
from plurel_ray.synth.database import generate_database
from plurel_ray.synth.sql_schema import parse_sql_schema

SECONDS = 5.0
MEMORY_BYTES = 1 << 30
FUZZ = settings(
    max_examples=150,
    deadline=None,  # our own bound, SECONDS, is checked per example below
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VALID_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (id INTEGER PRIMARY KEY, age INTEGER, tier TEXT, m mood);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(id),
    amount DECIMAL(10, 2) CHECK (amount > 0),
    status TEXT CHECK (status IN ('new', 'paid')),
    created_at TIMESTAMP
);
"""
HOSTILE_NAMES = [
    "../x", "../../../../outside/anywhere", "a/b", "a\\b", ".", "..", ".hidden", "", " ",
    "a\x00b", "a\nb", "x" * 300, "é" * 80, "CON", "tasks", "db", "manifest.yaml", "-",
    "a-b", "a b", "表",
]  # fmt: skip
SQL_TOKENS = [
    "CREATE", "TABLE", "TYPE", "AS", "ENUM", "(", ")", ",", ";", "INT", "TEXT", "DATE",
    "PRIMARY KEY", "REFERENCES", "FOREIGN KEY", "CHECK", "IN", "NOT NULL", "t", "u", "id",
    "u_id", "'a'", "'b'", '"../x"', '"."', "`x`", "--", "/*", "*/", "'", '"', "((((", "))))",
    "1", "-1", "WITHOUT ROWID", "\n",
]  # fmt: skip


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def check_outcome(run: Callable[[Path], object], sandbox: Path) -> None:
    """Run `run(out)` in a fresh `out` folder under `sandbox` and hold it to the bounds."""
    # Deep enough that a name climbing four folders out of db/ still lands in `sandbox`.
    out = sandbox / f"example-{next(_counter)}" / "a" / "b" / "c" / "out"
    out.mkdir(parents=True)
    before, rss = _files(sandbox), _rss_bytes()
    start = time.perf_counter()
    try:
        run(out)
        event("success")
    except PlurelError as err:
        event(type(err).__name__)
        assert "\n" not in str(err), f"multi-line message: {err!s}"
        assert str(err).strip(), "empty message"
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert _rss_bytes() - rss < MEMORY_BYTES, "grew the process by more than 1 GiB"
    outside = {p for p in _files(sandbox) - before if not p.is_relative_to(out)}
    assert not outside, f"written outside the output: {sorted(outside)}"
    shutil.rmtree(sandbox / out.relative_to(sandbox).parts[0])


_counter = itertools.count()


@pytest.fixture(scope="module")
def tiny_config() -> Config:
    return Config(
        database_params=DatabaseParams(
            num_tables_choices=Choices("range", [2, 3]),
            num_rows_entity_table_choices=Choices("range", [10, 20]),
            num_rows_activity_table_choices=Choices("range", [20, 40]),
            num_cols_choices=Choices("range", [2, 3]),
        )
    )


def _generate_into(sql: str, config: Config, out: Path) -> None:
    """Parse; when the schema parses, generate and write a database into `out`."""
    schema = parse_sql_schema(sql, source="fuzz.sql")
    db = generate_database(0, config, schema=schema)
    write_dataset(db, out / "plurel-0", config)


@st.composite
def mutated_sql(draw) -> str:
    """The valid schema with identifiers swapped for hostile names and text spliced."""
    sql = VALID_SQL
    for name in draw(st.lists(st.sampled_from(["customers", "orders", "age", "amount", "tier",
                                                "status", "id", "mood"]), max_size=3)):  # fmt: skip
        hostile = draw(st.sampled_from(HOSTILE_NAMES) | st.text(max_size=12))
        quoted = '"' + hostile.replace('"', '""') + '"'
        sql = sql.replace(name, quoted, draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 3)) if draw(st.booleans()) else 0):
        at = draw(st.integers(0, len(sql)))
        cut = draw(st.integers(0, 20))
        sql = sql[:at] + draw(st.text(max_size=8) | st.sampled_from(SQL_TOKENS)) + sql[at + cut :]
    return sql


SQL_TEXT = (
    st.lists(st.sampled_from(SQL_TOKENS) | st.sampled_from(HOSTILE_NAMES), max_size=40).map(
        " ".join
    )
    | st.text(max_size=200)
    | mutated_sql()
)


@FUZZ
@given(sql=SQL_TEXT)
def test_fuzzed_sql_schemas(sql, tiny_config, tmp_path_factory):
    sandbox = tmp_path_factory.getbasetemp() / "fuzz-sql"
    check_outcome(lambda out: _generate_into(sql, tiny_config, out), sandbox)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
YAML_TOKENS = ["&a", "*a", ": ", "- ", "[", "{", "!!python/object:os.system", "\t", "? "]
CONFIG_KEYS = ["database_params", "scm_params", "dag_params", "val_split", "test_split",
               "num_tables_choices", "kind", "value", "range", "set", "activation_choices",
               "cache_dir", "schema_file", "config_schema_version"]  # fmt: skip


@st.composite
def config_documents(draw) -> tuple[str, str]:
    """(text, ".yaml" or ".json"): a valid config mutated, or a random document."""
    default = Config().to_dict()
    kind = draw(st.sampled_from(["mutated-yaml", "mutated-json", "random-yaml", "random-json",
                                 "spliced"]))  # fmt: skip
    if kind.startswith("random"):
        doc = draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON_VALUES, max_size=4))
    else:
        doc = json.loads(json.dumps(default))
        for _ in range(draw(st.integers(1, 3))):  # replace one nested value
            node, key = doc, None
            while isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
                if not isinstance(node[key], dict) or draw(st.booleans()):
                    break
                node = node[key]
            if key is not None:
                node[key] = draw(JSON_VALUES | st.integers(-(10**12), 10**12))
    if kind.endswith("json"):
        return json.dumps(doc), ".json"
    text = yaml.safe_dump(doc, sort_keys=False)
    if kind == "spliced":
        at = draw(st.integers(0, len(text)))
        splice = draw(st.text(max_size=10) | st.sampled_from(YAML_TOKENS))
        text = text[:at] + splice + text[at:]
    return text, ".yaml"


@FUZZ
@given(document=config_documents())
def test_fuzzed_config_documents(document, tmp_path_factory):
    text, suffix = document
    sandbox = tmp_path_factory.getbasetemp() / "fuzz-config"

    def load(out: Path) -> None:
        path = out / f"config{suffix}"
        path.write_text(text)
        Config.load(path)

    check_outcome(load, sandbox)


@pytest.fixture(scope="module")
def store(tiny_config, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-store")
    folder = write_dataset(generate_database(2, tiny_config), root / "plurel-2", tiny_config)
    return preprocess(folder, root / "stores")


@st.composite
def store_edits(draw, files: list[str]) -> tuple[str, str, int, bytes]:
    """(file, how, offset, bytes): one edit of one file of the store."""
    name = draw(st.sampled_from(files))
    how = draw(st.sampled_from(["flip", "truncate", "overwrite", "append", "delete"]))
    return name, how, draw(st.integers(0, 1 << 20)), draw(st.binary(min_size=1, max_size=16))


def _edit(path: Path, how: str, offset: int, data: bytes) -> None:
    if how == "delete":
        path.unlink()
        return
    raw = bytearray(path.read_bytes())
    at = offset % max(len(raw), 1)
    if how == "flip" and raw:
        raw[at] ^= data[0] or 1
    elif how == "truncate":
        del raw[at:]
    elif how == "overwrite":
        raw[at : at + len(data)] = data
    else:
        raw += data
    path.write_bytes(bytes(raw))


@FUZZ
@given(data=st.data())
def test_fuzzed_store_bytes(data, store, tmp_path_factory):
    files = sorted(p.name for p in store.iterdir())
    name, how, offset, raw = data.draw(store_edits(files))
    meta = json.loads((store / "meta.json").read_text())
    task = meta["tasks"][0]["name"]
    sandbox = tmp_path_factory.getbasetemp() / "fuzz-store-bytes"

    def sample(out: Path) -> None:
        copy = shutil.copytree(store, out / "store")
        _edit(copy / name, how, offset, raw)
        sampler = Sampler([Source(copy, task=task)], batch_size=4, ctx_len=32, seed=0)
        sampler.batch(0)

    check_outcome(sample, sandbox)
