"""The session processor (`lakehouse stream session-features`): the features it keeps in
Redis equal the batch definition over the same events, exactly once through SIGKILLs,
replays and Redis outages; caps and TTLs hold; poison never stops it.

Every test writes a private `redis-server` on a free port, never the machine's Redis.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from lakehouse.catalog import CATALOG, CLICKSTREAM, PURCHASES
from lakehouse.features.ecommerce import (
    SESSION_TOPICS,
    feature_deltas,
    final_features,
    session_events,
    session_features,
)
from lakehouse.online.session_keys import (
    OFFSETS_KEY,
    POPULARITY_KEY,
    SessionFeatures,
    features_key,
    parse_features,
    purchased_key,
    recent_key,
    sessions_key,
)
from lakehouse.settings import Settings
from streaming.generators import make_generator
from streaming.ingest.decode import BatchDecoder
from streaming.producer import produce
from streaming.session.processor import SessionOptions, SessionProcessor
from streaming.session.store import PART, PartitionRange, SessionStore
from tests.conftest import lakehouse_command, settings_env
from tests.support.landing import land_in_bronze
from tests.support.redis_server import RedisServer
from tests.support.traffic import Record, produce_records

DAY = datetime(2026, 11, 23, tzinfo=UTC)
MS = 1000


def online(settings: Settings, server: RedisServer, **overrides: object) -> Settings:
    """`settings` writing the private Redis, in a consumer group of its own."""
    return settings.model_copy(
        update={
            "redis_url": server.url,
            "session_features_group_id": f"session-{uuid.uuid4().hex[:8]}",
            "kafka_session_timeout_ms": 3000,
            "kafka_heartbeat_interval_ms": 300,
            **overrides,
        }
    )


def shop(seed: int, users: int = 3000, start: datetime = DAY) -> object:
    return make_generator("ecommerce", seed=seed, start=start, n_users=users)


def redis_features(client: redis.Redis) -> dict[int, SessionFeatures]:
    """Every user's features as Redis holds them."""
    users = [int(key.split(b":")[1]) for key in client.scan_iter("user:*:features", 10_000)]
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.hgetall(features_key(user))
        pipe.zrevrange(purchased_key(user), 0, -1)
    replies = pipe.execute()
    found = {}
    for number, user in enumerate(users):
        parsed = parse_features(user, replies[2 * number], replies[2 * number + 1])
        assert parsed is not None
        found[user] = parsed
    return found


def generated_features(settings: Settings, *traffic: tuple[object, int]) -> dict:
    """The batch definition over generators' events, decoded as ingest decodes them."""
    tables: dict = {topic: [] for topic in SESSION_TOPICS}
    decoders = {
        t.name: BatchDecoder(t.event, settings.ingest_max_message_bytes) for t in SESSION_TOPICS
    }
    for generator, events in traffic:
        for batch in generator.batches(events, 20_000):  # type: ignore[attr-defined]
            decoded = decoders[batch.topic].decode(batch.values)
            tables[CATALOG.topic(batch.topic)].append(decoded.table)
    merged = {topic: pa.concat_tables(parts) for topic, parts in tables.items() if parts}
    deltas = feature_deltas(session_events(merged))
    return final_features(
        deltas, settings.session_features_ttl_days, settings.session_features_max_products
    )


def assert_same(found: dict[int, SessionFeatures], expected: dict[int, SessionFeatures]) -> None:
    assert found.keys() == expected.keys(), (
        f"{len(found.keys() - expected.keys())} unexpected users, "
        f"{len(expected.keys() - found.keys())} missing"
    )
    wrong = [user for user in expected if found[user] != expected[user]]
    assert not wrong, f"{len(wrong)} users differ, e.g. {found[wrong[0]]} != {expected[wrong[0]]}"


def run_until_idle(settings: Settings, idle: float = 2.0) -> None:
    options = SessionOptions(until_idle=idle, max_seconds=120, handle_signals=False)
    SessionProcessor(settings, options).run()


# --- (a) the stream equals the batch definition -----------------------------------------------


def test_a_replayed_day_gives_the_batch_features(
    settings: Settings, redis_server: RedisServer
) -> None:
    settings = online(settings, redis_server)
    events = 40_000
    produce(settings, shop(7), events, progress=False)
    run_until_idle(settings)
    land_in_bronze(settings, shop(7), events)
    expected = session_features(
        settings, DAY.date() - timedelta(days=1), DAY.date() + timedelta(days=2)
    )
    # Equality is exact while no user passes the product cap (docs/session-features.md).
    assert max(len(f.products) for f in expected.values()) < settings.session_features_max_products
    assert sum(f.events for f in expected.values()) == events
    assert_same(redis_features(redis_server.client()), expected)
    popularity = dict(redis_server.client().zrange(POPULARITY_KEY, 0, -1, withscores=True))
    assert sum(popularity.values()) == sum(sum(f.products.values()) for f in expected.values())


# --- (b) SIGKILL at random moments -------------------------------------------------------------


_SPAWNED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _kill_leftover_processes() -> Iterator[None]:
    """A failing test must not leave processors running behind it."""
    yield
    while _SPAWNED:
        process = _SPAWNED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start_processor(settings: Settings, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **settings_env(settings),
        "REDIS_URL": settings.redis_url,
        "SESSION_FEATURES_GROUP_ID": settings.session_features_group_id,
        "SESSION_FEATURES_BATCH_EVENTS": str(settings.session_features_batch_events),
        "SESSION_FEATURES_MAX_PRODUCTS": str(settings.session_features_max_products),
    }
    with log.open("ab") as sink:
        process = subprocess.Popen(
            lakehouse_command("stream", "session-features", *extra),
            env=env,
            stdout=sink,
            stderr=sink,
        )
    _SPAWNED.append(process)
    return process


def wait_for_log(log: Path, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count(text) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not seen {count} times in {log}")


@pytest.mark.slow
def test_sigkill_at_random_moments_neither_loses_nor_double_counts(
    settings: Settings, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Small batches (more of them to interrupt); no product cap, so the comparison is exact
    # for the heaviest users too (docs/session-features.md).
    settings = online(
        settings,
        redis_server,
        session_features_batch_events=500,
        session_features_max_products=100_000,
    )
    rng = random.Random(20261204)
    events = 60_000
    log = tmp_path / "session.log"
    traffic = threading.Thread(
        target=produce, args=(settings, shop(11), events), kwargs={"rate": 4_000, "progress": False}
    )
    traffic.start()
    client = redis_server.client()
    for kill in range(3):
        applied_before = applied_offsets(client)
        process = start_processor(settings, log)
        try:
            wait_for_log(log, "assigned", kill + 1, timeout=60)
            # A random moment after this processor applied a batch of its own (while there is
            # traffic left to apply): a fixed sleep after the assignment killed slow starters
            # before their first batch on a loaded CI machine, and the test then proved nothing.
            wait_until(
                lambda before=applied_before: (
                    applied_offsets(client) > before or not traffic.is_alive()
                ),
                timeout=60,
            )
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    traffic.join()
    # The killed processors really applied batches before the final one.
    assert applied_offsets(client) > 0
    # SIGTERM stops cleanly: the batch in hand is applied, the group left.
    process = start_processor(settings, log)
    wait_for_log(log, "assigned", 4, timeout=60)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    final = start_processor(settings, log, "--until-idle", "3", "--max-seconds", "90")
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    land_in_bronze(settings, shop(11), events)
    expected = session_features(
        settings, DAY.date() - timedelta(days=1), DAY.date() + timedelta(days=2)
    )
    found = redis_features(client)
    assert sum(f.events for f in found.values()) == events
    assert_same(found, expected)
    popularity = {int(k): v for k, v in client.zrange(POPULARITY_KEY, 0, -1, withscores=True)}
    batch_popularity: dict[int, float] = {}
    for features in expected.values():
        for product, weight in features.products.items():
            batch_popularity[product] = batch_popularity.get(product, 0.0) + weight
    assert popularity == batch_popularity


# --- (c) fencing ---------------------------------------------------------------------------


def batch_of(clicks: list[dict], part: int = 1) -> pa.Table:
    """Clickstream rows (user_id, product_id, seconds, ...) as decoded events of one part."""
    rows = {
        "user_id": [c["user"] for c in clicks],
        "session_id": [c.get("session", "s1") for c in clicks],
        "event_type": [c.get("type", "product_view") for c in clicks],
        "product_id": [c.get("product") for c in clicks],
        "category": [c.get("category", "books") for c in clicks],
        "price": [c.get("price", 10.0) for c in clicks],
        "event_time": pa.array(
            [DAY + timedelta(seconds=c["at"]) for c in clicks], pa.timestamp("us", tz="UTC")
        ),
        PART: [part] * len(clicks),
    }
    return pa.table(rows)


def apply_clicks(
    store: SessionStore, clicks: list[dict], first: int, partition: int = 0, fresh: bool = False
):
    events = session_events({CLICKSTREAM: batch_of(clicks)}, keep=[PART])
    parts = [PartitionRange("clickstream", partition, first, first + len(clicks), fresh)]
    return store.apply(parts, feature_deltas(events, by=[PART]))


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


def test_a_batch_applied_twice_or_replayed_stale_changes_nothing(
    make_settings, redis_server: RedisServer
) -> None:
    store = SessionStore(make_settings(redis_url=redis_server.url))
    client = redis_server.client()
    clicks = [{"user": 1, "product": 5, "at": 1}, {"user": 2, "product": 6, "at": 2}]
    # Redis records no offset and the processor expects none: the batch applies.
    assert apply_clicks(store, clicks, first=0, fresh=True).applied == 2
    before = snapshot(client)
    again = apply_clicks(store, clicks, first=0, fresh=True)
    assert again.applied == 0 and again.fenced == {("clickstream", 0): 2}
    stale = apply_clicks(store, clicks[:1], first=1)  # a zombie's overlapping batch
    assert stale.applied == 0 and stale.fenced == {("clickstream", 0): 2}
    ahead = apply_clicks(store, clicks[:1], first=5)  # Redis lost writes: it is behind
    assert ahead.applied == 0 and ahead.fenced == {("clickstream", 0): 2}
    lost = apply_clicks(store, clicks[:1], first=4, partition=1)  # Redis lost the offset
    assert lost.applied == 0 and lost.fenced == {("clickstream", 1): -1}
    assert snapshot(client) == before
    # The next batch of the partition applies; another partition is independent.
    assert apply_clicks(store, clicks[:1], first=2).applied == 1
    assert apply_clicks(store, clicks[:1], first=0, partition=1, fresh=True).applied == 1
    assert client.hgetall(OFFSETS_KEY) == {b"clickstream:0": b"3", b"clickstream:1": b"1"}
    assert client.hget(features_key(1), "p:5") == b"3"


# --- (d) a Redis restart ------------------------------------------------------------------------


def applied_offsets(client: redis.Redis) -> int:
    try:
        return sum(int(v) for v in client.hvals(OFFSETS_KEY))
    except redis.RedisError:
        return -1


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_redis_restart_is_retried_and_the_features_rebuilt_from_kafka(
    settings: Settings, redis_server: RedisServer
) -> None:
    settings = online(settings, redis_server)
    options = SessionOptions(max_seconds=120, handle_signals=False)
    processor = SessionProcessor(settings, options)
    runner = threading.Thread(target=processor.run, daemon=True)
    runner.start()
    before, after = shop(21, users=500), shop(22, users=500, start=DAY + timedelta(days=3))
    try:
        produce(settings, before, 10_000, progress=False)
        client = redis_server.client()
        wait_until(lambda: applied_offsets(client) == 10_000, timeout=60)
        redis_server.stop()  # without persistence it comes back empty
        produce(settings, after, 10_000, progress=False)
        time.sleep(2)  # the processor meets the outage and retries
        redis_server.start()
        client = redis_server.client()
        # Redis lost every offset: the processor reads each partition again from its start.
        wait_until(lambda: applied_offsets(client) == 20_000, timeout=60)
    finally:
        processor.stop()
        runner.join(30)
    assert_same(
        redis_features(client), generated_features(settings, (before, 10_000), (after, 10_000))
    )
    assert processor.report.fenced >= 1


def _events(client: redis.Redis) -> int:
    return sum(f.events for f in redis_features(client).values())


# --- (e) caps and TTLs ---------------------------------------------------------------------


def test_caps_and_ttls(make_settings, redis_server: RedisServer) -> None:
    settings = make_settings(redis_url=redis_server.url, session_features_max_products=3)
    store = SessionStore(settings)
    client = redis_server.client()
    clicks = [{"user": 9, "product": p, "at": p} for p in range(1, 6)]
    clicks.append(
        {"user": 9, "product": None, "at": 40 * 86_400, "session": "s2", "type": "page_view"}
    )  # 40 days on: session s1 falls out of the window
    apply_clicks(store, clicks, first=0, fresh=True)
    assert client.zrange(recent_key(9), 0, -1) == [b"3", b"4", b"5"]
    fields = client.hkeys(features_key(9))
    assert sorted(f for f in fields if f.startswith(b"p:")) == [b"p:3", b"p:4", b"p:5"]
    assert client.hget(features_key(9), "session_count") == b"1"
    assert client.zrange(sessions_key(9), 0, -1) == [b"s2"]
    ttl = settings.session_features_ttl_days * 86_400
    for key in (features_key(9), recent_key(9), sessions_key(9)):
        assert ttl - 5 <= client.ttl(key) <= ttl
    trending = client.keys("products:trending:*")
    assert trending and all(0 < client.ttl(key) <= 48 * 3600 for key in trending)
    # Purchases: only the 20 latest are remembered, newest first.
    orders = pa.table(
        {
            "user_id": [9] * 25,
            "session_id": ["s2"] * 25,
            "product_id": list(range(100, 125)),
            "category": ["books"] * 25,
            "unit_price": [1.0] * 25,
            "event_time": pa.array(
                [DAY + timedelta(seconds=i) for i in range(25)], pa.timestamp("us", tz="UTC")
            ),
            PART: [1] * 25,
        }
    )
    events = session_events({PURCHASES: orders}, keep=[PART])
    store.apply([PartitionRange("purchases", 0, 0, 25, True)], feature_deltas(events, by=[PART]))
    kept = client.zrevrange(purchased_key(9), 0, -1)
    assert [int(p) for p in kept] == list(range(124, 104, -1))
    # A TTL is refreshed by every write.
    client.expire(features_key(9), 10)
    apply_clicks(store, [{"user": 9, "product": 1, "at": 1}], first=6)
    assert client.ttl(features_key(9)) > ttl - 5


# --- (f) poison --------------------------------------------------------------------------


class FakeMessage:
    """What the processor reads of a Kafka message."""

    def __init__(self, topic: str, offset: int, value: bytes | None) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


def good_click(user: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{user}",
            "event_time": "2026-11-23T10:00:00Z",
            "user_id": user,
            "session_id": "s",
            "event_type": "product_view",
            "page": "product",
            "product_id": 7,
            "category": "books",
            "price": 3.0,
        }
    )


def _dumps(value: object) -> bytes:
    """JSON as a lax producer writes it: huge integers, NaN and Infinity included."""
    return json.dumps(value).encode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
POISON = st.one_of(
    st.binary(max_size=64),
    st.none(),
    JSON_VALUES.map(_dumps),
    st.fixed_dictionaries(
        {
            "event_id": st.text(max_size=5),
            "event_time": st.text(max_size=30) | st.integers(),
            "user_id": st.integers() | st.text(max_size=5) | st.floats(),
            "session_id": st.none() | st.integers(),
            "event_type": st.just("product_view"),
            "page": st.text(max_size=5),
            "product_id": st.integers(min_value=-(2**70), max_value=2**70),
            "price": st.floats() | st.text(max_size=3),
        }
    ).map(_dumps),
    st.just(b"{" * 10_000),
    st.just(b'{"user_id": 1, "event_time": "99999-01-01T00:00:00Z"}'),
)


@pytest.fixture
def poison_processor(settings: Settings, redis_server: RedisServer):
    processor = SessionProcessor(
        online(settings, redis_server), SessionOptions(handle_signals=False)
    )
    yield processor, redis_server.client()
    processor._consumer.close()


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(poison=st.lists(POISON, min_size=1, max_size=8), where=st.integers(0, 8))
def test_poison_is_counted_never_fatal_and_good_records_still_apply(
    poison_processor, poison: list[bytes | None], where: int
) -> None:
    processor, client = poison_processor
    key = ("clickstream", 0)
    processor.positions.setdefault(key, None)  # as assigned with no offset in Redis
    first = processor.positions[key] or 0
    user = 10_000_000 + first
    values = list(poison)
    values.insert(min(where, len(values)), good_click(user))
    before_bad, before_applied = processor.report.bad, processor.report.applied
    processor._process([FakeMessage("clickstream", first + i, v) for i, v in enumerate(values)])
    applied = processor.report.applied - before_applied
    bad = processor.report.bad - before_bad
    assert applied + bad == len(values)  # every record is either applied or counted bad
    assert applied >= 1 and client.hget(features_key(user), "events") is not None
    assert processor.positions[key] == first + len(values)


def test_poison_through_the_broker_with_bad_keys_headers_and_timestamps(
    settings: Settings, redis_server: RedisServer
) -> None:
    settings = online(settings, redis_server)
    records = [
        Record(b"not json", key=b"\xff\xfe", headers=(("x", b"\x00"),), timestamp=1),
        Record(None, key=None),
        Record(b'{"user_id": "nope"}', headers=(("", None),)),
        Record(good_click(42), key=b"k" * 1000, timestamp=2**40),
        Record(b"[1, 2]", timestamp=1),
    ]
    produce_records(settings, "clickstream", records)
    processor = SessionProcessor(
        settings, SessionOptions(until_idle=2, max_seconds=60, handle_signals=False)
    )
    bad_before = _bad_records()
    report = processor.run()
    assert (report.applied, report.bad) == (1, 4)
    assert _bad_records() - bad_before == 4  # the Prometheus counter
    assert redis_server.client().hget(features_key(42), "events") == b"1"


def _bad_records() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "session_features_bad_records"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_the_features_of_hand_made_events() -> None:
    clicks = [
        {"user": 1, "product": 5, "at": 0, "price": 4.0},
        {"user": 1, "product": 5, "at": 60, "price": 2.0, "session": "s2"},
        {"user": 1, "product": None, "at": 90, "type": "page_view", "price": None},
    ]
    events = session_events({CLICKSTREAM: batch_of(clicks).drop([PART])})
    features = final_features(feature_deltas(events), ttl_days=30, max_products=100)
    assert features == {
        1: SessionFeatures(
            user_id=1,
            last_seen=int((DAY.timestamp() + 90) * MS),
            events=3,
            price_min=2.0,
            price_max=4.0,
            session_count=2,
            products={5: 2.0},
            categories={"books": 2.0},
        )
    }
