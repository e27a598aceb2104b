"""User-product interaction strength: one definition for the recommender's training and for
the recommendation service, so a user's vector at serving time is weighed exactly as the
model learnt from.

Implicit feedback has no ratings, only behaviour, and each step deeper into the funnel is
rarer and says more about what the user wants. In the generated shop (and in most real
ones) about one product view in twelve leads to a cart add and about one cart in six to an
order, so the weights grow with the step, but far less than the step's rarity: a purchase
is strong evidence of taste, yet a user's many views are what tells their tastes apart,
and a purchase says as much about a need met as about a wish to see more alike.

- a product view weighs 1: cheap and noisy, much of it browsing what is on show;
- a cart add weighs 4: a deliberate choice among the products viewed;
- an order line weighs 10, whatever its quantity (three of a thing is one preference).

A cart removal weighs nothing: the add before it already recorded the interest, and a
removal is as often a deferral or a quantity fix as a rejection; a negative weight would
tell ALS the user dislikes the product, which the events do not say. Weights add up per
(user, product), so a product viewed twice, added and bought weighs 1 + 1 + 4 + 10 = 16.

These are a prior from the funnel, not a fit: the generated shop cannot tell weightings
apart (its carts and orders are drawn from the products viewed, so every weighting from
1/1/1 to 1/10/30 scored within 1% of the same precision@10); real traffic, where a
purchase means more than a glance, is where to tune them.

Both paths run the same two pure functions: `interaction_events` keeps the events that
count (product views, cart adds, order lines) from rows of the three topics, whether a
window of silver or one user's latest events, and `weigh_events` sums their weights per
(user, product). `interactions` is the batch path over silver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import (
    BRONZE_CART_EVENTS,
    BRONZE_CLICKSTREAM,
    BRONZE_PURCHASES,
    BRONZE_SEARCH,
    CART_EVENTS,
    CLICKSTREAM,
    PURCHASES,
    SEARCH,
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    TableSpec,
    TopicSpec,
)
from lakehouse.online.session_keys import RECENT_PURCHASES, SessionFeatures
from lakehouse.schemas import TIMESTAMP
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days, run_sql

WEIGHTS: dict[str, float] = {"product_view": 1.0, "cart_add": 4.0, "purchase": 10.0}
"""The weight of each kind of interaction (see the module docstring for why)."""

TOPIC_COLUMNS: dict[TableSpec, list[str]] = {
    SILVER_CLICKSTREAM: ["user_id", "product_id", "event_type", "event_time"],
    SILVER_CART_EVENTS: ["user_id", "product_id", "action", "event_time"],
    SILVER_PURCHASES: ["user_id", "product_id", "event_time"],
}
"""The columns of each topic's events that interactions are built from."""

INTERACTION_EVENTS = pa.schema(
    [
        pa.field("user_id", pa.int64()),
        pa.field("product_id", pa.int64()),
        pa.field("interaction", pa.string()),
        pa.field("event_time", TIMESTAMP),
    ]
)
"""One event that counts: who, which product, what kind (a key of `WEIGHTS`), when."""

INTERACTIONS = pa.schema(
    [
        pa.field("user_id", pa.int64()),
        pa.field("product_id", pa.int64()),
        pa.field("weight", pa.float64()),
        pa.field("last_at", TIMESTAMP),
    ]
)
"""Per (user, product): the summed weight of its events and when the latest happened."""

_EVENTS_SQL = """
SELECT user_id, product_id, 'product_view' AS interaction, event_time FROM clickstream
WHERE event_type = 'product_view' AND product_id IS NOT NULL
UNION ALL
SELECT user_id, product_id, 'cart_add', event_time FROM cart_events WHERE action = 'add'
UNION ALL
SELECT user_id, product_id, 'purchase', event_time FROM purchases
"""

_WEIGH_SQL = """
SELECT e.user_id, e.product_id, sum(w.weight) AS weight, max(e.event_time) AS last_at
FROM events AS e JOIN weights AS w USING (interaction)
GROUP BY e.user_id, e.product_id
ORDER BY e.user_id, e.product_id
"""


def interaction_events(
    clickstream: pa.Table, cart_events: pa.Table, purchases: pa.Table
) -> pa.Table:
    """The events that count (`INTERACTION_EVENTS`) among rows of the three topics, each
    holding at least its `TOPIC_COLUMNS`: product views, cart adds and order lines."""
    return run_sql(
        _EVENTS_SQL,
        INTERACTION_EVENTS,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )


def weigh_events(events: pa.Table) -> pa.Table:
    """Sum `WEIGHTS` per (user, product) over `INTERACTION_EVENTS` rows (`INTERACTIONS`,
    sorted by user and product); an interaction kind without a weight counts for nothing."""
    weights = pa.table({"interaction": list(WEIGHTS), "weight": list(WEIGHTS.values())})
    return run_sql(_WEIGH_SQL, INTERACTIONS, events=events, weights=weights)


def interactions(settings: Settings, first: date, last: date) -> pa.Table:
    """Every user's weighted interactions with each product over the silver days
    `first`..`last` (inclusive), reading only the columns they need."""
    return weigh_events(interaction_events(*silver_events(settings, first, last)))


def silver_events(settings: Settings, first: date, last: date) -> list[pa.Table]:
    """The silver clickstream, cart events and purchases of `first`..`last`, only the
    `TOPIC_COLUMNS` (in that order: the arguments of `interaction_events`)."""
    return [
        read_days(settings, spec, columns, first, last) for spec, columns in TOPIC_COLUMNS.items()
    ]


# --- session features: the near-real-time side (`lakehouse stream session-features`) -------
#
# One definition of what a shopper's session features mean, run by the stream processor on
# each micro-batch and by `session_features` over a window of landed events. The Redis
# layout they are kept in is `lakehouse.online.session_keys`.

SESSION_EVENTS = pa.schema(
    [
        pa.field("user_id", pa.int64()),
        pa.field("product_id", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("session_id", pa.string()),
        pa.field("event_ms", pa.int64()),
        pa.field("weight", pa.float64()),
        pa.field("is_purchase", pa.bool_()),
    ]
)
"""Every event of the four shop topics, normalised: who, when (epoch ms), in which session,
the price looked at, carted or paid, and, for the events that count (`WEIGHTS`), the
product and category interacted with and the weight (0 and null product otherwise)."""

SESSION_TOPICS: dict[TopicSpec, str] = {
    CLICKSTREAM: "clickstream",
    CART_EVENTS: "cart_events",
    SEARCH: "search",
    PURCHASES: "purchases",
}
"""The topics a session is made of (keys; the values are only labels for errors)."""

_US_PER_MS = 1000


def session_events(tables: Mapping[TopicSpec, pa.Table], keep: Sequence[str] = ()) -> pa.Table:
    """`SESSION_EVENTS` rows (plus the `keep` columns, which every input must hold) from
    decoded rows of the four `SESSION_TOPICS`, each with at least its topic's columns used
    here; a topic may be missing from `tables`."""
    parts: list[pa.Table] = []
    for topic, table in tables.items():
        if table.num_rows == 0:
            continue
        n = table.num_rows
        if topic is CLICKSTREAM:
            counts = pc.and_(
                pc.equal(table["event_type"], "product_view"), pc.is_valid(table["product_id"])
            )
            weight = pc.if_else(counts, WEIGHTS["product_view"], 0.0)
            price, purchase = table["price"], pa.repeat(False, n)
        elif topic is CART_EVENTS:
            counts = pc.equal(table["action"], "add")
            weight = pc.if_else(counts, WEIGHTS["cart_add"], 0.0)
            price, purchase = table["price"], pa.repeat(False, n)
        elif topic is PURCHASES:
            counts = pa.repeat(True, n)
            weight = pa.repeat(WEIGHTS["purchase"], n)
            price, purchase = table["unit_price"], pa.repeat(True, n)
        elif topic is SEARCH:
            counts = pa.repeat(False, n)
            weight = pa.repeat(0.0, n)
            price, purchase = pa.nulls(n, pa.float64()), pa.repeat(False, n)
        else:
            raise ValueError(f"{topic.name} is not a session topic")
        counts = pc.fill_null(counts, False)
        product = (
            pc.if_else(counts, table["product_id"], None)
            if "product_id" in table.column_names
            else pa.nulls(n, pa.int64())
        )
        category = (
            pc.if_else(counts, table["category"], None)
            if "category" in table.column_names
            else pa.nulls(n, pa.string())
        )
        millis = pc.divide(table["event_time"].cast(pa.int64()), _US_PER_MS)
        columns = {
            "user_id": table["user_id"],
            "product_id": product,
            "category": category,
            "price": price,
            "session_id": table["session_id"],
            "event_ms": millis,
            "weight": pc.fill_null(weight, 0.0),
            "is_purchase": purchase,
        }
        frame = pa.table(columns).cast(SESSION_EVENTS)
        for name in keep:
            frame = frame.append_column(name, table[name])
        parts.append(frame)
    if not parts:
        return _empty(keep)
    return pa.concat_tables(parts)


def _empty(keep: Sequence[str]) -> pa.Table:
    table = SESSION_EVENTS.empty_table()
    for name in keep:
        table = table.append_column(name, pa.array([], pa.int64()))
    return table


@dataclass(frozen=True)
class FeatureDeltas:
    """What a set of `SESSION_EVENTS` adds to the features, grouped by `by` + the keys below:

    - `users` (user_id): `events`, `last_ms`, `price_min`, `price_max`;
    - `products` (user_id, product_id): summed `weight`, `last_ms` (events that count);
    - `categories` (user_id, category): summed `weight`;
    - `sessions` (user_id, session_id): `last_ms`;
    - `purchases` (user_id, product_id): `last_ms` of the user's purchases of it;
    - `popularity` (product_id): summed `weight`;
    - `trending` (hour `YYYY-MM-DDTHH`, product_id): summed `weight`.
    """

    users: pa.Table
    products: pa.Table
    categories: pa.Table
    sessions: pa.Table
    purchases: pa.Table
    popularity: pa.Table
    trending: pa.Table


def feature_deltas(events: pa.Table, by: Sequence[str] = ()) -> FeatureDeltas:
    """Aggregate `SESSION_EVENTS` rows into `FeatureDeltas`, grouped also by the `by`
    columns (the processor groups by Kafka partition, so each can be fenced alone)."""
    keys = list(by)
    counting = events.filter(pc.greater(events["weight"], 0.0))
    hours = pc.strftime(
        counting["event_ms"].cast(pa.timestamp("ms", tz="UTC")), format="%Y-%m-%dT%H"
    )
    trending = counting.append_column("hour", hours)
    categorised = counting.filter(pc.is_valid(counting["category"]))
    sessions = events.filter(pc.is_valid(events["session_id"]))
    purchases = counting.filter(counting["is_purchase"])
    return FeatureDeltas(
        users=_group(
            events,
            [*keys, "user_id"],
            [
                ("event_ms", "count", "events"),
                ("event_ms", "max", "last_ms"),
                ("price", "min", "price_min"),
                ("price", "max", "price_max"),
            ],
        ),
        products=_group(
            counting,
            [*keys, "user_id", "product_id"],
            [("weight", "sum", "weight"), ("event_ms", "max", "last_ms")],
        ),
        categories=_group(
            categorised, [*keys, "user_id", "category"], [("weight", "sum", "weight")]
        ),
        sessions=_group(
            sessions, [*keys, "user_id", "session_id"], [("event_ms", "max", "last_ms")]
        ),
        purchases=_group(
            purchases, [*keys, "user_id", "product_id"], [("event_ms", "max", "last_ms")]
        ),
        popularity=_group(counting, [*keys, "product_id"], [("weight", "sum", "weight")]),
        trending=_group(trending, [*keys, "hour", "product_id"], [("weight", "sum", "weight")]),
    )


def _group(table: pa.Table, keys: list[str], aggregates: list[tuple[str, str, str]]) -> pa.Table:
    """`table` grouped by `keys`, each aggregate `(column, function, name)`, sorted by keys."""
    grouped = table.group_by(keys, use_threads=False).aggregate(
        [(column, function) for column, function, _ in aggregates]
    )
    names = [f"{column}_{function}" for column, function, _ in aggregates]
    grouped = grouped.select([*keys, *names]).rename_columns(
        [*keys, *(name for _, _, name in aggregates)]
    )
    return grouped.sort_by([(key, "ascending") for key in keys])


@dataclass
class _UserFold:
    """One user's deltas on their way to `SessionFeatures`."""

    last_seen: int
    events: int
    price_min: float | None
    price_max: float | None
    products: list[tuple[int, str, float]] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    sessions: list[int] = field(default_factory=list)
    purchased: list[tuple[int, str]] = field(default_factory=list)


def final_features(
    deltas: FeatureDeltas, ttl_days: int, max_products: int
) -> dict[int, SessionFeatures]:
    """Every user's `SessionFeatures` once all the events behind `deltas` (grouped by
    nothing) are applied: what Redis holds after the processor applied the same events,
    exactly so whenever no user touched more than `max_products` products (past the cap,
    see docs/session-features.md, the processor forgets a dropped product's weight, so
    a product dropped and touched again later weighs less there)."""
    ttl_ms = ttl_days * 86_400_000
    users = {
        row["user_id"]: _UserFold(row["last_ms"], row["events"], row["price_min"], row["price_max"])
        for row in deltas.users.to_pylist()
    }
    # Members as strings: Redis orders a sorted set by score, then by member bytes.
    for row in deltas.products.to_pylist():
        users[row["user_id"]].products.append(
            (row["last_ms"], str(row["product_id"]), row["weight"])
        )
    for row in deltas.categories.to_pylist():
        users[row["user_id"]].categories[row["category"]] = row["weight"]
    for row in deltas.sessions.to_pylist():
        users[row["user_id"]].sessions.append(row["last_ms"])
    for row in deltas.purchases.to_pylist():
        users[row["user_id"]].purchased.append((row["last_ms"], str(row["product_id"])))
    result: dict[int, SessionFeatures] = {}
    for user_id, user in users.items():
        products = sorted(user.products, reverse=True)[:max_products]
        purchased = sorted(user.purchased, reverse=True)[:RECENT_PURCHASES]
        cutoff = user.last_seen - ttl_ms
        result[user_id] = SessionFeatures(
            user_id=user_id,
            last_seen=user.last_seen,
            events=user.events,
            price_min=user.price_min,
            price_max=user.price_max,
            session_count=sum(last >= cutoff for last in user.sessions),
            products={int(pid): weight for _, pid, weight in products},
            categories=user.categories,
            purchased=tuple(int(pid) for _, pid in purchased),
        )
    return result


SESSION_COLUMNS: dict[TableSpec, list[str]] = {
    BRONZE_CLICKSTREAM: [
        "user_id",
        "session_id",
        "event_type",
        "product_id",
        "category",
        "price",
        "event_time",
    ],
    BRONZE_CART_EVENTS: [
        "user_id",
        "session_id",
        "action",
        "product_id",
        "category",
        "price",
        "event_time",
    ],
    BRONZE_SEARCH: ["user_id", "session_id", "event_time"],
    BRONZE_PURCHASES: [
        "user_id",
        "session_id",
        "product_id",
        "category",
        "unit_price",
        "event_time",
    ],
}
"""The bronze columns session features are computed from, per table."""


def session_features(settings: Settings, first: date, last: date) -> dict[int, SessionFeatures]:
    """The batch side: every user's session features over the landed (bronze) events of
    the event days `first`..`last`, as the stream processor computes them (bronze, not
    silver, because the processor sees every landed event, duplicates included)."""
    tables = {
        topic: read_days(settings, spec, SESSION_COLUMNS[spec], first, last)
        for topic, spec in zip(SESSION_TOPICS, SESSION_COLUMNS, strict=True)
    }
    deltas = feature_deltas(session_events(tables))
    return final_features(
        deltas, settings.session_features_ttl_days, settings.session_features_max_products
    )
