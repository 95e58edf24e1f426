"""benchmarks/population_stats.py computes the statistics it documents, per column, per
database and over dataset folders."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relbench.manifest import DatasetManifest, TableSpec
from scipy.stats import spearmanr

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "population_stats.py"


@pytest.fixture(scope="module")
def stats():
    spec = importlib.util.spec_from_file_location("population_stats", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_ramp_trends_and_autocorrelates_fully(stats):
    s = stats.column_stats(np.arange(200.0)[::-1].copy())
    assert s["trend"] == pytest.approx(1.0)  # absolute: a falling ramp counts as 1
    assert s["autocorr"] == pytest.approx(1.0)
    assert s["distinct"] == 1.0
    assert s["uniform"] == 0.0  # values up to 199, not in [0, 1)


def test_shuffled_uniform_values_look_uniform_and_untrended(stats):
    x = np.random.default_rng(0).random(3000)
    s = stats.column_stats(x)
    assert s["uniform"] == 1.0
    assert s["trend"] < 0.08 and abs(s["autocorr"]) < 0.08  # 4 standard errors
    assert stats.column_stats(x * 0.9)["uniform"] == 0.0  # KS distance 0.1


def test_correlations_are_scipys_spearman_with_average_ranks_for_ties(stats):
    x = np.random.default_rng(2).integers(0, 7, 500).astype(np.float64)
    s = stats.column_stats(x)
    assert s["trend"] == pytest.approx(abs(spearmanr(x, np.arange(500)).statistic))
    assert s["autocorr"] == pytest.approx(spearmanr(x[:-1], x[1:]).statistic)
    assert s["distinct"] == pytest.approx(7 / 500)


def test_nans_are_dropped_and_short_or_constant_columns_handled(stats):
    x = np.array([np.nan, 1.0, np.nan, 2.0, 3.0, np.nan])
    assert stats.column_stats(x)["trend"] == pytest.approx(1.0)
    assert stats.column_stats(np.array([1.0, np.nan, 2.0])) is None  # 2 values < 3
    constant = stats.column_stats(np.full(10, 4.0))
    assert constant["trend"] is None and constant["autocorr"] is None
    assert constant["distinct"] == pytest.approx(0.1)


def test_rows_are_taken_in_time_order_and_keys_and_booleans_are_not_features(stats):
    n = 50
    order = np.random.default_rng(1).permutation(n)
    df = pd.DataFrame({
        "id": order,
        "parent": np.zeros(n, dtype=np.int64),
        "flag": np.arange(n) % 2 == 0,
        "value": order.astype(np.float64),  # rises with time once sorted
        "when": pd.date_range("2000-01-01", periods=n)[order],
    })  # fmt: skip
    (column,) = stats.ordered_numeric_columns(df, "id", "when", ["parent"])
    np.testing.assert_array_equal(column, np.arange(n))
    (by_key,) = stats.ordered_numeric_columns(df.drop(columns="when"), "id", None, ["parent"])
    np.testing.assert_array_equal(by_key, np.arange(n))
    db = stats.database_stats([(df, "id", "when", ["parent"])])
    assert db["trend"] == pytest.approx(1.0) and db["timed_rows"] == n and db["columns"] == 1


def test_summary_is_the_median_over_databases_and_skips_missing(stats):
    per_db = [
        {"trend": t, "distinct": 0.9, "autocorr": 0.0, "uniform": 0.2, "timed_rows": r}
        for t, r in [(0.01, 3000.0), (0.2, None), (0.1, 4000.0)]
    ]
    summary = stats.summarise(per_db)
    assert summary["trend"]["median"] == 0.1
    assert summary["timed_rows"]["median"] == 3500.0
    assert summary["distinct"]["within_15pct"] and not summary["trend"]["within_15pct"]


def test_the_script_reads_dataset_folders(tmp_path):
    folder = tmp_path / "data" / "seed-1"
    (folder / "db").mkdir(parents=True)
    n = 40
    pd.DataFrame({
        "row_idx": np.arange(n), "x": np.linspace(0.0, 1.0, n),
        "date": pd.date_range("2001-01-01", periods=n),
    }).to_parquet(folder / "db" / "events.parquet")  # fmt: skip
    DatasetManifest(
        name="t",
        val_timestamp="2001-01-20",
        test_timestamp="2001-01-30",
        tables={"events": TableSpec(pkey="row_idx", time_col="date")},
    ).save(folder / "manifest.yaml")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "data"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["per_db"][0]["folder"] == str(folder)
    assert result["summary"]["trend"]["median"] == pytest.approx(1.0)
    assert result["summary"]["timed_rows"]["median"] == n
