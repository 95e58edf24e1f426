"""Read SQL DDL (`CREATE TABLE` statements) into a `DatabaseSchema` (docs/prior.md#sql-schemas).

The DDL is only parsed, with sqlglot, never executed. Foreign keys give the table graph
(referenced table → referencing table); tables nobody references are activity tables.
Our extensions over the reference: text columns become categorical columns with generated
labels, a DATE/TIMESTAMP column becomes the table's time column, tables may lack a primary
key when nobody references them, and PostgreSQL `CREATE TYPE ... AS ENUM` is understood.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from plurel_ray.errors import SchemaError
from plurel_ray.limits import SCHEMA_BYTES, SCHEMA_COLUMNS_PER_TABLE, SCHEMA_TABLES, SQL_PAREN_DEPTH
from plurel_ray.names import check_name
from plurel_ray.synth.schema import (
    CATEGORICAL,
    NUMERICAL,
    TIME_COL,
    ColumnSpec,
    DatabaseSchema,
    TableSpec,
)

# Tried in this order when no dialect is given; None is sqlglot's own (permissive) dialect.
DIALECTS: tuple[str | None, ...] = (None, "postgres", "mysql", "sqlite")

_T = exp.DataType.Type
# sqlglot's own dialect reads PostgreSQL serial/money types as user-defined names.
_NUMERIC_NAMES = frozenset({"SERIAL", "SMALLSERIAL", "BIGSERIAL", "MONEY", "SMALLMONEY"})
_NUMERIC = frozenset(exp.DataType.NUMERIC_TYPES) | {_T.SERIAL, _T.SMALLSERIAL, _T.BIGSERIAL}
_TEXT = frozenset(exp.DataType.TEXT_TYPES)
_TEMPORAL = frozenset(exp.DataType.TEMPORAL_TYPES)
_ENUM = frozenset({_T.ENUM, _T.ENUM8, _T.ENUM16})
_SUPPORTED = "a numeric type, BOOLEAN, VARCHAR/TEXT, ENUM(...) or DATE/TIMESTAMP"
_CREATE_TABLE_TEXT = re.compile(
    r"\s*CREATE\s+(?:OR\s+REPLACE\s+|TEMP\s+|TEMPORARY\s+|UNLOGGED\s+|GLOBAL\s+|LOCAL\s+)*"
    r"TABLE\b",
    re.IGNORECASE,
)
# sqlglot 30 degrades any SQLite `WITHOUT ROWID` table to a Command; the option is storage
# only, so it is dropped before parsing.
_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\b", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # sqlglot underlines the error position for terminals
# String literals, quoted identifiers and comments: their parentheses are not nesting.
_QUOTED_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", re.DOTALL)
_CREATE_TABLE_ANYWHERE = re.compile(_CREATE_TABLE_TEXT.pattern.removeprefix(r"\s*"), re.IGNORECASE)


@dataclass
class _Table:
    """One CREATE TABLE as written, before keys are resolved against other tables."""

    name: str
    columns: dict[str, tuple[str, exp.DataType | None]] = field(default_factory=dict)
    pkey: list[str] = field(default_factory=list)
    # (fk column, referenced table as written, referenced column or None = its pk)
    fkeys: list[tuple[str, str, str | None]] = field(default_factory=list)
    checks: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def column(self, name: str, what: str, source: str) -> str:
        """DDL spelling of column `name` (SQL names are case-insensitive)."""
        try:
            return self.columns[name.lower()][0]
        except KeyError:
            raise SchemaError(
                f"{source}: table {self.name!r}: {what} names unknown column {name!r}; "
                f"columns are {[c for c, _ in self.columns.values()]}"
            ) from None


def load_sql_schema(path: str | os.PathLike, dialect: str | None = None) -> DatabaseSchema:
    """Read an SQL DDL file and parse it with `parse_sql_schema`.

    Args:
        path: file holding `CREATE TABLE` statements.
        dialect: sqlglot dialect name ("postgres", "mysql", "sqlite", ...); None tries
            sqlglot's default dialect, then postgres, mysql and sqlite.
    """
    limit = SCHEMA_BYTES.value
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # bounded: the path may be a pipe or /dev/zero
        _check_size(len(data), limit, os.fspath(path))
        sql = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SchemaError(f"cannot read SQL schema file {os.fspath(path)!r}: {err}") from err
    return parse_sql_schema(sql, dialect=dialect, source=os.fspath(path))


def _check_size(num_bytes: int, limit: int, source: str) -> None:
    if num_bytes > limit:
        raise SchemaError(
            f"{source}: the SQL schema is more than {limit:,} bytes; split it or drop what "
            f"generation does not need{SCHEMA_BYTES.how_to_raise()}"
        )


def _prescan(sql: str, source: str) -> None:
    """Refuse, before sqlglot reads it, SQL that is too big or nests too deep for it."""
    _check_size(len(sql.encode("utf-8", "surrogatepass")), SCHEMA_BYTES.value, source)
    code = _QUOTED_OR_COMMENT.sub(" ", sql)
    depth = deepest = 0
    for paren in re.finditer(r"[()]", code):
        depth = depth + 1 if paren.group() == "(" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > SQL_PAREN_DEPTH.value:
        raise SchemaError(
            f"{source}: parentheses nest {deepest} deep, more than the {SQL_PAREN_DEPTH.value} "
            "the parser allows; simplify the nested expression (CHECK, DEFAULT, ...)"
        )
    _check_table_count(len(_CREATE_TABLE_ANYWHERE.findall(code)), source)


def _check_table_count(count: int, source: str) -> None:
    if count > SCHEMA_TABLES.value:
        raise SchemaError(
            f"{source}: {count:,} CREATE TABLE statements, more than the "
            f"{SCHEMA_TABLES.value:,} allowed; keep the tables generation needs"
            f"{SCHEMA_TABLES.how_to_raise()}"
        )


def parse_sql_schema(sql: str, dialect: str | None = None, source: str = "<sql>") -> DatabaseSchema:
    """Turn DDL text into a `DatabaseSchema`, tables in topological order of the FK graph.

    Args:
        sql: SQL text; only `CREATE TABLE` (and PostgreSQL `CREATE TYPE ... AS ENUM`)
            statements matter, everything else is ignored.
        dialect: sqlglot dialect name, or None to try `DIALECTS` in order and keep the first
            that parses every CREATE statement.
        source: name of the SQL's origin (a file path), used in error messages.
    """
    _prescan(sql, source)
    try:
        return _schema(sql, dialect, source)
    except RecursionError:  # a construct that nests without parentheses
        raise SchemaError(
            f"{source}: the SQL nests too deeply for the parser; simplify the schema"
        ) from None


def _schema(sql: str, dialect: str | None, source: str) -> DatabaseSchema:
    statements, used = _parse(sql, dialect, source)
    enums = {
        s.this.name.lower(): _label_set(s.expression.expressions, f"type {s.this.name!r}", source)
        for s in statements
        if isinstance(s, exp.Create)
        and s.kind == "TYPE"
        and isinstance(s.expression, exp.DataType)
        and s.expression.this in _ENUM
    }
    tables: dict[str, _Table] = {}
    for stmt in statements:
        if isinstance(stmt, exp.Command) and _CREATE_TABLE_TEXT.match(stmt.sql()):
            # sqlglot degrades syntax it does not know to an opaque Command; losing a table
            # silently would generate a different database than the user wrote.
            raise SchemaError(
                f"{source}: sqlglot (dialect {used or 'default'}) cannot parse "
                f"{stmt.sql()[:80]!r}...; pass the right dialect or simplify the statement"
            )
        if isinstance(stmt, exp.Create) and stmt.kind == "TABLE":
            table = _read_table(stmt, source)
            if table.name.lower() in tables:
                raise SchemaError(
                    f"{source}: table {table.name!r} is created twice (names are "
                    "case-insensitive); rename or drop one CREATE TABLE"
                )
            tables[table.name.lower()] = table
            _check_table_count(len(tables), source)
    if not tables:
        raise SchemaError(f"no CREATE TABLE statement in {source}")
    parents = _resolve_fkeys(tables, source)
    order = _topological_order(tables, parents, source)
    referenced = {p for ps in parents.values() for p in ps}
    specs = [_table_spec(tables[k], k not in referenced, enums, source, used) for k in order]
    return DatabaseSchema(tables=tuple(specs))


def _parse(sql: str, dialect: str | None, source: str) -> tuple[list[exp.Expression], str | None]:
    candidates = (dialect,) if dialect is not None else DIALECTS
    sql = _WITHOUT_ROWID.sub(")", sql)
    best: tuple[int, list[exp.Expression], str | None] | None = None
    first_error: str | None = None
    logger = logging.getLogger("sqlglot")
    level = logger.level
    for name in candidates:
        # Trying dialects makes sqlglot log a warning per fallback; our errors say enough.
        logger.setLevel(logging.ERROR)
        try:
            statements = [s for s in sqlglot.parse(sql, read=name) if s is not None]
        except (SqlglotError, ValueError) as err:  # ValueError: unknown dialect name
            # sqlglot quotes the offending lines below its message; one line is enough.
            first_error = first_error or (_ANSI.sub("", str(err)).strip().splitlines() or [""])[0]
            continue
        finally:
            logger.setLevel(level)
        fallbacks = sum(_misparsed(s) for s in statements)
        if best is None or fallbacks < best[0]:
            best = (fallbacks, statements, name)
        if fallbacks == 0:
            break
    if best is None:
        tried = ", ".join(d or "default" for d in candidates)
        raise SchemaError(f"{source}: cannot parse SQL (dialects tried: {tried}): {first_error}")
    return best[1], best[2]


def _misparsed(stmt: exp.Expression) -> bool:
    """True when `stmt` shows signs of a dialect that does not know the DDL's syntax."""
    if isinstance(stmt, exp.Command):  # sqlglot's fallback for syntax it cannot read
        return stmt.name.upper() == "CREATE"
    if not (isinstance(stmt, exp.Create) and isinstance(stmt.this, exp.Schema)):
        return False
    # Dialects without MySQL's `KEY name (cols)` read it as a column KEY of type name(cols).
    return any(
        isinstance(c, exp.ColumnDef) and not c.this.quoted and c.name.upper() in ("KEY", "INDEX")
        for c in stmt.this.expressions
    )


def _names(nodes: list[exp.Expression]) -> list[str]:
    # Key column lists hold Identifiers, Columns or (MySQL) Ordered(Column) nodes.
    return [(n.this if isinstance(n, exp.Ordered) else n).name for n in nodes]


def _reference(ref: exp.Reference) -> tuple[str, list[str]]:
    """(referenced table, referenced columns) of a REFERENCES clause."""
    target = ref.this
    if isinstance(target, exp.Schema):
        return target.this.name, _names(target.expressions)
    return target.name, []


def _literal(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return f"-{node.this.this}"
    return str(node.this) if isinstance(node, exp.Literal) else None


def _check_in(check: exp.CheckColumnConstraint) -> tuple[str, list[exp.Expression]] | None:
    """(column, members) of `CHECK (col IN (lit, ...))`; None for any other check."""
    cond = check.this.unnest()
    if not isinstance(cond, exp.In) or not isinstance(cond.this, exp.Column):
        return None
    if not cond.expressions or any(_literal(e) is None for e in cond.expressions):
        return None  # a range or subquery check restricts values but gives no label set
    return cond.this.name, cond.expressions


def _label_set(members: list[exp.Expression], what: str, source: str) -> tuple[str, ...]:
    """Distinct string labels of an ENUM or CHECK IN list; at least two."""
    labels = [_literal(m) for m in members]
    if None in labels:
        raise SchemaError(f"{source}: {what}: ENUM members must be plain literals")
    unique = tuple(dict.fromkeys(str(label) for label in labels))
    if len(unique) < 2:
        raise SchemaError(
            f"{source}: {what}: an ENUM/CHECK list needs at least 2 distinct labels, got "
            f"{list(unique)}; add labels or make the column a plain type"
        )
    return unique


def _read_table(stmt: exp.Create, source: str) -> _Table:
    schema = stmt.this
    if not isinstance(schema, exp.Schema):
        raise SchemaError(
            f"{source}: table {schema.name!r} has no column list (CREATE TABLE ... AS/LIKE); "
            "write its columns out"
        )
    table = _Table(name=check_name("table", schema.this.name, SchemaError, f"{source}: "))
    constraints: list[exp.Expression] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef | exp.Identifier):
            name = check_name("column", item.name, SchemaError, f"{source}: table {table.name!r}: ")
            if name.lower() in table.columns:
                raise SchemaError(
                    f"{source}: table {table.name!r} declares column {name!r} twice; "
                    "rename or drop one"
                )
            # A bare identifier is an untyped column (SQLite allows them).
            table.columns[name.lower()] = (name, item.args.get("kind"))
            for cons in item.args.get("constraints") or []:
                _read_column_constraint(table, name, cons.args.get("kind"), source)
        elif isinstance(item, exp.Constraint):  # CONSTRAINT name <PRIMARY KEY|FOREIGN KEY|CHECK>
            constraints.extend(item.expressions)
        else:
            constraints.append(item)
    if len(table.columns) > SCHEMA_COLUMNS_PER_TABLE.value:
        raise SchemaError(
            f"{source}: table {table.name!r} has {len(table.columns):,} columns, more than the "
            f"{SCHEMA_COLUMNS_PER_TABLE.value:,} allowed; drop columns generation does not "
            f"need{SCHEMA_COLUMNS_PER_TABLE.how_to_raise()}"
        )
    for cons in constraints:  # table constraints may name columns declared after them
        if isinstance(cons, exp.PrimaryKey):
            table.pkey.extend(
                table.column(c, "PRIMARY KEY", source) for c in _names(cons.expressions)
            )
        elif isinstance(cons, exp.ForeignKey):
            cols = [table.column(c, "FOREIGN KEY", source) for c in _names(cons.expressions)]
            parent, ref_cols = _reference(cons.args["reference"])
            if len(cols) != 1 or len(ref_cols) > 1:
                raise SchemaError(
                    f"{source}: table {table.name!r}: composite foreign key {cols} → "
                    f"{parent}{ref_cols}; only single-column foreign keys are supported"
                )
            table.fkeys.append((cols[0], parent, ref_cols[0] if ref_cols else None))
        elif isinstance(cons, exp.CheckColumnConstraint):
            _read_column_constraint(table, None, cons, source)
    for column in table.checks:
        table.column(column, "CHECK", source)
    table.pkey = list(dict.fromkeys(table.pkey))  # inline and table-level PK may repeat
    if len(table.pkey) > 1:
        raise SchemaError(
            f"{source}: table {table.name!r} has a composite primary key {table.pkey}; "
            "give it a single-column primary key (e.g. an INTEGER id)"
        )
    return table


def _read_column_constraint(
    table: _Table, column: str | None, kind: exp.Expression | None, source: str
) -> None:
    """Record an inline PRIMARY KEY / REFERENCES / CHECK of `column` (None: table CHECK)."""
    if isinstance(kind, exp.PrimaryKeyColumnConstraint) and column is not None:
        table.pkey.append(column)
    elif isinstance(kind, exp.Reference) and column is not None:
        parent, ref_cols = _reference(kind)
        if len(ref_cols) > 1:
            raise SchemaError(
                f"{source}: table {table.name!r}: column {column!r} references "
                f"composite key {parent}{ref_cols}; "
                "only single-column foreign keys are supported"
            )
        table.fkeys.append((column, parent, ref_cols[0] if ref_cols else None))
    elif isinstance(kind, exp.CheckColumnConstraint) and (found := _check_in(kind)):
        name, members = found
        where = f"table {table.name!r} column {name!r}"
        table.checks[name.lower()] = _label_set(members, where, source)


def _resolve_fkeys(tables: dict[str, _Table], source: str) -> dict[str, list[str]]:
    """Check every FK targets another table's pk; return each table's parents (lowercase).

    Rewrites each table's `fkeys` to hold the parent's DDL spelling, one entry per column.
    """
    parents: dict[str, list[str]] = {}
    for key, table in tables.items():
        resolved: dict[str, tuple[str, str, str | None]] = {}
        for column, parent_name, ref_col in table.fkeys:
            where = f"{table.name}.{column}"
            parent = tables.get(parent_name.lower())
            if parent is None:
                raise SchemaError(
                    f"{source}: {where} references unknown table {parent_name!r}; "
                    f"tables are {[t.name for t in tables.values()]}"
                )
            if parent is table:
                raise SchemaError(
                    f"{source}: table {table.name!r} references itself ({where}); "
                    "self-references are not supported, drop that foreign key"
                )
            if ref_col is not None:
                ref_col = parent.column(ref_col, f"foreign key {where}", source)
            if not parent.pkey:
                raise SchemaError(
                    f"{source}: table {parent.name!r} is referenced by {where} but has no "
                    "primary key; declare one (e.g. id INTEGER PRIMARY KEY)"
                )
            if ref_col is not None and ref_col != parent.pkey[0]:
                raise SchemaError(
                    f"{source}: {where} references {parent.name}.{ref_col}, which is not the "
                    f"primary key of {parent.name!r} ({parent.pkey[0]}); reference the pk"
                )
            if table.pkey and column == table.pkey[0]:
                # The generator writes 0..n-1 into a pk and parent row indices into an fk.
                raise SchemaError(
                    f"{source}: {where} is both the primary key and a foreign key; give "
                    f"{table.name!r} its own id column"
                )
            earlier = resolved.setdefault(column, (column, parent.name, ref_col))
            if earlier[1] != parent.name:  # inline + table-level FK on one column may agree
                raise SchemaError(
                    f"{source}: {where} references both {earlier[1]!r} and {parent.name!r}; "
                    "keep one foreign key"
                )
        table.fkeys = list(resolved.values())
        parents[key] = list(dict.fromkeys(p.lower() for _, p, _ in table.fkeys))
    return parents


def _topological_order(
    tables: dict[str, _Table], parents: dict[str, list[str]], source: str
) -> list[str]:
    """Parents before children; among ready tables the earliest in the DDL comes first."""
    order: list[str] = []
    remaining = list(tables)  # DDL order
    while remaining:
        ready = next((k for k in remaining if all(p in order for p in parents[k])), None)
        if ready is None:
            # Every remaining table waits on another remaining one: walk parents to a cycle.
            path = [remaining[0]]
            while True:
                step = next(p for p in parents[path[-1]] if p in remaining)
                if step in path:
                    cycle = [*path[path.index(step) :], step]
                    break
                path.append(step)
            names = " → ".join(tables[k].name for k in cycle)
            raise SchemaError(
                f"{source}: foreign keys form a cycle ({names}, each references the next); "
                "drop one of these foreign keys"
            )
        order.append(ready)
        remaining.remove(ready)
    return order


def _table_spec(
    table: _Table,
    is_activity: bool,
    enums: dict[str, tuple[str, ...]],
    source: str,
    dialect: str | None,
) -> TableSpec:
    """Split a table's columns into keys, time column and features (`dialect` prints types)."""
    pkey = table.pkey[0] if table.pkey else None
    fk_parent = {c: p for c, p, _ in table.fkeys}
    fkeys: list[tuple[str, str]] = []
    features: list[ColumnSpec] = []
    time_col: str | None = None
    for key, (name, dtype) in table.columns.items():
        if name in fk_parent:
            fkeys.append((name, fk_parent[name]))
            continue
        if name == pkey:
            continue
        where = f"table {table.name!r} column {name!r}"
        if key in table.checks:
            features.append(_categorical(name, table.checks[key]))
        elif dtype is not None and dtype.this in _TEMPORAL:
            if time_col is not None:
                raise SchemaError(
                    f"{source}: table {table.name!r} has date/time columns {time_col!r} and "
                    f"{name!r}; a table can have one time column, make the other numeric"
                )
            time_col = name
        else:
            features.append(_feature(name, dtype, where, enums, source, dialect))
    if is_activity and time_col is None:
        clash = table.columns.get(TIME_COL)
        if clash is not None:
            raise SchemaError(
                f"{source}: activity table {table.name!r} needs a time column {TIME_COL!r} but "
                f"has column {clash[0]!r} of another type; rename it or make it DATE/TIMESTAMP"
            )
        time_col = TIME_COL
    return TableSpec(
        name=table.name,
        pkey=pkey,
        fkeys=tuple(fkeys),
        features=tuple(features),
        time_col=time_col,
        is_activity=is_activity,
    )


def _feature(
    name: str,
    dtype: exp.DataType | None,
    where: str,
    enums: dict[str, tuple[str, ...]],
    source: str,
    dialect: str | None,
) -> ColumnSpec:
    """The ColumnSpec of a non-key, non-time column, from its SQL type."""
    if dtype is None:
        raise SchemaError(f"{source}: {where} has no type; declare it as {_SUPPORTED}")
    kind = dtype.this
    params = [
        _literal(p.this if isinstance(p, exp.DataTypeParam) else p) for p in dtype.expressions
    ]
    # MySQL spells BOOLEAN as TINYINT(1); BIT(1) is the other common boolean spelling.
    if (
        kind == _T.BOOLEAN
        or (kind == _T.TINYINT and params == ["1"])
        or (kind == _T.BIT and params in ([], ["1"]))
    ):
        return ColumnSpec(name, CATEGORICAL, num_categories=2)
    udt = str(dtype.args.get("kind") or "").split(".")[-1] if kind == _T.USERDEFINED else ""
    if kind in _NUMERIC or udt.upper() in _NUMERIC_NAMES:
        return ColumnSpec(name, NUMERICAL)
    if kind in _ENUM:
        return _categorical(name, _label_set(dtype.expressions, where, source))
    if udt.lower() in enums:  # PostgreSQL: CREATE TYPE mood AS ENUM (...)
        return _categorical(name, enums[udt.lower()])
    if kind in _TEXT:
        return ColumnSpec(name, CATEGORICAL, text=True)
    raise SchemaError(
        f"{source}: {where} has type {dtype.sql(dialect)}, which the generator cannot produce; "
        f"use {_SUPPORTED}, or drop the column"
    )


def _categorical(name: str, labels: tuple[str, ...]) -> ColumnSpec:
    return ColumnSpec(name, CATEGORICAL, num_categories=len(labels), labels=labels)


# What `column_kind` calls the cell types of the generator's mapping.
NUMBER, BOOLEAN, TEXT, TIME = "number", "boolean", "text", "time"
_TIME_OF_DAY = frozenset({_T.TIME, _T.TIMETZ})


def column_kind(type_sql: str, dialect: str | None = None) -> str | None:
    """What the generator's mapping of SQL types (`_feature` above) makes of a column type
    of an existing database: NUMBER, BOOLEAN, TEXT (text and enums) or TIME (dates and
    timestamps), or None when it has no cell for it (BLOB, JSON, lists, time of day, …).

    Args:
        type_sql: the type as the database's catalog spells it ("DECIMAL(10,2)", "INT").
        dialect: the sqlglot dialect of that spelling ("duckdb", "sqlite").
    """
    try:
        dtype = exp.DataType.build(type_sql, dialect=dialect)
    except (SqlglotError, ValueError):
        return None
    if dtype.this in _TIME_OF_DAY:
        return None
    if dtype.this in _TEMPORAL:
        return TIME
    try:
        spec = _feature("column", dtype, "column", {}, "catalog", dialect)
    except SchemaError:
        return None
    if spec.text or spec.labels is not None:
        return TEXT
    return BOOLEAN if spec.stype == CATEGORICAL else NUMBER
