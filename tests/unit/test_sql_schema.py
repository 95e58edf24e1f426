"""SQL DDL → DatabaseSchema: dialect flavours, keys, types, time columns, and every error."""

from __future__ import annotations

import logging
import re

import pytest

from plurel_ray.errors import SchemaError
from plurel_ray.synth.schema import (
    CATEGORICAL,
    NUMERICAL,
    TIME_COL,
    ColumnSpec,
    DatabaseSchema,
    TableSpec,
)
from plurel_ray.synth.sql_schema import load_sql_schema, parse_sql_schema

SQLITE = """
-- SQLite flavour
CREATE TABLE "customers" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "name" TEXT NOT NULL,
    "age" INTEGER
);
CREATE TABLE products (
    product_id INTEGER NOT NULL,
    title VARCHAR(200),
    price REAL,
    PRIMARY KEY (product_id)
) WITHOUT ROWID;
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL,
    amount DECIMAL(10, 2),
    status TEXT CHECK (status IN ('new', 'paid', 'shipped')),
    created_at TIMESTAMP,
    note TEXT,
    FOREIGN KEY (product_id) REFERENCES products (product_id)
);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    order_id INTEGER REFERENCES orders,
    rating INTEGER CHECK (rating IN (1, 2, 3, 4, 5)),
    is_verified BOOLEAN
);
CREATE INDEX idx_orders_customer ON orders (customer_id);
INSERT INTO customers (name, age) VALUES ('a', 1);
"""
POSTGRES = """
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE public.customers (id SERIAL PRIMARY KEY, name VARCHAR(50), age SMALLINT);
CREATE TABLE products (product_id BIGSERIAL, title CHARACTER VARYING(200), price DOUBLE PRECISION,
  CONSTRAINT products_pk PRIMARY KEY (product_id));
CREATE TABLE orders (
  id SERIAL PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  product_id BIGINT NOT NULL REFERENCES products (product_id) ON DELETE CASCADE,
  amount NUMERIC(10, 2) NOT NULL DEFAULT 0,
  status order_status NOT NULL,
  created_at TIMESTAMPTZ DEFAULT now(),
  note TEXT,
  CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE "reviews" ("id" SERIAL PRIMARY KEY, "order_id" INTEGER REFERENCES "orders" ("id"),
  "rating" INTEGER, "is_verified" BOOL DEFAULT FALSE,
  CONSTRAINT rating_range CHECK ("rating" IN (1, 2, 3, 4, 5)));
CREATE INDEX ON orders (created_at);
COMMENT ON TABLE orders IS 'orders';
"""
MYSQL = """
CREATE TABLE `customers` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `name` VARCHAR(50) NOT NULL,
  `age` INT UNSIGNED,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE `products` (
  `product_id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `title` VARCHAR(200),
  `price` DOUBLE
) ENGINE=InnoDB;
CREATE TABLE `orders` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `customer_id` INT NOT NULL,
  `product_id` BIGINT NOT NULL,
  `amount` DECIMAL(10,2) NOT NULL,
  `status` ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  `created_at` DATETIME NOT NULL,
  `note` TEXT,
  PRIMARY KEY (`id`),
  KEY `idx_customer` (`customer_id`),
  CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
  CONSTRAINT `fk_product` FOREIGN KEY (`product_id`) REFERENCES `products` (`product_id`)
) ENGINE=InnoDB;
CREATE TABLE `reviews` (
  `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `order_id` INT,
  `rating` TINYINT CHECK (`rating` IN (1,2,3,4,5)),
  `is_verified` TINYINT(1) NOT NULL DEFAULT 0,
  FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`)
) ENGINE=InnoDB;
"""

STATUS = ("new", "paid", "shipped")
EXPECTED = DatabaseSchema(
    tables=(
        TableSpec(
            name="customers",
            pkey="id",
            fkeys=(),
            features=(
                ColumnSpec("name", CATEGORICAL, text=True),
                ColumnSpec("age", NUMERICAL),
            ),
            time_col=None,
            is_activity=False,
        ),
        TableSpec(
            name="products",
            pkey="product_id",
            fkeys=(),
            features=(
                ColumnSpec("title", CATEGORICAL, text=True),
                ColumnSpec("price", NUMERICAL),
            ),
            time_col=None,
            is_activity=False,
        ),
        TableSpec(
            name="orders",
            pkey="id",
            fkeys=(("customer_id", "customers"), ("product_id", "products")),
            features=(
                ColumnSpec("amount", NUMERICAL),
                ColumnSpec("status", CATEGORICAL, num_categories=3, labels=STATUS),
                ColumnSpec("note", CATEGORICAL, text=True),
            ),
            time_col="created_at",
            is_activity=False,
        ),
        TableSpec(
            name="reviews",
            pkey="id",
            fkeys=(("order_id", "orders"),),
            features=(
                ColumnSpec(
                    "rating", CATEGORICAL, num_categories=5, labels=("1", "2", "3", "4", "5")
                ),
                ColumnSpec("is_verified", CATEGORICAL, num_categories=2),
            ),
            time_col=TIME_COL,
            is_activity=True,
        ),
    )
)
FLAVOURS = {"sqlite": SQLITE, "postgres": POSTGRES, "mysql": MYSQL}


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_each_dialect_flavour_parses_to_the_same_schema(flavour):
    assert parse_sql_schema(FLAVOURS[flavour]) == EXPECTED


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_naming_the_dialect_gives_the_same_schema(flavour):
    assert parse_sql_schema(FLAVOURS[flavour], dialect=flavour) == EXPECTED


def test_mysql_index_clause_picks_mysql_over_dialects_that_misread_it():
    # sqlglot's default dialect reads `KEY idx (v)` as a column KEY of type idx(v).
    sql = "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY idx (v));"
    assert parse_sql_schema(sql).table("t").features == (ColumnSpec("v", NUMERICAL),)


def test_load_sql_schema_reads_a_file(tmp_path):
    path = tmp_path / "shop.sql"
    path.write_text(MYSQL, encoding="utf-8")
    assert load_sql_schema(path) == EXPECTED
    assert load_sql_schema(str(path), dialect="mysql") == EXPECTED


def test_dialect_trials_leave_sqlglot_logging_quiet_and_restored(caplog):
    level = logging.getLogger("sqlglot").level
    with caplog.at_level(logging.WARNING, logger="sqlglot"):
        parse_sql_schema(MYSQL)
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]
    assert logging.getLogger("sqlglot").level == level


def test_tables_come_parents_first_and_otherwise_in_ddl_order():
    sql = """
    CREATE TABLE c (id INT PRIMARY KEY, a_id INT REFERENCES a(id), b_id INT REFERENCES b(id));
    CREATE TABLE z (id INT PRIMARY KEY, x INT);
    CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a);
    CREATE TABLE a (id INT PRIMARY KEY);
    CREATE TABLE y (x REAL);
    """
    schema = parse_sql_schema(sql)
    assert [t.name for t in schema.tables] == ["z", "a", "b", "c", "y"]
    assert schema.children("a") == ["b", "c"]
    assert [t.name for t in schema.tables if t.is_activity] == ["z", "c", "y"]


def test_inline_and_table_level_foreign_keys_keep_column_order():
    sql = """
    CREATE TABLE p (id INT PRIMARY KEY);
    CREATE TABLE q (qid INT PRIMARY KEY);
    CREATE TABLE c (
        id INT PRIMARY KEY,
        q_ref INT,
        p_ref INT REFERENCES p(id),
        v FLOAT,
        CONSTRAINT fk_q FOREIGN KEY (q_ref) REFERENCES q
    );
    """
    c = parse_sql_schema(sql).table("c")
    assert c.fkeys == (("q_ref", "q"), ("p_ref", "p"))
    assert c.features == (ColumnSpec("v", NUMERICAL),)


def test_same_foreign_key_declared_inline_and_as_constraint_counts_once():
    sql = """
    CREATE TABLE p (id INT PRIMARY KEY);
    CREATE TABLE c (id INT PRIMARY KEY, p_id INT REFERENCES p(id), FOREIGN KEY (p_id) REFERENCES p);
    """
    assert parse_sql_schema(sql).table("c").fkeys == (("p_id", "p"),)


def test_names_resolve_case_insensitively_and_keep_ddl_spelling():
    sql = """
    CREATE TABLE "Users" ("UserId" INTEGER PRIMARY KEY, "Score" REAL);
    CREATE TABLE Posts (Id INTEGER PRIMARY KEY, Author INTEGER REFERENCES users(userid));
    """
    schema = parse_sql_schema(sql)
    assert [t.name for t in schema.tables] == ["Users", "Posts"]
    assert schema.table("Users").pkey == "UserId"
    assert schema.table("Posts").fkeys == (("Author", "Users"),)


def test_unreferenced_table_may_lack_a_primary_key():
    spec = parse_sql_schema("CREATE TABLE log (x INT, msg TEXT);").table("log")
    assert spec.pkey is None
    assert spec.is_activity and spec.time_col == TIME_COL


def test_entity_table_gets_a_time_column_only_from_a_date_column():
    sql = """
    CREATE TABLE a (id INT PRIMARY KEY, born DATE, x INT);
    CREATE TABLE b (id INT PRIMARY KEY, x INT);
    CREATE TABLE c (id INT PRIMARY KEY, a_id INT REFERENCES a, b_id INT REFERENCES b,
                    at TIME);
    """
    schema = parse_sql_schema(sql)
    assert schema.table("a").time_col == "born"
    assert schema.table("a").features == (ColumnSpec("x", NUMERICAL),)
    assert schema.table("b").time_col is None
    assert schema.table("c").time_col == "at"


def test_activity_table_may_name_its_date_column_date():
    spec = parse_sql_schema("CREATE TABLE t (id INT PRIMARY KEY, date DATETIME);").table("t")
    assert spec.time_col == "date"
    assert spec.features == ()


@pytest.mark.parametrize(
    ("sql_type", "expected"),
    [
        ("BOOLEAN", ColumnSpec("v", CATEGORICAL, num_categories=2)),
        ("BOOL", ColumnSpec("v", CATEGORICAL, num_categories=2)),
        ("TINYINT(1)", ColumnSpec("v", CATEGORICAL, num_categories=2)),
        ("TINYINT", ColumnSpec("v", NUMERICAL)),
        ("SMALLINT", ColumnSpec("v", NUMERICAL)),
        ("BIGINT", ColumnSpec("v", NUMERICAL)),
        ("DOUBLE PRECISION", ColumnSpec("v", NUMERICAL)),
        ("NUMERIC(8, 3)", ColumnSpec("v", NUMERICAL)),
        ("SERIAL", ColumnSpec("v", NUMERICAL)),
        ("CHAR(3)", ColumnSpec("v", CATEGORICAL, text=True)),
        ("NVARCHAR(20)", ColumnSpec("v", CATEGORICAL, text=True)),
        ("CLOB", ColumnSpec("v", CATEGORICAL, text=True)),
        ("STRING", ColumnSpec("v", CATEGORICAL, text=True)),
    ],
)
def test_column_types_map_to_feature_specs(sql_type, expected):
    spec = parse_sql_schema(f"CREATE TABLE t (id INT PRIMARY KEY, v {sql_type});").table("t")
    assert spec.features == (expected,)


def test_check_in_list_makes_string_labels_and_overrides_the_type():
    sql = """
    CREATE TABLE t (
        id INT PRIMARY KEY,
        level INT CONSTRAINT lv CHECK ((level IN (-1, 0, 1))),
        tag TEXT,
        amount REAL CHECK (amount > 0),
        CHECK (tag IN ('x', 'y', 'x'))
    );
    """
    assert parse_sql_schema(sql).table("t").features == (
        ColumnSpec("level", CATEGORICAL, num_categories=3, labels=("-1", "0", "1")),
        ColumnSpec("tag", CATEGORICAL, num_categories=2, labels=("x", "y")),
        ColumnSpec("amount", NUMERICAL),
    )


def test_postgres_create_type_enum_labels_a_column():
    sql = """
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE person (id SERIAL PRIMARY KEY, current_mood mood NOT NULL);
    """
    for dialect in (None, "postgres"):
        spec = parse_sql_schema(sql, dialect=dialect).table("person")
        assert spec.features == (
            ColumnSpec(
                "current_mood", CATEGORICAL, num_categories=3, labels=("sad", "ok", "happy")
            ),
        )


def test_statements_other_than_create_table_are_ignored():
    sql = """
    -- a comment
    CREATE TABLE t (id INT PRIMARY KEY, v INT);
    CREATE INDEX t_v ON t (v);
    INSERT INTO t VALUES (1, 2);
    CREATE VIEW w AS SELECT * FROM t;
    DROP TABLE IF EXISTS old;
    """
    assert [t.name for t in parse_sql_schema(sql).tables] == ["t"]


P = "CREATE TABLE p (id INT PRIMARY KEY);\n"


@pytest.mark.parametrize(
    ("sql", "fragments"),
    [
        pytest.param(
            "CREATE TABLE t (a INT, b INT, v INT, PRIMARY KEY (a, b));",
            ["'t'", "composite primary key", "a", "b"],
            id="composite-pk",
        ),
        pytest.param(
            "CREATE TABLE t (a INT PRIMARY KEY, b INT PRIMARY KEY);",
            ["'t'", "composite primary key", "a", "b"],
            id="two-inline-pks",
        ),
        pytest.param(
            "CREATE TABLE p (a INT, b INT, PRIMARY KEY (a, b));\n"
            "CREATE TABLE c (id INT PRIMARY KEY, x INT, y INT, "
            "FOREIGN KEY (x, y) REFERENCES p (a, b));",
            ["'p'", "composite primary key"],
            id="composite-fk-to-composite-pk",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, x INT, y INT, "
            "FOREIGN KEY (x, y) REFERENCES p (id, id));",
            ["'c'", "composite foreign key", "x", "y"],
            id="composite-fk",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, x INT REFERENCES p (id, id));",
            ["'c'", "'x'", "composite key"],
            id="inline-composite-fk",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, p_id INT REFERENCES nowhere(id));",
            ["c.p_id", "unknown table", "'nowhere'"],
            id="fk-unknown-table",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, FOREIGN KEY (p_id) REFERENCES p);",
            ["'c'", "unknown column", "'p_id'"],
            id="fk-from-unknown-column",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, p_id INT REFERENCES p(uid));",
            ["'p'", "c.p_id", "unknown column", "'uid'"],
            id="fk-to-unknown-column",
        ),
        pytest.param(
            "CREATE TABLE p (id INT PRIMARY KEY, code INT);\n"
            "CREATE TABLE c (id INT PRIMARY KEY, p_code INT REFERENCES p(code));",
            ["c.p_code", "p.code", "not the primary key", "id"],
            id="fk-to-non-pk-column",
        ),
        pytest.param(
            "CREATE TABLE a (id INT PRIMARY KEY, b_id INT REFERENCES b);\n"
            "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a);",
            ["cycle", "a → b → a"],
            id="cycle",
        ),
        pytest.param(
            "CREATE TABLE emp (id INT PRIMARY KEY, boss_id INT REFERENCES emp(id));",
            ["'emp'", "itself", "emp.boss_id"],
            id="self-reference",
        ),
        pytest.param(
            P + "CREATE TABLE c (id INT PRIMARY KEY, p_id INT REFERENCES p, q_id INT);\n"
            "CREATE TABLE d (id INT PRIMARY KEY REFERENCES p);",
            ["d.id", "both the primary key and a foreign key"],
            id="pk-is-fk",
        ),
        pytest.param(
            "CREATE TABLE q (id INT PRIMARY KEY);\n"
            + P
            + "CREATE TABLE c (id INT PRIMARY KEY, x INT REFERENCES p, "
            "FOREIGN KEY (x) REFERENCES q);",
            ["c.x", "'p'", "'q'"],
            id="one-column-two-parents",
        ),
        pytest.param(
            P + 'CREATE TABLE "P" (id INT PRIMARY KEY);',
            ["'P'", "created twice"],
            id="duplicate-table",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT, V REAL);",
            ["'t'", "'V'", "twice"],
            id="duplicate-column",
        ),
        pytest.param("-- nothing here\n", ["no CREATE TABLE statement in <sql>"], id="empty"),
        pytest.param(
            "CREATE INDEX i ON t (x); INSERT INTO t VALUES (1);",
            ["no CREATE TABLE statement in <sql>"],
            id="no-create-table",
        ),
        pytest.param("CREATE TABLE (", ["<sql>", "cannot parse SQL"], id="unparseable"),
        pytest.param(
            "CREATE TABLE t (a 'unterminated", ["<sql>", "cannot parse SQL"], id="untokenizable"
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, doc JSON);",
            ["'t'", "'doc'", "JSON", "numeric", "drop the column"],
            id="json-type",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, img BLOB);",
            ["'t'", "'img'", "cannot produce"],
            id="blob-type",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, tags INT[]);",
            ["'t'", "'tags'", "cannot produce"],
            id="array-type",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, m mood);",
            ["'t'", "'m'", "mood"],
            id="unknown-user-type",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, v);",
            ["'t'", "'v'", "no type"],
            id="untyped-column",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, created DATE, updated TIMESTAMP);",
            ["'t'", "'created'", "'updated'", "one time column"],
            id="two-time-columns",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, date INT);",
            ["'t'", "'date'", "rename it"],
            id="activity-date-column-not-a-date",
        ),
        pytest.param(
            "CREATE TABLE p (x INT);\nCREATE TABLE c (id INT PRIMARY KEY, p_id INT REFERENCES p);",
            ["table 'p' is referenced by c.p_id but has no primary key"],
            id="referenced-table-without-pk",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, s TEXT CHECK (s IN ('only')));",
            ["'t'", "'s'", "at least 2"],
            id="check-with-one-label",
        ),
        pytest.param(
            "CREATE TABLE t (id INT PRIMARY KEY, s TEXT, CHECK (z IN ('a', 'b')));",
            ["'t'", "CHECK", "unknown column", "'z'"],
            id="check-on-unknown-column",
        ),
        pytest.param(
            "CREATE TABLE t AS SELECT 1 AS x;",
            ["'t'", "no column list"],
            id="create-table-as-select",
        ),
    ],
)
def test_schema_errors_name_what_to_fix(sql, fragments):
    with pytest.raises(SchemaError) as info:
        parse_sql_schema(sql)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_mysql_enum_with_one_label_is_rejected():
    with pytest.raises(SchemaError, match=r"'t'.*'s'.*at least 2"):
        parse_sql_schema("CREATE TABLE `t` (`id` INT PRIMARY KEY, `s` ENUM('a'));", "mysql")


def test_unknown_dialect_is_a_schema_error():
    with pytest.raises(SchemaError, match="no_such_dialect"):
        parse_sql_schema(SQLITE, dialect="no_such_dialect")


def test_named_dialect_is_the_only_one_tried():
    # sqlite cannot read MySQL's ENUM: with the dialect pinned no other dialect rescues it.
    with pytest.raises(SchemaError, match=r"status|orders"):
        parse_sql_schema(MYSQL, dialect="sqlite")


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "bad.sql"
    path.write_text("CREATE TABLE t (id INT PRIMARY KEY, doc JSON);", encoding="utf-8")
    with pytest.raises(SchemaError, match=re.escape(str(path))):
        load_sql_schema(path)


def test_missing_file_is_a_schema_error_naming_the_path(tmp_path):
    path = tmp_path / "missing.sql"
    with pytest.raises(SchemaError, match=re.escape(str(path))):
        load_sql_schema(path)
