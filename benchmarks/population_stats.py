"""Population statistics of generated databases: trends, autocorrelation, distinct values.

    python benchmarks/population_stats.py --seeds 7000-7039            # table + medians
    python benchmarks/population_stats.py --seeds 7000-7039 --json     # one JSON object
    python benchmarks/population_stats.py --seeds 0-9 --config my.yaml
    python benchmarks/population_stats.py --data /tmp/out               # DIR/*/manifest.yaml

Without --data each seed is generated in memory (`generate_database`, nothing written);
with --data every dataset folder under DIR (a folder holding manifest.yaml and
db/<table>.parquet, e.g. one written by `plurel-ray generate`) is read instead, so
databases of any generator can be compared the same way.

Per database, over the numeric feature columns of all its tables (float or integer
columns that are neither a key nor the time column; booleans and strings excluded),
each column in row order — time order for a table with a time column, primary-key
order otherwise — with its NaNs dropped and columns of fewer than 3 values skipped:

- trend: mean over columns of |Spearman(value, row position)|;
- distinct: mean over columns of (distinct values / values);
- autocorr: mean over columns of the signed lag-1 Spearman autocorrelation
  Spearman(x[:-1], x[1:]);
- uniform: fraction of columns whose KS distance to U(0, 1) is below 0.05;
- timed_rows: mean rows of the tables with a time column (all rows, NaNs included).

A constant column has no Spearman correlation: it counts in distinct and uniform but not
in trend or autocorr. The population figure of each statistic is its median over
databases (databases without any column for it are left out). The reference values are
those of the original PluRel implementation, default config, 40 databases.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from relbench.manifest import DatasetManifest
from scipy.stats import rankdata

from plurel_ray.config import Config
from plurel_ray.synth.database import generate_database

REFERENCE = {
    "trend": 0.044,
    "distinct": 0.864,
    "autocorr": 0.029,
    "uniform": 0.180,
    "timed_rows": 3714.0,
}
UNIFORM_KS = 0.05
MIN_VALUES = 3


def _seed_range(text: str) -> range:
    try:
        lo, _, hi = text.partition("-")
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B (e.g. 7000-7039), got {text!r}") from None
    if not 0 <= first <= last:
        raise argparse.ArgumentTypeError(f"need 0 <= A <= B, got {text!r}")
    return range(first, last + 1)


def ordered_numeric_columns(
    df: pd.DataFrame, pkey: str | None, time_col: str | None, fkeys: list[str]
) -> list[np.ndarray]:
    """The numeric feature columns of one table as float64, rows in time or key order.

    Args:
        df: the table.
        pkey: its primary-key column, or None.
        time_col: its time column, or None.
        fkeys: its foreign-key columns.
    """
    order = time_col if time_col is not None else pkey
    if order is not None:
        df = df.sort_values(order, kind="stable")
    skip = {pkey, time_col, *fkeys}
    return [
        df[name].to_numpy(dtype=np.float64, na_value=np.nan)
        for name in df.columns
        if name not in skip
        and pd.api.types.is_numeric_dtype(df[name])
        and not pd.api.types.is_bool_dtype(df[name])
    ]


def _spearman(x: np.ndarray, y_ranks: np.ndarray | None = None, y: np.ndarray | None = None):
    rx = rankdata(x)
    ry = y_ranks if y_ranks is not None else rankdata(y)
    rx = rx - rx.mean()
    ry = ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else None


def _uniform_ks(x: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance between the sample `x` and U(0, 1)."""
    cdf = np.clip(np.sort(x), 0.0, 1.0)
    n = len(cdf)
    steps = np.arange(1, n + 1) / n
    return float(max((steps - cdf).max(), (cdf - (steps - 1.0 / n)).max()))


def column_stats(column: np.ndarray) -> dict | None:
    """trend, distinct, autocorr (None for a constant column) and uniform of one column in
    row order; None when it holds fewer than MIN_VALUES values.

    Args:
        column: float64 values in row order, NaN for missing.
    """
    x = column[~np.isnan(column)]
    if len(x) < MIN_VALUES:
        return None
    trend = _spearman(x, y_ranks=np.arange(len(x), dtype=np.float64))
    return {
        "trend": None if trend is None else abs(trend),
        "distinct": len(np.unique(x)) / len(x),
        "autocorr": _spearman(x[:-1], y=x[1:]),
        "uniform": float(_uniform_ks(x) < UNIFORM_KS),
    }


def database_stats(tables: list[tuple[pd.DataFrame, str | None, str | None, list[str]]]) -> dict:
    """The five statistics of one database (None where it has no column for one).

    Args:
        tables: per table, (frame, primary key, time column, foreign-key columns).
    """
    per_column = [
        stats
        for df, pkey, time_col, fkeys in tables
        for column in ordered_numeric_columns(df, pkey, time_col, fkeys)
        if (stats := column_stats(column)) is not None
    ]
    out: dict = {}
    for name in ("trend", "distinct", "autocorr", "uniform"):
        values = [s[name] for s in per_column if s[name] is not None]
        out[name] = float(np.mean(values)) if values else None
    timed = [len(df) for df, _, time_col, _ in tables if time_col is not None]
    out["timed_rows"] = float(np.mean(timed)) if timed else None
    out["columns"] = len(per_column)
    return out


def generated_tables(seed: int, config: Config) -> list:
    """`database_stats` input for the database of `seed`, generated in memory."""
    db = generate_database(seed, config)
    return [
        (db.tables[s.name], s.pkey, s.time_col, [col for col, _ in s.fkeys])
        for s in db.schema.tables
    ]


def folder_tables(folder: Path) -> list:
    """`database_stats` input for a dataset folder (manifest.yaml + db/*.parquet)."""
    manifest = DatasetManifest.load(folder / "manifest.yaml")
    return [
        (
            pq.read_table(folder / "db" / f"{name}.parquet").to_pandas(),
            spec.pkey,
            spec.time_col,
            list(spec.fkeys),
        )
        for name, spec in manifest.tables.items()
    ]


def summarise(per_db: list[dict]) -> dict:
    """Median over databases of each statistic, with the reference and the ratio to it."""
    out = {}
    for name, reference in REFERENCE.items():
        values = [d[name] for d in per_db if d[name] is not None]
        median = statistics.median(values) if values else None
        ratio = None if median is None else median / reference
        out[name] = {
            "median": median,
            "reference": reference,
            "ratio": ratio,
            "within_15pct": ratio is not None and abs(ratio - 1.0) <= 0.15,
        }
    return out


def _report(result: dict) -> str:
    lines = [f"{'statistic':<12} {'median':>10} {'reference':>10} {'ratio':>7}  within 15 %"]
    for name, s in result["summary"].items():
        median = "-" if s["median"] is None else f"{s['median']:.3f}"
        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.2f}"
        lines.append(
            f"{name:<12} {median:>10} {s['reference']:>10.3f} {ratio:>7}  "
            f"{'yes' if s['within_15pct'] else 'NO'}"
        )
    lines.append(f"databases: {len(result['per_db'])} ({result['source']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=_seed_range, default=range(7000, 7040), metavar="A-B",
        help="inclusive seed range to generate (default 7000-7039)",
    )  # fmt: skip
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML/JSON Config")
    parser.add_argument(
        "--data", type=Path, metavar="DIR",
        help="read every dataset folder under DIR instead of generating",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    per_db = []
    if args.data is not None:
        folders = sorted(p.parent for p in args.data.expanduser().glob("**/manifest.yaml"))
        if not folders:
            parser.error(f"--data {args.data}: no dataset folder (manifest.yaml) under it")
        for folder in folders:
            per_db.append({"folder": str(folder), **database_stats(folder_tables(folder))})
        source = f"folders under {args.data}"
    else:
        config = Config() if args.config is None else Config.load(args.config)
        for seed in args.seeds:
            per_db.append({"seed": seed, **database_stats(generated_tables(seed, config))})
        source = f"seeds {args.seeds.start}-{args.seeds.stop - 1}"
    result = {"source": source, "summary": summarise(per_db), "per_db": per_db}
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
