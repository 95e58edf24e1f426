"""A small shop database as a user would bring it: a SQLite file with its own keys (integer
ids from 1000, text SKUs), declared primary and foreign keys, free-form SQLite types, a
BLOB column, and a planted relational signal:

- `customer-churn` (forecast): each customer orders at a latent rate, so whether they order
  in the next 60 days follows from how often they ordered before;
- `orders-returned` (autocomplete, boolean): an order's return follows a latent defect rate
  of its product, which the product's other orders reveal;
- `orders-amount` (autocomplete, number): quantity times the product's price.

    write_shop_sqlite(path, seed=0)     # the file; SHOP_TASKS is a task file for it,
                                        # at VAL_TIMESTAMP and TEST_TIMESTAMP
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2021-01-01")
DAYS = 540
# The import's --val-timestamp and --test-timestamp: 60-day churn windows fit before each.
VAL_TIMESTAMP, TEST_TIMESTAMP = "2022-01-01", "2022-04-01"
STAMPS = {"val_timestamp": VAL_TIMESTAMP, "test_timestamp": TEST_TIMESTAMP}
SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, segment VARCHAR(12),
                        signed_up DATE);
CREATE TABLE products (sku TEXT PRIMARY KEY, price REAL, category TEXT, photo BLOB);
CREATE TABLE orders (order_id INTEGER PRIMARY KEY,
                     customer_id INTEGER REFERENCES customers(id),
                     sku TEXT REFERENCES products(sku), ordered_at TIMESTAMP,
                     quantity INT, amount NUMERIC(10, 2), returned BOOLEAN);
"""
CHURN_QUERY = """
SELECT t.timestamp, c.id, COUNT(o.order_id) = 0 AS churn
FROM timestamps t CROSS JOIN customers c
LEFT JOIN orders o ON o.customer_id = c.id AND o.ordered_at > t.timestamp
  AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}'
WHERE c.signed_up <= t.timestamp
GROUP BY t.timestamp, c.id
"""
SHOP_TASKS = {
    "name": "shop-tasks",
    "tasks": [
        {"dataset": "shop", "task": "customer-churn", "table": "customers", "target": "churn",
         "timedelta": "60 days", "query": CHURN_QUERY, "leakage": ["segment"]},
        {"dataset": "shop", "table": "orders", "target": "returned"},
        {"dataset": "shop", "table": "orders", "target": "amount", "leakage": ["quantity"]},
    ],
}  # fmt: skip


def write_shop_sqlite(path: Path, seed: int = 0, customers: int = 60, products: int = 12) -> Path:
    """Write the shop database (module docstring) as a SQLite file at `path`.

    Args:
        path: the file to create.
        seed: the random seed; the file's rows are a function of it.
        customers: how many customers.
        products: how many products.
    """
    rng = np.random.default_rng(seed)
    customer_ids = 1000 + np.arange(customers)
    rate = rng.choice([0.005, 0.15], customers)  # orders per day: rare or frequent buyers
    signed_up = START + pd.to_timedelta(rng.integers(0, 60, customers), "D")
    skus = [f"P-{i:03d}" for i in range(products)]
    price = rng.uniform(5, 100, products).round(2)
    defect = rng.choice([0.05, 0.8], products)
    rows = []
    for c in range(customers):
        count = rng.poisson(rate[c] * DAYS)
        days = np.sort(rng.uniform((signed_up[c] - START).days, DAYS, count))
        for day in days:
            p = int(rng.integers(products))
            quantity = int(rng.integers(1, 5))
            returned = bool(rng.random() < defect[p])
            rows.append((customer_ids[c], skus[p], START + pd.Timedelta(days=float(day)),
                         quantity, round(quantity * price[p], 2), returned))  # fmt: skip
    order = rng.permutation(len(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", [
            (int(customer_ids[c]), f"customer {c}", ["retail", "business"][c % 2],
             signed_up[c].date().isoformat()) for c in rng.permutation(customers)
        ])  # fmt: skip
        con.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", [
            (skus[p], float(price[p]), ["toys", "tools", "books"][p % 3], b"\x89PNG")
            for p in range(products)
        ])  # fmt: skip
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (50_000 + 7 * i, int(rows[j][0]), rows[j][1], rows[j][2].isoformat(sep=" "),
             rows[j][3], rows[j][4], int(rows[j][5])) for i, j in enumerate(order)
        ])  # fmt: skip
    con.close()
    return path


def main(argv: list[str] | None = None) -> int:
    """`python tests/byod_database.py --out DIR`: DIR/my-shop.sqlite and its task file
    DIR/my-shop-tasks.yaml, replaced when they exist (import it with --out …/my-shop, the
    dataset name the task file names, and the timestamps printed)."""
    import argparse

    import yaml

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder of the two files")
    parser.add_argument("--seed", type=int, default=0, help="the rows' seed (default: 0)")
    args = parser.parse_args(argv)
    out, name = Path(args.out), "my-shop"
    database = out / f"{name}.sqlite"
    database.unlink(missing_ok=True)  # sqlite3 would add to an existing file
    write_shop_sqlite(database, seed=args.seed, customers=120)
    tasks = {**SHOP_TASKS, "tasks": [{**t, "dataset": name} for t in SHOP_TASKS["tasks"]]}
    (out / f"{name}-tasks.yaml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    print(f"{database} (--val-timestamp {VAL_TIMESTAMP} --test-timestamp {TEST_TIMESTAMP})")
    print(out / f"{name}-tasks.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
