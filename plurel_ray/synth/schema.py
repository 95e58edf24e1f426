"""The shape of a database before any value exists: tables, keys, feature columns.

Both the random schema sampler and the SQL DDL parser (docs/prior.md) produce a
`DatabaseSchema`; the SCM generator consumes it without knowing where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
TIME_COL = "date"


@dataclass(frozen=True)
class ColumnSpec:
    """One feature column.

    Args:
        name: column name.
        stype: `NUMERICAL` or `CATEGORICAL`.
        num_categories: category count of a categorical column; None when it is to be
            sampled at generation time (SQL text columns).
        labels: string labels of a categorical column (SQL enums); None for integer
            categories.
        text: True for SQL text columns: categorical with generated string labels
            `"<name>_<j>"`.
    """

    name: str
    stype: str
    num_categories: int | None = None
    labels: tuple[str, ...] | None = None
    text: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One table.

    Args:
        name: table name.
        pkey: primary-key column (holds 0..n-1), or None when the table has none.
        fkeys: (foreign-key column, referenced table) pairs, in column order.
        features: feature columns, in column order.
        time_col: the time column, or None (entity tables of the random prior).
        is_activity: True for activity tables (sinks of the table graph).
    """

    name: str
    pkey: str | None
    fkeys: tuple[tuple[str, str], ...]
    features: tuple[ColumnSpec, ...]
    time_col: str | None
    is_activity: bool


@dataclass(frozen=True)
class DatabaseSchema:
    """Tables in topological order of the foreign-key graph: parents before children."""

    tables: tuple[TableSpec, ...]

    def table(self, name: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def children(self, name: str) -> list[str]:
        """Tables holding a foreign key to `name`, in schema order."""
        return [t.name for t in self.tables if any(p == name for _, p in t.fkeys)]
