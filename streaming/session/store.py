"""The Redis side of the session processor: one EVALSHA per micro-batch applies the batch's
feature deltas and moves its partitions' offsets in the same atomic step (`apply.lua`).

The offsets in Redis are the source of truth for progress: on assignment the processor
reads them (`stored_offsets`) and starts each partition there; a batch whose first offset
is not what Redis records for its partition (a replay or a zombie after a rebalance: Redis
is past it; Redis lost writes: Redis is behind it) is fenced by the script and changes
nothing, and the processor reads on from what Redis holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import msgspec
import pyarrow as pa
import redis

from lakehouse.features.ecommerce import FeatureDeltas
from lakehouse.online.session_keys import (
    OFFSETS_KEY,
    POPULARITY_KEY,
    RECENT_PURCHASES,
    TRENDING_HOURS,
    offset_field,
)
from lakehouse.settings import Settings

PART = "_part"
"""The column of a batch's events naming its partition (1-based index into `parts`)."""

_SCRIPT = resources.files(__package__).joinpath("apply.lua").read_text()


@dataclass(frozen=True)
class PartitionRange:
    """The messages of one partition in a batch: `first`..`next - 1`; `fresh` when the
    processor read the partition from its start because Redis recorded no offset."""

    topic: str
    partition: int
    first: int
    next: int
    fresh: bool = False


@dataclass
class ApplyResult:
    """What Redis did with a batch: events applied, and the partitions it fenced with the
    offset it holds for each (the processor seeks there; -1: Redis lost the offset, read
    the partition again from its start)."""

    applied: int
    fenced: dict[tuple[str, int], int] = field(default_factory=dict)


def _text(value: object) -> str:
    """A number as Lua receives it: a string, integers without a decimal point."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def _rows(table: pa.Table, columns: list[str]) -> list[list[object]]:
    """`[part, *columns as text]` per row, the first column an int index."""
    data = [table.column(name).to_pylist() for name in (PART, *columns)]
    return [[row[0], *map(_text, row[1:])] for row in zip(*data, strict=True)]


def encode_batch(settings: Settings, parts: list[PartitionRange], deltas: FeatureDeltas) -> bytes:
    """The MessagePack argument of `apply.lua` for `deltas` grouped by `PART`."""
    ttl = settings.session_features_ttl_days * 86_400
    payload = {
        "ttl": str(ttl),
        "ttl_ms": str(ttl * 1000),
        "cap": str(settings.session_features_max_products),
        "purchases_cap": str(RECENT_PURCHASES),
        "trending_ttl": str(TRENDING_HOURS * 3600),
        "parts": [
            [offset_field(p.topic, p.partition), str(p.first), str(p.next), "1" if p.fresh else "0"]
            for p in parts
        ],
        "users": _rows(deltas.users, ["user_id", "events", "last_ms", "price_min", "price_max"]),
        "products": _rows(deltas.products, ["user_id", "product_id", "weight", "last_ms"]),
        "categories": _rows(deltas.categories, ["user_id", "category", "weight"]),
        "sessions": _rows(deltas.sessions, ["user_id", "session_id", "last_ms"]),
        "purchases": _rows(deltas.purchases, ["user_id", "product_id", "last_ms"]),
        "popularity": _rows(deltas.popularity, ["product_id", "weight"]),
        "trending": _rows(deltas.trending, ["hour", "product_id", "weight"]),
    }
    return msgspec.msgpack.encode(payload)


class SessionStore:
    """The processor's handle on Redis: read offsets, apply batches."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or redis.Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=2
        )
        self._script = self.client.register_script(_SCRIPT)

    def stored_offsets(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """The next offset Redis records for each (topic, partition), None if none."""
        if not keys:
            return {}
        values = self.client.hmget(OFFSETS_KEY, [offset_field(t, p) for t, p in keys])
        return {key: int(v) if v is not None else None for key, v in zip(keys, values, strict=True)}

    def apply(self, parts: list[PartitionRange], deltas: FeatureDeltas) -> ApplyResult:
        """Apply one batch atomically (one EVALSHA; the script is loaded again if Redis
        lost it, after a restart); raise `redis.RedisError` if Redis cannot be reached."""
        payload = encode_batch(self.settings, parts, deltas)
        applied, fenced = self._script(keys=[OFFSETS_KEY, POPULARITY_KEY], args=[payload])
        result = ApplyResult(applied=int(applied))
        for entry in fenced:
            where, _, stored = entry.decode().rpartition("=")
            topic, _, partition = where.rpartition(":")
            result.fenced[(topic, int(partition))] = int(stored)
        return result
