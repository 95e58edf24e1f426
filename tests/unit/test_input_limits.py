"""Bounded input (docs/limits.md): seed ranges are iterated, never listed; schemas, config
documents and count fields are capped; each cap fails fast in one typed line."""

from __future__ import annotations

import itertools
import time
import tracemalloc

import pytest

from plurel_ray.cli import main
from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError, SchemaError
from plurel_ray.pipeline.generate import GenerationRequest
from plurel_ray.pipeline.seeds import Seeds
from plurel_ray.synth.sql_schema import load_sql_schema, parse_sql_schema

TABLE = "CREATE TABLE t{i} (id INT PRIMARY KEY, v INT);"


def alias_bomb(levels: int = 9) -> str:
    """1.4 KB of YAML whose aliases expand to 9**9 strings (the issue's reproduction)."""
    anchors = ["&a [" + ",".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        anchors.append(f"&{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    # The anchors sit in the field checked last; the first field prints the expansion.
    return f"schema_file: [{', '.join(anchors)}]\ndatabase_params: *{chr(ord('a') + levels - 1)}"


def test_seed_ranges_stay_ranges():
    tracemalloc.start()
    seeds = Seeds.parse("3,5,9-12,20-999999999")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000
    assert len(seeds) == 6 + 999_999_980
    assert list(itertools.islice(seeds, 8)) == [3, 5, 9, 10, 11, 12, 20, 21]
    assert (seeds[0], seeds[5], seeds[6], seeds[-1]) == (3, 12, 20, 999_999_999)
    assert 500_000_000 in seeds and 13 not in seeds
    assert Seeds.of([4, 5, 6, 9]).ranges == (range(4, 7), range(9, 10))
    assert Seeds.of(range(0, 10, 3)).ranges == tuple(range(s, s + 1) for s in (0, 3, 6, 9))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0-1000000000000", r"1,000,000,000,001 seeds.*at most 1,000,000,000"),
        ("1-5,3", "seed 3 is listed twice"),
        ("9-12,0-9", "seed 9 is listed twice"),
        ("5,x", "bad seed 'x'"),
        ("7-3", "bad seed range '7-3'"),
        (",", "names no seed"),
    ],
)
def test_bad_seed_lists_are_dataset_errors(text, match):
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=match):
        Seeds.parse(text)
    assert time.perf_counter() - start < 1


def test_generation_request_checks_seeds_without_expanding_them():
    start = time.perf_counter()
    with pytest.raises(DatasetError, match="at most 1,000,000,000"):
        GenerationRequest(seeds=range(10**12), out="unused")
    with pytest.raises(DatasetError, match="listed twice"):
        GenerationRequest(seeds=[1, 2, 1], out="unused")
    with pytest.raises(DatasetError, match="non-negative"):
        GenerationRequest(seeds=[-1], out="unused")
    assert len(GenerationRequest(seeds=range(10**9), out="unused").seeds) == 10**9
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--seeds", "0-1000000000000"], 2, ["--seeds", "at most 1,000,000,000"]),
        (["--num-dbs", "1000000000000"], 1, ["1,000,000,000,000 seeds", "--num-dbs"]),
        (["--num-dbs", "-3"], 2, ["--num-dbs", "must be a positive integer", "-3"]),
        (["--num-dbs", "0"], 2, ["--num-dbs", "must be a positive integer", "0"]),
    ],
    ids=["seed-range", "num-dbs-huge", "num-dbs-negative", "num-dbs-zero"],
)
def test_cli_refuses_unbounded_seed_counts_in_one_line(tmp_path, capsys, args, code, words):
    start = time.perf_counter()
    assert main(["generate", *args, "--out", str(tmp_path / "out")]) == code
    assert time.perf_counter() - start < 5
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plurel-ray: error:"), lines
    assert "must be >= 0" not in lines[0]
    for word in words:
        assert word in lines[0]


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 1500
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: config: the document expands to more"):
        Config.load(path)
    assert time.perf_counter() - start < 2
    # Anchors that expand to little are fine.
    text = "scm_params:\n  a: &x {kind: set, value: [relu]}\n".replace("a:", "activation_choices:")
    text += "  initialization_choices: {kind: set, value: [sparse]}\n"
    assert Config.from_yaml(text + "dag_params: {}\n").scm_params.activation_choices.value == (
        "relu",
    )


@pytest.mark.parametrize(
    ("load", "text", "match"),
    [
        (Config.from_yaml, "database_params: &a [*a]", "refers to its own anchor"),
        (Config.from_yaml, "database_params: " + "[" * 40 + "]" * 40, "deeper than 32"),
        (Config.from_yaml, "val_split: " + "[" * 1000 + "]" * 1000, "malformed YAML"),
        (Config.from_json, "[" * 100_000 + "]" * 100_000, "malformed JSON"),
        (Config.from_json, '{"val_split": ' + "9" * 5000 + "}", "malformed JSON"),
        (Config.from_yaml, "val_split: " + "9" * 5000, "malformed YAML"),
        (Config.from_yaml, "# " + "x" * 1_000_000, "more than 1,000,000 characters"),
    ],
    ids=["cycle", "deep", "very-deep-yaml", "very-deep-json", "long-int-json", "long-int-yaml",
         "too-long"],
)  # fmt: skip
def test_pathological_config_documents_are_one_line_config_errors(load, text, match):
    with pytest.raises(ConfigError, match=match) as info:
        load(text)
    assert "\n" not in str(info.value)


def test_config_files_are_read_bounded_and_decoded_strictly(tmp_path):
    with pytest.raises(ConfigError, match="more than 1,000,000 characters"):
        Config.load("/dev/zero")  # endless: read up to the cap, never to the end
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("val_split: 0.5 # café".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: cannot read config file.*utf-8"):
        Config.load(bad)


@pytest.mark.parametrize(
    ("group", "field", "value", "match"),
    [
        ("database_params", "num_tables_choices", 100_000, r"\[1, 1000\] \(at most 1,000 tables"),
        ("database_params", "num_rows_entity_table_choices", 10**8, "at most 10,000,000 rows"),
        ("database_params", "num_rows_activity_table_choices", 10**8, "10,000,000 rows"),
        ("database_params", "num_cols_choices", 5_000, "at most 1,000 columns"),
        ("scm_params", "num_categories_choices", 10**6, "at most 1,000 categories"),
        ("scm_params", "mlp_num_layers_choices", 10**6, "at most 100 layers"),
        ("scm_params", "bi_hsbm_levels_choices", 10**9, "at most 16 levels"),
    ],
)  # fmt: skip
def test_count_fields_have_upper_bounds_naming_field_and_maximum(group, field, value, match):
    doc = {group: {field: {"kind": "range", "value": [1 if "rows" in field else 2, value]}}}
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"{group}\.{field}: .*{match}"):
        Config.from_dict(doc)
    assert time.perf_counter() - start < 1


def test_hsbm_blocks_are_bounded_together():
    levels = {"kind": "range", "value": [1, 8]}
    clusters = {"kind": "range", "value": [1, 3]}
    scm = {"bi_hsbm_levels_choices": levels, "bi_hsbm_clusters_per_level_choices": clusters}
    with pytest.raises(ConfigError, match=r"3\*\*8 blocks, more than 1,000"):
        Config.from_dict({"scm_params": scm})
    levels["value"] = [1, 6]  # 3**6 = 729
    Config.from_dict({"scm_params": scm})


def test_schema_nesting_is_checked_before_sqlglot_recurses():
    nested = "(" * 60 + "v > 1" + ")" * 60
    with pytest.raises(SchemaError, match="nest 62 deep, more than the 32"):
        parse_sql_schema(f"CREATE TABLE t (id INT PRIMARY KEY, v INT CHECK ({nested}));")
    # Parentheses inside strings and comments do not nest.
    quoted = "'" + "(" * 60 + "'"
    schema = parse_sql_schema(
        f"-- {'(' * 60}\nCREATE TABLE t (id INT PRIMARY KEY, s TEXT CHECK (s IN ({quoted}, 'b')));"
    )
    assert schema.tables[0].features[0].labels == ("(" * 60, "b")


def test_schema_size_and_counts_are_capped_and_overridable(tmp_path, monkeypatch):
    sql = "\n".join(TABLE.format(i=i) for i in range(5))
    assert len(parse_sql_schema(sql).tables) == 5
    monkeypatch.setenv("PLUREL_MAX_SCHEMA_TABLES", "4")
    with pytest.raises(SchemaError, match=r"5 CREATE TABLE.*4 allowed.*PLUREL_MAX_SCHEMA_TABLES"):
        parse_sql_schema(sql)
    monkeypatch.setenv("PLUREL_MAX_SCHEMA_COLUMNS", "2")
    with pytest.raises(SchemaError, match=r"'wide' has 3 columns.*PLUREL_MAX_SCHEMA_COLUMNS"):
        parse_sql_schema("CREATE TABLE wide (id INT PRIMARY KEY, a INT, b INT);")
    path = tmp_path / "s.sql"
    path.write_text(sql)
    monkeypatch.setenv("PLUREL_MAX_SCHEMA_BYTES", str(len(sql) - 1))
    with pytest.raises(SchemaError, match=r"s\.sql: the SQL schema is more than.*BYTES"):
        load_sql_schema(path)
    monkeypatch.setenv("PLUREL_MAX_SCHEMA_BYTES", "many")
    with pytest.raises(ConfigError, match="PLUREL_MAX_SCHEMA_BYTES: expected a positive integer"):
        load_sql_schema(path)


def test_endless_schema_file_is_read_up_to_the_cap():
    start = time.perf_counter()
    with pytest.raises(SchemaError, match="/dev/zero: the SQL schema is more than 1,000,000"):
        load_sql_schema("/dev/zero")
    assert time.perf_counter() - start < 2
