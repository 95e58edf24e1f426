"""The tables of the real-shaped test databases (tests/realshaped.py writes them).

Each builder draws one database from a generator: its tables as pandas frames, their
keys and time columns, and its tasks with the SQL or leakage columns that define them.
Keys follow RelBench's contract (primary keys 0..n-1 in row order); what planted signal
each label carries is said in the task descriptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from relbench.manifest import TableSpec

START, END = pd.Timestamp("2020-01-01"), pd.Timestamp("2022-12-31")
VAL_TIMESTAMP, TEST_TIMESTAMP = pd.Timestamp("2022-03-01"), pd.Timestamp("2022-07-01")
SPLITS = ("train", "val", "test")
_DAY = np.timedelta64(1, "D")


@dataclass
class Forecast:
    """An entity task whose labels `sql` computes from the database at each timestamp."""

    name: str
    entity_table: str
    entity_col: str
    target_col: str
    timedelta: str
    sql: str
    description: str


@dataclass
class Autocomplete:
    """A column of an event table to fill in, and the columns that give it away."""

    table: str
    column: str
    task_type: str
    leakage: list[str]
    description: str

    @property
    def name(self) -> str:
        return f"{self.table}-{self.column}"


@dataclass
class RealShaped:
    """One database: its tables, their keys and time columns, and its tasks."""

    name: str
    description: str
    tables: dict[str, pd.DataFrame]
    specs: dict[str, TableSpec]
    forecasts: list[Forecast] = field(default_factory=list)
    autocompletes: list[Autocomplete] = field(default_factory=list)


def _times(rng: np.random.Generator, low: pd.Timestamp, high: pd.Timestamp, n: int) -> np.ndarray:
    """`n` times drawn uniformly in [low, high], to the minute."""
    span = int((high - low) / pd.Timedelta(minutes=1))
    minutes = rng.integers(0, max(span, 1), n)
    return (low + pd.to_timedelta(minutes, unit="min")).to_numpy()


def _events(
    rng: np.random.Generator, starts: np.ndarray, rates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson process per entity from its start to END at `rates` events per day:
    (entity index, time) of every event, in time order."""
    days = (END.to_datetime64() - starts) / _DAY
    counts = rng.poisson(rates * np.maximum(days, 0))
    owner = np.repeat(np.arange(len(starts)), counts)
    offsets = rng.random(len(owner)) * days[owner]
    times = starts[owner] + (offsets * 24 * 60).astype("int64") * np.timedelta64(1, "m")
    order = np.argsort(times, kind="stable")
    return owner[order], times[order]


def _handles(rng: np.random.Generator, fmt: str, n: int, high: int) -> list[str]:
    """`n` distinct identifiers as people read them (`fmt` of numbers below `high`)."""
    return [fmt.format(i) for i in rng.choice(high, n, replace=False)]


def shop(rng: np.random.Generator) -> RealShaped:
    n_cust, n_prod = 300, 120
    regular = rng.random(n_cust) < 0.4  # the latent: regulars order every ~10 days
    signup = _times(rng, START, VAL_TIMESTAMP, n_cust)
    customers = pd.DataFrame({
        "customer_id": np.arange(n_cust),
        "account": _handles(rng, "C{:05d}", n_cust, 100_000),
        "signup_at": signup,
        "country": rng.choice(["Norway", "Peru", "Japan", "Kenya", "Canada"], n_cust),
        "segment": np.where(regular ^ (rng.random(n_cust) < 0.3), "member", "guest"),
        "birth_year": pd.array(np.where(rng.random(n_cust) < 0.15, None,
                                        rng.integers(1950, 2004, n_cust)), "Int64"),
    })  # fmt: skip
    category = rng.choice(["books", "garden", "kitchen", "electronics", "toys"], n_prod)
    faulty = rng.random(n_prod) < np.where(category == "electronics", 0.4, 0.1)
    adjective = rng.choice(["small", "classic", "deluxe", "eco", "smart"], n_prod)
    products = pd.DataFrame({
        "product_id": np.arange(n_prod),
        "sku": _handles(rng, "SKU-{:06d}", n_prod, 1_000_000),
        "name": [f"{a} {c} item" for a, c in zip(adjective, category, strict=True)],
        "category": category,
        "price": np.round(rng.lognormal(3.0, 0.8, n_prod), 2),
        "added_at": _times(rng, pd.Timestamp("2019-01-01"), START, n_prod),
    })  # fmt: skip
    who, when = _events(rng, signup, np.where(regular, 1 / 10, 1 / 150))
    n = len(who)
    item = rng.choice(n_prod, n, p=rng.dirichlet(np.full(n_prod, 2.0)))
    quantity = rng.integers(1, 6, n)
    discount = np.where(customers["segment"].to_numpy()[who] == "member", 0.9, 1.0)
    amount = np.round(quantity * products["price"].to_numpy()[item] * discount
                      * rng.normal(1.0, 0.03, n), 2)  # fmt: skip
    returned = rng.random(n) < np.where(faulty[item], 0.6, 0.05)
    orders = pd.DataFrame({
        "order_id": np.arange(n),
        "customer_id": who,
        "product_id": item,
        "ordered_at": when,
        "channel": rng.choice(["web", "app", "store"], n),
        "quantity": quantity,
        "amount": amount,
        "amount_with_tax": np.round(amount * 1.25, 2),
        "returned": returned,
        "refund_amount": np.where(returned, amount, np.nan),
    })  # fmt: skip
    churn = """
        SELECT t.timestamp, c.customer_id,
               NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
                           AND o.ordered_at > t.timestamp
                           AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}') AS churn
        FROM timestamps t, customers c
        WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
                      AND o.ordered_at <= t.timestamp)
    """
    return RealShaped(
        "shop", "An online shop: customers order products; some products are faulty.",
        {"customers": customers, "products": products, "orders": orders},
        {"customers": TableSpec("customer_id", "signup_at"),
         "products": TableSpec("product_id", "added_at"),
         "orders": TableSpec("order_id", "ordered_at",
                             {"customer_id": "customers", "product_id": "products"})},
        [Forecast("customer-churn", "customers", "customer_id", "churn", "60 days", churn,
                  "Will a customer who has ordered place no order in the next 60 days?")],
        [Autocomplete("orders", "returned", "binary_classification", ["refund_amount"],
                      "Is the order returned? Faulty products (seen in their other "
                      "orders) are returned far more often."),
         Autocomplete("orders", "amount", "regression", ["amount_with_tax"],
                      "The order's amount: quantity times the product's price, less a "
                      "member discount.")],
    )  # fmt: skip


def clinic(rng: np.random.Generator) -> RealShaped:
    n_pat, n_doc = 250, 18
    birth = rng.integers(1935, 2015, n_pat)
    frailty = np.clip(rng.beta(1.2, 4.0, n_pat) + (2015 - birth) / 400, 0, 1)
    registered = _times(rng, START, VAL_TIMESTAMP, n_pat)
    patients = pd.DataFrame({
        "patient_id": np.arange(n_pat),
        "record_number": _handles(rng, "P-{:06d}", n_pat, 1_000_000),
        "registered_at": registered,
        "sex": rng.choice(["female", "male", "unknown"], n_pat, p=[0.5, 0.48, 0.02]),
        "birth_year": birth,
        "insurance": rng.choice(["public", "private", "none"], n_pat),
    })  # fmt: skip
    specialties = ["cardiology", "dermatology", "general practice", "orthopedics", "pediatrics"]
    base_fee = {"cardiology": 180.0, "dermatology": 90.0, "general practice": 50.0,
                "orthopedics": 140.0, "pediatrics": 70.0}  # fmt: skip
    specialty = rng.choice(specialties, n_doc)
    doctors = pd.DataFrame({  # a dimension table without a time column
        "doctor_id": np.arange(n_doc, dtype="int32"),
        "name": [f"Dr. {s}" for s in rng.choice(["Ito", "Okafor", "Silva", "Berg", "Khan",
                                                 "Novak", "Moreau", "Reyes"], n_doc)],
        "specialty": specialty,
    })  # fmt: skip
    who, when = _events(rng, registered, 1 / 200 + frailty / 12)
    n = len(who)
    doc = rng.integers(0, n_doc, n)
    emergency = rng.random(n) < 0.05 + 0.5 * frailty[who]
    reason = np.where(
        emergency, "emergency", rng.choice(["checkup", "follow-up", "vaccination", "pain"], n)
    )
    duration = rng.integers(10, 60, n)
    fee = np.array([base_fee[s] for s in specialty])[doc]
    cost = np.round(fee + 2.5 * duration + rng.normal(0, 5, n), 2)
    followup = rng.random(n) < np.clip(
        0.1 + 0.8 * frailty[who] + 0.2 * (specialty[doc] == "cardiology"), 0, 1
    )
    visits = pd.DataFrame({
        "visit_id": np.arange(n),
        "patient_id": who,
        "doctor_id": doc,
        "visited_at": when,
        "reason": reason,
        "duration_min": duration,
        "cost": cost,
        "billed_amount": cost,
        "followup_needed": followup,
        "followup_date": pd.Series(np.where(followup, when + 14 * _DAY, np.datetime64("NaT")))
                           .astype("datetime64[ms]"),
    })  # fmt: skip
    emergency_sql = """
        SELECT t.timestamp, p.patient_id,
               EXISTS (SELECT 1 FROM visits v WHERE v.patient_id = p.patient_id
                       AND v.reason = 'emergency' AND v.visited_at > t.timestamp
                       AND v.visited_at <= t.timestamp + INTERVAL '{timedelta}') AS emergency
        FROM timestamps t, patients p
        WHERE p.registered_at <= t.timestamp
    """
    return RealShaped(
        "clinic", "A clinic: patients visit doctors; frail patients visit often.",
        {"patients": patients, "doctors": doctors, "visits": visits},
        {"patients": TableSpec("patient_id", "registered_at"),
         "doctors": TableSpec("doctor_id", None),
         "visits": TableSpec("visit_id", "visited_at",
                             {"patient_id": "patients", "doctor_id": "doctors"})},
        [Forecast("patient-emergency", "patients", "patient_id", "emergency", "90 days",
                  emergency_sql, "Will a patient have an emergency visit in the next 90 days?")],
        [Autocomplete("visits", "followup_needed", "binary_classification", ["followup_date"],
                      "Does the visit need a follow-up? Frail patients (seen in their "
                      "other visits) and cardiology need them more."),
         Autocomplete("visits", "cost", "regression", ["billed_amount"],
                      "The visit's cost: the doctor's specialty fee plus its duration.")],
    )  # fmt: skip


def forum(rng: np.random.Generator) -> RealShaped:
    n_users = 200
    expert = rng.random(n_users) < 0.3
    activity = rng.choice([1 / 5, 1 / 40, 1 / 300], n_users, p=[0.25, 0.35, 0.4])
    joined = _times(rng, START, VAL_TIMESTAMP, n_users)
    words = ["rust", "python", "sql", "gpu", "cache", "async", "graphs", "parsing"]
    users = pd.DataFrame({
        "user_id": np.arange(n_users),
        "username": [f"{w}_{i}" for w, i in zip(rng.choice(words, n_users),
                                                 rng.choice(10_000, n_users), strict=True)],
        "joined_at": joined,
        "bio": np.where(rng.random(n_users) < 0.3, None,
                        rng.choice(["hobbyist", "student", "engineer", "researcher"], n_users)),
    })  # fmt: skip
    author, created = _events(rng, joined, activity / 3)
    tags = np.array(["help", "showcase", "discussion", "bug"])
    tag_pull = {"help": 1.0, "showcase": 4.0, "discussion": 2.0, "bug": 0.5}
    tag = rng.choice(tags, len(author))
    posts = pd.DataFrame({
        "post_id": np.arange(len(author)),
        "owner": author,
        "created_at": created,
        "title": [f"{t}: {w}" for t, w in zip(tag, rng.choice(words, len(author)), strict=True)],
        "tag": tag,
        "body_words": rng.integers(20, 800, len(author)),
    })  # fmt: skip
    commenter, comment_time = _events(rng, joined, activity)
    # Each comment answers a post written before it (the latest few days' posts).
    post_times = posts["created_at"].to_numpy()
    newest = np.searchsorted(post_times, comment_time, side="left")
    keep = newest > 0
    commenter, comment_time, newest = commenter[keep], comment_time[keep], newest[keep]
    post = np.maximum(newest - 1 - rng.integers(0, 10, len(newest)), 0)
    n = len(commenter)
    pull = np.array([tag_pull[t] for t in posts["tag"].to_numpy()[post]])
    upvotes = rng.poisson(pull * np.where(expert[commenter], 6.0, 1.0))
    accepted = rng.random(n) < np.where(expert[commenter], 0.55, 0.08)
    comments = pd.DataFrame({
        "comment_id": np.arange(n),
        "post_id": post,
        "commenter": commenter,
        "created_at": comment_time,
        "body": rng.choice(["thanks!", "try a profiler", "works for me", "see the docs",
                            "same issue here", "use a cache"], n),
        "upvotes": upvotes,
        "score": upvotes - rng.poisson(0.3, n),
        "accepted": accepted,
        "accepted_at": np.where(accepted, comment_time + _DAY, np.datetime64("NaT")),
    })  # fmt: skip
    active = """
        SELECT t.timestamp, u.user_id,
               EXISTS (SELECT 1 FROM comments c WHERE c.commenter = u.user_id
                       AND c.created_at > t.timestamp
                       AND c.created_at <= t.timestamp + INTERVAL '{timedelta}')
            OR EXISTS (SELECT 1 FROM posts p WHERE p.owner = u.user_id
                       AND p.created_at > t.timestamp
                       AND p.created_at <= t.timestamp + INTERVAL '{timedelta}') AS active
        FROM timestamps t, users u
        WHERE u.joined_at <= t.timestamp
    """
    return RealShaped(
        "forum", "A Q&A forum: users post questions and comment; experts get upvoted.",
        {"users": users, "posts": posts, "comments": comments},
        {"users": TableSpec("user_id", "joined_at"),
         "posts": TableSpec("post_id", "created_at", {"owner": "users"}),
         "comments": TableSpec("comment_id", "created_at",
                               {"post_id": "posts", "commenter": "users"})},
        [Forecast("user-active", "users", "user_id", "active", "30 days", active,
                  "Will a user post or comment in the next 30 days?")],
        [Autocomplete("comments", "accepted", "binary_classification", ["accepted_at"],
                      "Is the comment the accepted answer? Experts' comments (seen in their "
                      "other comments) are accepted far more often."),
         Autocomplete("comments", "upvotes", "regression", ["score"],
                      "The comment's upvotes: the post's tag and the commenter's expertise.")],
    )  # fmt: skip


BUILDERS: dict[str, Callable[[np.random.Generator], RealShaped]] = {
    "shop": shop, "clinic": clinic, "forum": forum,
}  # fmt: skip
