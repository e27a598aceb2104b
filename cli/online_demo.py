"""The demo's online half: the session processor and the recommendation service as the
real processes `lakehouse stream session-features` and `lakehouse serve recommendations`,
and a shopper whose new clicks change what they are recommended.

Both processes are started the way an operator would start them (the `lakehouse` command,
settings from the environment) and stopped with SIGTERM, as their supervisor would. The
clicks go through Kafka like any other traffic, so what the demo shows is the whole
path: topic, processor, Redis, service.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from lakehouse.catalog import (
    CART_EVENTS,
    CLICKSTREAM,
    GOLD_PRODUCT_TRENDING,
    PURCHASES,
    SEARCH,
    USER_RECOMMENDATIONS,
    topic_partitions,
)
from lakehouse.online.session_keys import (
    CATEGORY_FIELD,
    OFFSETS_KEY,
    features_key,
    offset_field,
)
from lakehouse.settings import Settings

SESSION_TOPICS = (CLICKSTREAM, CART_EVENTS, SEARCH, PURCHASES)
"""What the session processor consumes."""
NEW_CLICKS = 6
"""Product views each demo shopper makes."""
CANDIDATES = 300
"""Known shoppers the demo picks its example among."""
_STOP_SECONDS = 20.0
_READY_SECONDS = 90.0


@dataclass(frozen=True)
class Answer:
    """One answer of the service, as the demo shows it."""

    source: str
    products: tuple[int, ...]
    model_version: int | None
    milliseconds: float


class OnlineProcess:
    """A `lakehouse` subcommand running beside the demo, its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.app", *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def check_alive(self) -> None:
        """Fail with the end of its log if the process has exited."""
        if self.process.poll() is not None:
            self._fail()

    def check_succeeded(self) -> None:
        """Fail with the end of its log unless the process exited with 0."""
        if self.process.returncode != 0:
            self._fail()

    def _fail(self) -> None:
        tail = self.log.read_text(errors="replace")[-2_000:]
        raise RuntimeError(
            f"{self.name} exited with code {self.process.returncode}; its log "
            f"({self.log}) ends with:\n{tail}"
        )

    def stop(self) -> int | None:
        """SIGTERM, as a supervisor would send; SIGKILL only if it ignores it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def redis_client(settings: Settings) -> redis.Redis:
    """The online Redis, or a clear error if it is not there (the online half needs it)."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as error:
        raise RuntimeError(
            f"Redis at {settings.redis_url} is not reachable ({error}): the session features "
            "live there; start redis-server or set REDIS_URL"
        ) from None
    return client


def forget_stale_offsets(settings: Settings) -> None:
    """Drop the session processor's offsets when the broker was started afresh: they
    point into the earlier broker's topics (gone with it), and would skip the new ones."""
    redis_client(settings).delete(OFFSETS_KEY)


@contextmanager
def session_processor(settings: Settings, console: Console) -> Iterator[OnlineProcess]:
    """`lakehouse stream session-features` while the block runs, then SIGTERM."""
    redis_client(settings)
    process = OnlineProcess(
        "the session processor",
        ["stream", "session-features"],
        log_path(settings, "session-features"),
        dict(os.environ),
    )
    console.print(
        f"   [green]session processor[/] running (pid {process.process.pid}, log {process.log})"
    )
    try:
        yield process
    finally:
        code = process.stop()
        console.print(f"   [dim]session processor stopped with SIGTERM (exit code {code})[/]")


def wait_caught_up(settings: Settings, process: OnlineProcess, timeout: float = 300.0) -> int:
    """Wait until the processor has applied every event of its topics to Redis (its
    offsets there reach the topics' ends); return the partitions it caught up with."""
    ends = _topic_ends(settings)
    client = redis_client(settings)
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        stored = client.hgetall(OFFSETS_KEY)
        applied = {field.decode(): int(value) for field, value in stored.items()}
        if all(applied.get(field, 0) >= end for field, end in ends.items()):
            return len(ends)
        if time.monotonic() > deadline:
            behind = sum(end - applied.get(field, 0) for field, end in ends.items())
            raise RuntimeError(f"the session processor is still {behind:,} events behind")
        time.sleep(0.2)


@contextmanager
def api_service(
    settings: Settings,
    console: Console,
    service: str,
    label: str,
    port: int,
    ready_path: str = "/readyz",
    detail: Callable[[str], str] = lambda base: "",
) -> Iterator[tuple[str, str]]:
    """`lakehouse serve <service>` on `port` with a fresh token, once `ready_path`
    answers; yields its base URL and the token, then stops it with SIGTERM. `detail(base)`
    adds what the service says about itself to the line announcing it."""
    token = settings.lakehouse_api_token
    secret = token.get_secret_value() if token else secrets.token_urlsafe(24)
    env = {**os.environ, "LAKEHOUSE_API_TOKEN": secret}
    process = OnlineProcess(
        f"the {label}",
        ["serve", service, "--host", "127.0.0.1", "--port", str(port)],
        log_path(settings, service),
        env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        wait_answering(base, process, ready_path)
        console.print(
            f"   [green]{label}[/] ready at {base} in {time.perf_counter() - started:.1f}s "
            f"({detail(base)}pid {process.process.pid}, log {process.log})"
        )
        yield base, secret
    finally:
        code = process.stop()
        console.print(f"   [dim]{label} stopped with SIGTERM (exit code {code})[/]")


def recommendation_service(
    settings: Settings, console: Console, port: int
) -> AbstractContextManager[tuple[str, str]]:
    """`lakehouse serve recommendations` on `port`, once ready (`api_service`)."""
    return api_service(settings, console, "recommendations", "recommendation service", port)


def recommend(base: str, token: str, user_id: int, k: int = 10) -> Answer:
    """One `GET /v1/recommendations/{user_id}`."""
    request = urllib.request.Request(
        f"{base}/v1/recommendations/{user_id}?k={k}",
        headers={"Authorization": f"Bearer {token}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=5.0) as response:
        body = orjson.loads(response.read())
    return Answer(
        source=body["source"],
        products=tuple(item["product_id"] for item in body["products"]),
        model_version=body.get("model_version"),
        milliseconds=(time.perf_counter() - started) * 1000,
    )


def show_shoppers(settings: Settings, console: Console, base: str, token: str, day: date) -> None:
    """A known shopper and a new one, each before and after a few product views."""
    from lakehouse.query import connect

    client = redis_client(settings)
    connection = connect(settings)
    try:
        candidates = [
            int(row[0])
            for row in connection.sql(
                f"SELECT DISTINCT user_id FROM {USER_RECOMMENDATIONS.key} "
                f"WHERE event_date = DATE '{day}' ORDER BY user_id LIMIT {CANDIDATES}"
            ).fetchall()
        ]
        if not candidates:
            raise RuntimeError(f"no batch recommendations for {day}: did training succeed?")
        shopper = _lightest_session(client, candidates)
        before = recommend(base, token, shopper)
        clicked = _products_elsewhere(connection, client, day, shopper, set(before.products))
    finally:
        connection.close()
    newcomer = _unknown_user(settings)
    newcomer_before = recommend(base, token, newcomer)
    for user in (shopper, newcomer):
        _click(settings, client, user, clicked)
    after = recommend(base, token, shopper)
    newcomer_after = recommend(base, token, newcomer)

    table = Table(title=f"two shoppers before and after viewing products {list(clicked)}")
    for column in ("user", "when", "source", "model", "top 5", "new in top 10", "ms"):
        table.add_column(column)
    for user, first, second in (
        (shopper, before, after),
        (newcomer, newcomer_before, newcomer_after),
    ):
        for when, answer in (("before", first), ("after", second)):
            fresh = [p for p in answer.products if p not in first.products]
            table.add_row(
                str(user),
                when,
                answer.source,
                str(answer.model_version or "-"),
                ", ".join(map(str, answer.products[:5])),
                "" if when == "before" else f"{len(fresh)} ({', '.join(map(str, fresh[:4]))})",
                f"{answer.milliseconds:.1f}",
            )
    console.print(table)
    console.print(
        f"   [dim]user {shopper} is known to the model: their trained factor, moved by the "
        f"session's products. User {newcomer} is new: popular products until their first "
        "clicks, then their own (the clicks folded into the model's product factors).[/]",
        soft_wrap=True,
    )


def _lightest_session(client: redis.Redis, users: list[int]) -> int:
    """The known shopper with the fewest events in Redis (at least one): a few clicks
    visibly move a short history, where a heavy one would absorb them."""
    pipeline = client.pipeline(transaction=False)
    for user in users:
        pipeline.hget(features_key(user), "events")
    counts = [int(count or 0) for count in pipeline.execute()]
    ranked = sorted((count, user) for count, user in zip(counts, users, strict=True) if count)
    return ranked[0][1] if ranked else users[0]


def _products_elsewhere(
    connection: Any, client: redis.Redis, day: date, shopper: int, shown: set[int]
) -> tuple[int, ...]:
    """The most popular products of the category the shopper cared least about (by the
    category weights of their session) and was not being shown: clicks on those visibly
    pull the list somewhere new."""
    rows = connection.sql(
        f"SELECT product_id, category FROM {GOLD_PRODUCT_TRENDING.key} "
        f"WHERE event_date = DATE '{day}' AND product_id IS NOT NULL "
        "ORDER BY popularity_rank LIMIT 500"
    ).fetchall()
    if not rows:
        raise RuntimeError(f"gold.product_trending holds no products for {day}")
    weights = client.hgetall(features_key(shopper))
    interest = {
        name.decode().removeprefix(CATEGORY_FIELD): float(value)
        for name, value in weights.items()
        if name.decode().startswith(CATEGORY_FIELD)
    }
    categories = sorted({category for _, category in rows if category is not None})
    least = min(categories, key=lambda category: (interest.get(category, 0.0), category))
    picked = [p for p, category in rows if category == least and p not in shown]
    return tuple(picked[:NEW_CLICKS]) or tuple(p for p, _ in rows if p not in shown)[:NEW_CLICKS]


def _unknown_user(settings: Settings) -> int:
    """A user id no generator hands out, so the model has never met them."""
    return 900_000_000 + int(time.time()) % 1_000_000


def _click(
    settings: Settings, client: redis.Redis, user_id: int, products: tuple[int, ...]
) -> None:
    """Product views by `user_id`, produced to `clickstream` like any other traffic; waits
    until the session processor has applied them to the user's features in Redis."""
    applied_before = int(client.hget(features_key(user_id), "events") or 0)
    session = uuid.uuid4().hex[:16]
    producer = Producer(settings.kafka_config())
    for product in products:
        event = {
            "event_id": uuid.uuid4().hex,
            "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "user_id": user_id,
            "session_id": session,
            "event_type": "product_view",
            "page": "product",
            "product_id": product,
            "category": None,
            "price": None,
            "device": "web",
            "referrer": None,
            "experiment_id": None,
            "variant": None,
        }
        producer.produce(CLICKSTREAM.name, orjson.dumps(event), str(user_id).encode())
    if producer.flush(10.0):
        raise RuntimeError("the demo's clicks could not be delivered to Kafka")
    deadline = time.monotonic() + 30.0
    while int(client.hget(features_key(user_id), "events") or 0) < applied_before + len(products):
        if time.monotonic() > deadline:
            raise RuntimeError(f"user {user_id}'s clicks did not reach Redis within 30 s")
        time.sleep(0.05)


def _topic_ends(settings: Settings) -> dict[str, int]:
    """The end offset of every partition of the session topics, by `OFFSETS_KEY` field."""
    consumer = Consumer({**settings.kafka_config(), "group.id": f"demo-{uuid.uuid4().hex[:8]}"})
    try:
        ends: dict[str, int] = {}
        for topic in SESSION_TOPICS:
            for partition in range(topic_partitions(topic, settings)):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic.name, partition), timeout=10.0
                )
                ends[offset_field(topic.name, partition)] = high
        return ends
    finally:
        consumer.close()


def wait_answering(base: str, process: OnlineProcess, path: str = "/readyz") -> None:
    """Wait until `path` of the service answers 200 (or fail with its log if it died)."""
    deadline = time.monotonic() + _READY_SECONDS
    while True:
        process.check_alive()
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{process.name} did not answer {path} within {_READY_SECONDS:.0f} s"
            )
        time.sleep(0.2)


def free_port() -> int:
    """A port a demo process can listen on (the demo never takes a fixed one from the user)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_path(settings: Settings, name: str) -> Path:
    """Where a demo process writes its output."""
    return Path(settings.lakehouse_home).expanduser() / "logs" / f"{name}.log"
