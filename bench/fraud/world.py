"""The fraud benchmark's world: one generated run of card payments split in time, its
first days landed and built into the lake (silver, gold, a trained champion, profiles
and risk published, the week's windows written to Redis, as the nightly job and the
service would have left them), its later days held out as the stream the service
decides: payments it has never seen, with their ground truth for the quality figures.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import redis
from rich.console import Console

from bench.serving.servers import Server, free_port, private_redis
from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.catalog import Domain
from lakehouse.models.registry import ModelVersion
from lakehouse.online.fraud_state import publish_fraud_state, rebuild_windows
from lakehouse.settings import Settings
from streaming.generators import make_generator
from streaming.generators.common import EventBatch
from tests.support.fraud import build_fraud_days, register_trained
from tests.support.landing import land_in_bronze

FIRST = date(2026, 3, 2)
SEED = 31
HISTORY_DAYS = 4
STREAM_DAYS = 3


@dataclass(frozen=True)
class World:
    """The lake's settings, its champion, and the held-out payments in event-time order
    (each the JSON body of a decision request, labels included: the service never reads
    them)."""

    settings: Settings
    champion: ModelVersion
    last_history_day: date
    stream: list[bytes]


class _History:
    """The generated run's batches before `until`: what the lake has already landed."""

    domain = Domain.FRAUD
    topics = ("transactions",)

    def __init__(self, batches: list[EventBatch], until: str) -> None:
        self._batches, self._until = batches, until

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        for batch in self._batches:
            kept = [(key, value) for key, value in zip(batch.keys, batch.values, strict=True)
                    if orjson.loads(value)["event_time"] < self._until]
            if kept:
                yield EventBatch(batch.topic, [k for k, _ in kept], [v for _, v in kept])


def build_world(root: Path, redis_url: str, kafka: str, holders: int, history_days: int,
                stream_days: int) -> World:
    """Generate `history_days + stream_days` of payments of `holders` holders; land and
    train on the history, publish for the service, and hold out the rest."""
    days = history_days + stream_days
    settings = Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"),
                        redis_url=redis_url, kafka_bootstrap_servers=kafka)
    ensure_topics(settings)
    generator = make_generator(
        "fraud", seed=SEED, start=datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC),
        span=timedelta(days=days), n_users=holders,
    )
    batches = list(generator.batches(holders * 5 * days))
    last = FIRST + timedelta(days=history_days - 1)
    until = (last + timedelta(days=1)).isoformat()
    land_in_bronze(settings, _History(batches, until), holders * 5 * history_days)
    build_fraud_days(settings, (FIRST + timedelta(days=k) for k in range(history_days)))
    champion = register_trained(settings, last)
    client = redis.Redis.from_url(redis_url)
    publish_fraud_state(settings, last, client)
    rebuild_windows(settings, last, client)
    held_out = [value for batch in batches for value in batch.values
                if orjson.loads(value)["event_time"] >= until]
    held_out.sort(key=lambda value: orjson.loads(value)["event_time"])
    return World(settings, champion, last, held_out)


@contextmanager
def world_on_private_services(
    prefix: str, holders: int, console: Console
) -> Iterator[tuple[World, Server, float]]:
    """An embedded broker, a private Redis, and the world built on them (`HISTORY_DAYS`
    landed, `STREAM_DAYS` held out); yields the world, the Redis server and the seconds
    the build took, and removes it all afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / "broker.log").start()
    try:
        with private_redis() as store:
            started = time.perf_counter()
            with console.status("building the world (generate, land, build, train, publish)"):
                world = build_world(workdir, f"redis://127.0.0.1:{store.port}/0",
                                    broker.bootstrap, holders, HISTORY_DAYS, STREAM_DAYS)
            yield world, store, round(time.perf_counter() - started, 1)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
