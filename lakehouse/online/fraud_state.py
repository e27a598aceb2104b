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
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

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
    "transactions",
    "days_active",
    "avg_amount",
    "stddev_amount",
    "home_country",
    "devices",
    "merchants",
)
assert [f"profile_{name}" for name in _PROFILE_FIELDS] == CONTEXT_COLUMNS[:-1], (
    "a decoded profile is a candidate's context, less the category risk"
)
WINDOW_MS = WEEK * 1000
WINDOW_TTL_SECONDS = WEEK + 86_400
"""A holder's or device's window outlives its week by a day, then Redis drops it."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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
    return orjson.dumps(
        [
            row["event_id"],
            int(moment.timestamp() * 1_000_000),
            row["user_id"],
            row["merchant_id"],
            row["merchant_category"],
            row["amount"],
            row["country"],
            row["latitude"],
            row["longitude"],
            row["device_id"],
            row["channel"],
        ]
    )


def event_micros(moment: datetime) -> int:
    """Epoch microseconds, exactly (integer arithmetic, as Arrow converts a datetime): a
    candidate's `event_time` in `compute_signals`' plain columns."""
    return (moment - _EPOCH) // _MICROSECOND


def history_columns(
    members: Iterable[bytes], then: Iterable[list[Any]] = ()
) -> dict[str, tuple[Any, ...]]:
    """Remembered transactions (possibly repeated across holders' and devices' sets), then
    the rows `then` (`TRANSACTION_COLUMNS` values, the time in epoch microseconds), as
    plain columns (`lakehouse.features.fraud.Columns`), each remembered event once, in
    order of first appearance. A transaction is always encoded the same way, so repeats
    are equal bytes; the rest is one JSON parse for all of them, no table to build."""
    unique = list(dict.fromkeys(members))
    rows = orjson.loads(b"[" + b",".join(unique) + b"]")
    rows.extend(then)
    columns = zip(*rows, strict=True) if rows else [()] * len(TRANSACTION_COLUMNS)
    return dict(zip(TRANSACTION_COLUMNS, columns, strict=True))


def decode_profile(raw: bytes | None) -> dict[str, Any]:
    """The context columns a published profile gives (NULLs for a holder without one)."""
    profile = orjson.loads(raw) if raw else {}
    return {f"profile_{name}": profile.get(name) for name in _PROFILE_FIELDS}


def decode_category_risk(raw: bytes | None) -> dict[str, float]:
    """`{"category|channel": risk}` from the published risk table (empty if none)."""
    return orjson.loads(raw)["risk"] if raw else {}


@dataclass(frozen=True)
class PublishedFraudState:
    """What one publish wrote."""

    day: date
    profiles: int
    risk_pairs: int
    bytes_written: int
    seconds: float


def publish_fraud_state(
    settings: Settings, day: date, client: Any | None = None
) -> PublishedFraudState:
    """Publish the holder profiles as of `day` and the category risk for `day + 1` to
    Redis, for the decision service. Profiles expire after `fraud_profile_ttl_days`, so a
    stalled publisher shows as missing profiles (degraded decisions), not stale ones."""
    import redis

    started = time.perf_counter()
    profiles = read_days(
        settings, GOLD_FRAUD_USER_PROFILES, ["user_id", "event_date", *_PROFILE_FIELDS], day, day
    )
    stats = read_days(
        settings, GOLD_FRAUD_DAILY_STATS, None, day - timedelta(days=RISK_DAYS - 1), day
    )
    served_day = day + timedelta(days=1)
    risk = category_risk(stats, [served_day]) if stats.num_rows else None
    client = client or redis.Redis.from_url(settings.redis_url)
    ttl = settings.fraud_profile_ttl_days * 86_400
    written = 0
    rows = profiles.drop_columns(["event_date"]).to_pylist()
    for start in range(0, len(rows), PUBLISH_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for row in rows[start : start + PUBLISH_CHUNK]:
            value = orjson.dumps({name: row[name] for name in _PROFILE_FIELDS})
            written += len(value)
            pipeline.set(profile_key(row["user_id"]), value, ex=ttl)
        pipeline.execute()
    pairs = (
        {}
        if risk is None
        else {
            f"{category}|{channel}": rate
            for category, channel, rate in zip(
                risk["merchant_category"].to_pylist(),
                risk["channel"].to_pylist(),
                risk["category_risk"].to_pylist(),
                strict=True,
            )
        }
    )
    value = orjson.dumps({"as_of": served_day.isoformat(), "risk": pairs})
    client.set(CATEGORY_RISK_KEY, value)
    return PublishedFraudState(
        day, len(rows), len(pairs), written + len(value), time.perf_counter() - started
    )


def rebuild_windows(settings: Settings, last: date, client: Any | None = None) -> int:
    """Write the week of silver transactions up to `last` into the holders' and devices'
    windows: a cold start, or a Redis that lost its data, then decides with full history
    again. Idempotent (a member is the transaction itself, so rewriting it changes
    nothing); returns the transactions written."""
    import redis

    client = client or redis.Redis.from_url(settings.redis_url)
    rows = read_days(
        settings, SILVER_TRANSACTIONS, TRANSACTION_COLUMNS, last - timedelta(days=6), last
    ).to_pylist()
    for start in range(0, len(rows), PUBLISH_CHUNK):
        pipeline = client.pipeline(transaction=False)
        for row in rows[start : start + PUBLISH_CHUNK]:
            member, score = encode_transaction(row), event_millis(row["event_time"])
            for key in (holder_key(row["user_id"]), device_key(row["device_id"])):
                pipeline.zadd(key, {member: score})
                pipeline.expire(key, WINDOW_TTL_SECONDS)
        pipeline.execute()
    return len(rows)
