"""Session features written the way the processor writes them (its `SessionStore` and
Lua script, the shared feature definitions), without a broker in between: for the tests
and benchmarks of what reads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

from lakehouse.catalog import CLICKSTREAM, PURCHASES, TopicSpec
from lakehouse.features.ecommerce import feature_deltas, session_events
from lakehouse.settings import Settings
from streaming.session.store import PART, PartitionRange, SessionStore


class SessionWriter:
    """Applies events to Redis as one processor batch each, on partition 0 of each topic,
    offsets counted from 0 (so Redis's fencing accepts them in order)."""

    def __init__(self, settings: Settings) -> None:
        self.store = SessionStore(settings)
        self.next: dict[str, int] = {}

    def views(self, user_id: int, products: Sequence[int], category: str = "books") -> None:
        """`user_id` viewed each of `products` (weight 1 each), just now."""
        self._apply(CLICKSTREAM, {
            "user_id": [user_id] * len(products),
            "session_id": [uuid.uuid4().hex[:16]] * len(products),
            "event_type": ["product_view"] * len(products),
            "product_id": list(products),
            "category": [category] * len(products),
            "price": [10.0] * len(products),
        })

    def purchases(self, user_id: int, products: Sequence[int]) -> None:
        """`user_id` bought each of `products`, just now."""
        self._apply(PURCHASES, {
            "user_id": [user_id] * len(products),
            "session_id": [uuid.uuid4().hex[:16]] * len(products),
            "product_id": list(products),
            "category": ["books"] * len(products),
            "unit_price": [10.0] * len(products),
        })

    def _apply(self, topic: TopicSpec, columns: dict[str, list[object]]) -> None:
        n = len(columns["user_id"])
        now = datetime.now(UTC)
        table = pa.table({
            **columns,
            "event_time": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            PART: [1] * n,
        })
        first = self.next.get(topic.name, 0)
        part = PartitionRange(topic.name, 0, first, first + n, fresh=first == 0)
        result = self.store.apply(
            [part], feature_deltas(session_events({topic: table}, keep=[PART]), by=[PART])
        )
        if result.applied != n:
            raise RuntimeError(f"Redis applied {result.applied} of {n} events: {result}")
        self.next[topic.name] = first + n
