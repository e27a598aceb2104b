"""Where a shopper's session features live in Redis: the one key layout that the session
processor writes (`lakehouse stream session-features`) and the recommendation service
reads, so neither can drift from the other.

Per user, all expiring together `session_features_ttl_days` after the user's latest write:

- `user:{id}:features`, a hash: `last_seen` (epoch ms of the newest event), `events` (events
  applied), `price_min` / `price_max` (prices the user looked at, carted or paid),
  `session_count` (sessions within the TTL window of `last_seen`), and one field per
  product (`p:{product_id}`: summed interaction weight, `lakehouse.features.ecommerce`)
  and per category (`c:{category}`: summed weight).
- `user:{id}:recent`, a sorted set of product ids by the epoch ms they were last touched,
  capped at `session_features_max_products` (a dropped product also leaves the hash).
- `user:{id}:sessions`, a sorted set of session ids by their last event's epoch ms.
- `user:{id}:purchased`, a sorted set of the latest `RECENT_PURCHASES` purchased product
  ids by purchase time: the service never recommends what was just bought.

Shared: `products:popularity` (product id by summed weight, all the stream has seen),
`products:trending:{YYYY-MM-DDTHH}` (the same per event hour, expiring after
`TRENDING_HOURS`), and `OFFSETS_KEY` (per `topic:partition`, the next offset to apply),
which the processor writes in the same atomic step as the features.

A single Redis (or a primary with replicas) is assumed: the atomic batch touches keys of
many users, which Redis Cluster would only allow within one hash slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECENT_PURCHASES = 20
"""Purchased products remembered per user (the most recent)."""
TRENDING_HOURS = 48
"""How long an hour's trending counters are kept."""
OFFSETS_KEY = "session-features:offsets"
"""Hash of `topic:partition` to the next offset the processor applies."""
POPULARITY_KEY = "products:popularity"
PRODUCT_FIELD = "p:"
CATEGORY_FIELD = "c:"


def features_key(user_id: int) -> str:
    """The user's feature hash."""
    return f"user:{user_id}:features"


def recent_key(user_id: int) -> str:
    """The user's recently touched products, by epoch ms."""
    return f"user:{user_id}:recent"


def sessions_key(user_id: int) -> str:
    """The user's sessions, by the epoch ms of their last event."""
    return f"user:{user_id}:sessions"


def purchased_key(user_id: int) -> str:
    """The user's latest purchased products, by purchase epoch ms."""
    return f"user:{user_id}:purchased"


def trending_key(hour: str) -> str:
    """Product weights of one event hour (`YYYY-MM-DDTHH`, UTC)."""
    return f"products:trending:{hour}"


def offset_field(topic: str, partition: int) -> str:
    """The field of `OFFSETS_KEY` holding one partition's next offset."""
    return f"{topic}:{partition}"


@dataclass(frozen=True)
class SessionFeatures:
    """One user's session features as read back from Redis."""

    user_id: int
    last_seen: int
    events: int
    price_min: float | None
    price_max: float | None
    session_count: int
    products: dict[int, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    purchased: tuple[int, ...] = ()


def parse_features(
    user_id: int, features: dict[bytes, bytes], purchased: list[bytes]
) -> SessionFeatures | None:
    """The features of a user from the raw `HGETALL` of their hash and the members of their
    purchased set (newest first); None when Redis holds nothing for them."""
    if not features:
        return None
    products: dict[int, float] = {}
    categories: dict[str, float] = {}
    scalars: dict[str, bytes] = {}
    for raw_name, raw_value in features.items():
        name = raw_name.decode()
        if name.startswith(PRODUCT_FIELD):
            products[int(name[len(PRODUCT_FIELD) :])] = float(raw_value)
        elif name.startswith(CATEGORY_FIELD):
            categories[name[len(CATEGORY_FIELD) :]] = float(raw_value)
        else:
            scalars[name] = raw_value
    return SessionFeatures(
        user_id=user_id,
        last_seen=int(scalars.get("last_seen", b"0")),
        events=int(scalars.get("events", b"0")),
        price_min=float(scalars["price_min"]) if "price_min" in scalars else None,
        price_max=float(scalars["price_max"]) if "price_max" in scalars else None,
        session_count=int(scalars.get("session_count", b"0")),
        products=products,
        categories=categories,
        purchased=tuple(int(member) for member in purchased),
    )
