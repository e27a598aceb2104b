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

from datetime import date

import pyarrow as pa

from lakehouse.catalog import SILVER_CART_EVENTS, SILVER_CLICKSTREAM, SILVER_PURCHASES, TableSpec
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
        read_days(settings, spec, columns, first, last)
        for spec, columns in TOPIC_COLUMNS.items()
    ]
