"""A lake ready for the online path: a few generated days of a small shop in silver, a
trained and promoted recommender, and the champion's batch top 10, as the nightly job
leaves it. Shared by the publishing, service and benchmark set-ups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.models.recommender import (
    build_user_recommendations_partition,
    train_recommender,
    training_data_versions,
)
from lakehouse.models.registry import ModelVersion, register
from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

FIRST = date(2026, 3, 2)
DAYS = [FIRST + timedelta(days=k) for k in range(3)]
LAST = DAYS[-1]
_TOPICS = ("clickstream", "cart_events", "purchases")


@dataclass(frozen=True)
class OnlineLake:
    """The settings of the lake and the day its batch recommendations are for."""

    settings: Settings
    day: date


def shop_in_silver(
    root: Path, *, users: int = 800, products: int = 1_000, events_per_day: int = 30_000,
    **overrides: Any,
) -> Settings:
    """`DAYS` of generated shop traffic landed in bronze and built into silver."""
    settings = Settings(
        lakehouse_home=root / "home", lakehouse_root=str(root / "lake"), **overrides
    )
    generator = make_generator(
        "ecommerce",
        seed=11,
        start=datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC),
        span=timedelta(days=len(DAYS)),
        n_users=users,
        n_products=products,
        zipf_exponent=0.5,
    )
    land_in_bronze(settings, generator, events_per_day * len(DAYS))
    for day in DAYS:
        for topic in _TOPICS:
            build_silver_partition(settings, topic, day)
    return settings


def train_and_register(settings: Settings, day: date = LAST) -> ModelVersion:
    """Train the recommender as of `day` and register it (promoted if it is the first or
    beats the champion), then write the champion's batch top 10 for `day`."""
    trained = train_recommender(settings, day)
    version = register(
        settings,
        trained.name,
        trained.artifact,
        params=trained.params,
        metrics=trained.metrics,
        training_data=training_data_versions(settings),
        promotion_metric=trained.promotion_metric,
    )
    build_user_recommendations_partition(settings, day)
    return version


def online_lake(root: Path, **overrides: Any) -> OnlineLake:
    """A small shop in silver with a champion and its batch top 10 for `LAST`."""
    settings = shop_in_silver(root, **overrides)
    train_and_register(settings)
    return OnlineLake(settings, LAST)
