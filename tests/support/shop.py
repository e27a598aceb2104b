"""The generated shop the recommender tests learn from, one definition for both engines'
tests: six days of 1,500 shoppers and 2,000 products (80,000 events a day) in silver, with
a flatter popularity than the generator's default (tests/test_recommender.py says why)."""

from __future__ import annotations

import fcntl
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

FIRST = date(2026, 3, 2)
DAYS = [FIRST + timedelta(days=k) for k in range(6)]
LAST = DAYS[-1]
TOPICS = ("clickstream", "cart_events", "purchases")


def generated_shop(root: Path) -> Settings:
    """Land the shop's six days under `root` and build their silver tables."""
    settings = Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"))
    generator = make_generator(
        "ecommerce",
        seed=5,
        start=datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC),
        span=timedelta(days=len(DAYS)),
        n_users=1_500,
        n_products=2_000,
        zipf_exponent=0.5,
    )
    land_in_bronze(settings, generator, 80_000 * len(DAYS))
    for day in DAYS:
        for topic in TOPICS:
            build_silver_partition(settings, topic, day)
    return settings


def shared_shop(factory: pytest.TempPathFactory, name: str) -> Settings:
    """The generated shop in a fresh folder of its own (`name`), for a test module to read
    and write at will. It is generated once per test session: the first module to ask,
    whichever xdist worker runs it, builds it in the session's shared temporary folder
    (under a lock), and every module gets a copy, as if it had generated its own."""
    base = factory.getbasetemp()
    # Under xdist each worker's base is `<session>/popen-gwN`: share the session's folder.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    built = shared / "generated-shop"
    with (shared / "generated-shop.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (built / "done").exists():
            shutil.rmtree(built, ignore_errors=True)
            generated_shop(built)
            (built / "done").touch()
    root = factory.mktemp(name)
    for folder in ("lake", "home"):
        if (built / folder).exists():
            shutil.copytree(built / folder, root / folder)
    return Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"))
