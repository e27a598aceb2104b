"""A lake ready for the fraud decision service: a few generated days of card payments in
silver and gold, a trained and promoted fraud model, as the nightly job leaves it; and
helpers to build payments for a known holder."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import GOLD_FRAUD_USER_PROFILES, SILVER_TRANSACTIONS
from lakehouse.models.fraud import train_fraud_model, training_data_versions
from lakehouse.models.registry import ModelVersion, register
from lakehouse.settings import Settings
from lakehouse.transforms import fraud as gold
from lakehouse.transforms.silver import build_silver_partition
from lakehouse.transforms.tables import read_days
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

FIRST = date(2026, 3, 2)
DAYS = [FIRST + timedelta(days=k) for k in range(4)]
LAST = DAYS[-1]
SERVED = LAST + timedelta(days=1)
"""The day the service decides for: profiles as of `LAST` apply to it."""
HOLDERS = 2_000

ARROW_TYPES: dict[str, pa.DataType] = {
    "event_id": pa.string(),
    "event_time": pa.timestamp("us", tz="UTC"),
    "user_id": pa.int64(),
    "merchant_id": pa.string(),
    "merchant_category": pa.string(),
    "amount": pa.float64(),
    "country": pa.string(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "device_id": pa.string(),
    "channel": pa.string(),
    "profile_transactions": pa.int64(),
    "profile_days_active": pa.int64(),
    "profile_avg_amount": pa.float64(),
    "profile_stddev_amount": pa.float64(),
    "profile_home_country": pa.string(),
    "profile_devices": pa.list_(pa.string()),
    "profile_merchants": pa.list_(pa.string()),
    "category_risk": pa.float64(),
}
"""The Arrow types training's tables carry (silver and gold's), for the reference side of
the decision service's plain columns (`lakehouse.features.fraud.Columns`)."""


@dataclass(frozen=True)
class FraudLake:
    """The settings of the lake and its champion."""

    settings: Settings
    champion: ModelVersion


def fraud_lake(root: Path) -> FraudLake:
    """`DAYS` of payments of `HOLDERS` holders in bronze, silver and gold, and a champion
    fraud model trained on them."""
    settings = Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"))
    generator = make_generator(
        "fraud",
        seed=23,
        start=datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC),
        span=timedelta(days=len(DAYS)),
        n_users=HOLDERS,
        fraud_rate=0.0075,
    )
    land_in_bronze(settings, generator, HOLDERS * 5 * len(DAYS))
    build_fraud_days(settings, DAYS)
    return FraudLake(settings, register_trained(settings))


def build_fraud_days(settings: Settings, days: Iterable[date]) -> None:
    """Silver transactions and the three fraud gold tables for each landed day."""
    for day in days:
        build_silver_partition(settings, "transactions", day)
        gold.build_fraud_user_daily_partition(settings, day)
        gold.build_fraud_user_profiles_partition(settings, day)
        gold.build_fraud_daily_stats_partition(settings, day)


def register_trained(settings: Settings, last: date = LAST, **metric_bonus: float) -> ModelVersion:
    """Train the fraud model as of `last` and register it (promoted if it beats the
    champion); `metric_bonus` adds to recorded metrics, to register a 'better' one."""
    trained = train_fraud_model(settings, last)
    metrics = {name: value + metric_bonus.get(name, 0.0) for name, value in trained.metrics.items()}
    return register(
        settings,
        trained.name,
        trained.artifact,
        params=trained.params,
        metrics=metrics,
        training_data=training_data_versions(settings),
        promotion_metric=trained.promotion_metric,
    )


@dataclass(frozen=True)
class Holder:
    """A card holder with history: where they live and what they use."""

    user_id: int
    card_id: str
    device_id: str
    merchant_id: str
    merchant_category: str
    country: str
    latitude: float
    longitude: float
    amount: float
    currency: str


def settled_holders(settings: Settings, count: int) -> list[Holder]:
    """Holders with a long legitimate history who paid at home on `LAST` with a device
    their profile knows, each with their usual payment of that day."""
    profiles = read_days(settings, GOLD_FRAUD_USER_PROFILES, None, LAST, LAST)
    payments = read_days(settings, SILVER_TRANSACTIONS, None, LAST, LAST)
    settled = profiles.filter(
        (pc.field("transactions") >= 15) & (pc.field("fraud_transactions") == 0)
    )
    known = {row["user_id"]: row for row in settled.to_pylist()}
    holders: dict[int, Holder] = {}
    for row in payments.filter(~pc.field("label_is_fraud")).to_pylist():
        profile = known.get(row["user_id"])
        if (
            profile is None
            or row["user_id"] in holders
            or row["device_id"] not in profile["devices"]
            or row["country"] != profile["home_country"]
            or row["channel"] != "pos"
        ):
            continue
        holders[row["user_id"]] = Holder(
            row["user_id"],
            row["card_id"],
            row["device_id"],
            row["merchant_id"],
            row["merchant_category"],
            row["country"],
            row["latitude"],
            row["longitude"],
            round(profile["avg_amount"], 2),
            row["currency"],
        )
        if len(holders) == count:
            return list(holders.values())
    raise AssertionError(f"only {len(holders)} settled holders in the lake")


def payment(holder: Holder, event_id: str, at: datetime, **changes: Any) -> dict[str, Any]:
    """A `transactions` event of `holder` at `at`, as usual unless `changes` say otherwise."""
    event = {
        "event_id": event_id,
        "event_time": at.isoformat(),
        "user_id": holder.user_id,
        "card_id": holder.card_id,
        "merchant_id": holder.merchant_id,
        "merchant_category": holder.merchant_category,
        "amount": holder.amount,
        "currency": holder.currency,
        "country": holder.country,
        "city": None,
        "latitude": holder.latitude,
        "longitude": holder.longitude,
        "device_id": holder.device_id,
        "ip_address": None,
        "channel": "pos",
    }
    event.update(changes)
    return event


def served_at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment of the served day."""
    return datetime(SERVED.year, SERVED.month, SERVED.day, hour, minute, second, tzinfo=UTC)
