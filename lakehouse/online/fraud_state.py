"""The fraud decision service's state in Redis: its key layout, the encoding of one
remembered transaction, and the publishing of holder profiles and category risk.

Keys (every service process reads and writes the same ones, so processes behind one load
balancer decide on the same state):

- `fraud:holder:{user_id}` and `fraud:device:{device_id}`: sorted sets of the holder's and
  the device's transactions of the last week, scored by event time in milliseconds, so a
  late payment lands in its place in the window;
- `fraud:decision:{transaction_id}`: a decision already given, for idempotent retries;
- `fraud:profile:{user_id}`: the holder's lifetime profile as of the latest published
  day (`gold.fraud_user_profiles`), published by Dagster;
- `fraud:category_risk`: the smoothed fraud rate per (merchant category, channel) for the
  day after the latest published one (`gold.fraud_daily_stats`), also from Dagster.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from lakehouse.catalog import (
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_TRANSACTIONS,
)
from lakehouse.features.fraud import (
    CONTEXT_COLUMNS,
    RISK_DAYS,
    TRANSACTION_COLUMNS,
    WEEK,
    category_risk,
)
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days

CATEGORY_RISK_KEY = "fraud:category_risk"
PUBLISH_CHUNK = 2_000
_PROFILE_FIELDS = (
    "transactions", "days_active", "avg_amount", "stddev_amount", "home_country", "devices",
    "merchants",
)
HISTORY_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("user_id", pa.int64()),
    ("merchant_id", pa.string()),
    ("merchant_category", pa.string()),
    ("amount", pa.float64()),
    ("country", pa.string()),
    ("latitude", pa.float64()),
    ("longitude", pa.float64()),
    ("device_id", pa.string()),
    ("channel", pa.string()),
])
assert HISTORY_SCHEMA.names == TRANSACTION_COLUMNS, "a remembered transaction is a feature row"
CANDIDATE_SCHEMA = pa.schema([
    *HISTORY_SCHEMA,
    ("profile_transactions", pa.int64()),
    ("profile_days_active", pa.int64()),
    ("profile_avg_amount", pa.float64()),
    ("profile_stddev_amount", pa.float64()),
    ("profile_home_country", pa.string()),
    ("profile_devices", pa.list_(pa.string())),
    ("profile_merchants", pa.list_(pa.string())),
    ("category_risk", pa.float64()),
])
"""One transaction to decide with its context (`transaction_features`' candidates)."""
WINDOW_MS = WEEK * 1000
WINDOW_TTL_SECONDS = WEEK + 86_400
"""A holder's or device's window outlives its week by a day, then Redis drops it."""


def holder_key(user_id: int) -> str:
    """The holder's week of transactions."""
    return f"fraud:holder:{user_id}"


def device_key(device_id: str) -> str:
    """The device's week of transactions (every holder's)."""
    return f"fraud:device:{device_id}"


def decision_key(transaction_id: str) -> str:
    """A decision already given."""
    return f"fraud:decision:{transaction_id}"


def profile_key(user_id: int) -> str:
    """The holder's published profile."""
    return f"fraud:profile:{user_id}"


def event_millis(moment: datetime) -> int:
    """A sorted-set score: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def encode_transaction(row: dict[str, Any]) -> bytes:
    """One transaction as a sorted-set member: the `TRANSACTION_COLUMNS` values in order,
    the time as epoch microseconds. The event id makes members unique."""
    moment: datetime = row["event_time"]
    return orjson.dumps([
        row["event_id"], int(moment.timestamp() * 1_000_000), row["user_id"],
        row["merchant_id"], row["merchant_category"], row["amount"], row["country"],
        row["latitude"], row["longitude"], row["device_id"], row["channel"],
    ])


def history_table(members: Iterable[bytes]) -> pa.Table:
    """Remembered transactions (possibly repeated across holders' and devices' sets) as
    one `HISTORY_SCHEMA` table, each event once. A transaction is always encoded the same
    way, so repeats are equal bytes; the rest is one JSON parse for all of them."""
    unique = list(dict.fromkeys(members))
    rows = orjson.loads(b"[" + b",".join(unique) + b"]")
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(HISTORY_SCHEMA)
    arrays = [pa.array(values, type=pa.int64() if index == 1 else field.type)
              for index, (field, values) in enumerate(zip(HISTORY_SCHEMA, columns, strict=True))]
    arrays[1] = arrays[1].cast(HISTORY_SCHEMA.field(1).type)
    return pa.Table.from_arrays(arrays, schema=HISTORY_SCHEMA)


def decode_profile(raw: bytes | None) -> dict[str, Any]:
    """The context columns a published profile gives (NULLs for a holder without one)."""
    profile = orjson.loads(raw) if raw else {}
    return {f"profile_{name}": profile.get(name) for name in _PROFILE_FIELDS}


def decode_category_risk(raw: bytes | None) -> dict[str, float]:
    """`{"category|channel": risk}` from the published risk table (empty if none)."""
    return orjson.loads(raw)["risk"] if raw else {}


assert CANDIDATE_SCHEMA.names == [*TRANSACTION_COLUMNS, *CONTEXT_COLUMNS]


@dataclass(frozen=True)
class PublishedFraudState:
    """What one publish wrote."""

    day: date
    profiles: int
    risk_pairs: int
    bytes_written: int
    seconds: float


def publish_fraud_state(settings: Settings, day: date, client: Any | None = None
                        ) -> PublishedFraudState:
    """Publish the holder profiles as of `day` and the category risk for `day + 1` to
    Redis, for the decision service. Profiles expire after `fraud_profile_ttl_days`, so a
    stalled publisher shows as missing profiles (degraded decisions), not stale ones."""
    import redis

    started = time.perf_counter()
    profiles = read_days(settings, GOLD_FRAUD_USER_PROFILES,
                         ["user_id", "event_date", *_PROFILE_FIELDS], day, day)
    stats = read_days(settings, GOLD_FRAUD_DAILY_STATS, None,
                      day - timedelta(days=RISK_DAYS - 1), day)
    served_day = day + timedelta(days=1)
    risk = category_risk(stats, [served_day]) if stats.num_rows else None
    client = client or redis.Redis.from_url(settings.redis_url)
    ttl = settings.fraud_profile_ttl_days * 86_400
    written = 0
    rows = profiles.drop_columns(["event_date"]).to_pylist()
    for start in range(0, len(rows), PUBLISH_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for row in rows[start:start + PUBLISH_CHUNK]:
            value = orjson.dumps({name: row[name] for name in _PROFILE_FIELDS})
            written += len(value)
            pipeline.set(profile_key(row["user_id"]), value, ex=ttl)
        pipeline.execute()
    pairs = {} if risk is None else {
        f"{category}|{channel}": rate
        for category, channel, rate in zip(risk["merchant_category"].to_pylist(),
                                           risk["channel"].to_pylist(),
                                           risk["category_risk"].to_pylist(), strict=True)
    }
    value = orjson.dumps({"as_of": served_day.isoformat(), "risk": pairs})
    client.set(CATEGORY_RISK_KEY, value)
    return PublishedFraudState(day, len(rows), len(pairs), written + len(value),
                               time.perf_counter() - started)


def rebuild_windows(settings: Settings, last: date, client: Any | None = None) -> int:
    """Write the week of silver transactions up to `last` into the holders' and devices'
    windows: a cold start, or a Redis that lost its data, then decides with full history
    again. Idempotent (a member is the transaction itself, so rewriting it changes
    nothing); returns the transactions written."""
    import redis

    client = client or redis.Redis.from_url(settings.redis_url)
    rows = read_days(settings, SILVER_TRANSACTIONS, TRANSACTION_COLUMNS,
                     last - timedelta(days=6), last).to_pylist()
    for start in range(0, len(rows), PUBLISH_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for row in rows[start:start + PUBLISH_CHUNK]:
            member, score = encode_transaction(row), event_millis(row["event_time"])
            for key in (holder_key(row["user_id"]), device_key(row["device_id"])):
                pipeline.zadd(key, {member: score})
                pipeline.expire(key, WINDOW_TTL_SECONDS)
        pipeline.execute()
    return len(rows)
