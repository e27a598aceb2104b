"""Micro-batches from a Kafka consumer, for the stream processors that apply a batch and
its offsets to Redis in one step (the session-features and the IoT alert processors).

confluent-kafka's `consume(n, timeout)` returns as soon as anything is there; a processor
wants a batch that is full or old enough, so this waits for more within a window. While
a processor waits on Redis it must keep polling or the group drops it; a message fetched
then is carried into the next batch, never dropped. Both processors time their runs, wait on
Redis, treat consumer errors and name partitions in their logs the same way, with the
helpers below; the ingest sidecar names its partitions with `describe` too.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter

from lakehouse.settings import Settings

log = logging.getLogger(__name__)

Result = TypeVar("Result")

REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
"""Redis errors that mean "not now": a processor waits them out, never gives up on them."""
LAG_EVERY_SECONDS = 5.0
"""How often a processor reports its partitions' lag."""
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 5.0


class Stopped(enum.Enum):
    """What a wait on Redis returns when the processor was told to stop before Redis
    answered (a call may itself answer None)."""

    STOPPED = "stopped"


STOPPED = Stopped.STOPPED

FIRST_WAIT_SECONDS = 0.2
"""How long `collect` waits for a batch's first message (the loop's idle tick)."""


def checkpointing_consumer(settings: Settings, group_id: str) -> Consumer:
    """A group member for a processor that keeps its offsets in Redis with its state:
    Kafka never commits or stores offsets on its own (what the processor commits is a
    hint for lag dashboards), a new group starts at the earliest offset, partitions are
    dealt round-robin, and fetches wait at most 20 ms (latency over batching)."""
    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
            "partition.assignment.strategy": "roundrobin",
            "fetch.wait.max.ms": 20,
            "logger": logging.getLogger("librdkafka"),
        }
    )


@dataclass
class RunClock:
    """When a processor's run is over besides a stop request: after `max_seconds` in all,
    or `until_idle` seconds without activity once it owns partitions (a message arriving
    or partitions being assigned is activity, so a slow group join is not mistaken for an
    idle topic); and when its lag is next due."""

    until_idle: float | None
    max_seconds: float | None
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    next_lag: float = 0.0

    def start(self) -> None:
        """The run begins now: `max_seconds` counts from here."""
        self.started = time.monotonic()
        self.next_lag = 0.0

    def active(self, now: float | None = None) -> None:
        """Something happened (now, unless `now` says when): `until_idle` counts from it."""
        self.last_activity = time.monotonic() if now is None else now

    def over(self, now: float, owning: bool) -> bool:
        """Whether the run is out of time, or idle while `owning` partitions."""
        if self.max_seconds and now - self.started >= self.max_seconds:
            return True
        idle = self.until_idle
        return idle is not None and owning and now - self.last_activity >= idle

    def lag_due(self, now: float) -> bool:
        """Whether to report lag now; if so, the next report is due LAG_EVERY_SECONDS on."""
        if now < self.next_lag:
            return False
        self.next_lag = now + LAG_EVERY_SECONDS
        return True


class MicroBatches:
    """One consumer's messages, batch by batch."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._carried: list[Message] = []

    def collect(self, limit: int, window_seconds: float, stopping: Callable[[], bool]
                ) -> list[Message]:
        """Up to `limit` messages, waiting at most `window_seconds` after the first one
        arrived (and at most `FIRST_WAIT_SECONDS` for a first one); returns early once
        `stopping()`."""
        messages, self._carried = self._carried, []
        messages.extend(
            self.consumer.consume(max(limit - len(messages), 1), timeout=FIRST_WAIT_SECONDS))
        if not messages:
            return messages
        deadline = time.monotonic() + window_seconds
        while len(messages) < limit and not stopping():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self.consumer.consume(limit - len(messages), timeout=remaining)
            if not more:
                break
            messages.extend(more)
        return messages

    def keep_membership(self) -> None:
        """Poll with the partitions paused, so the group does not drop a member waiting on
        Redis; a message that was already fetched is kept for the next batch."""
        self.consumer.pause(self.consumer.assignment())
        try:
            message = self.consumer.poll(0)
            if message is not None:
                self._carried.append(message)
        finally:
            self.consumer.resume(self.consumer.assignment())

    def wait_for_redis(
        self,
        call: Callable[[], Result],
        stopping: Callable[[], bool],
        errors: Counter,
        left_note: str,
    ) -> Result | Stopped:
        """`call()`, retried with backoff while Redis is unavailable and keeping the group
        membership meanwhile; STOPPED (after logging `left_note`, what happens to the batch
        in hand) if `stopping()` first."""

        def give_up(error: Exception, delay: float) -> bool:
            log.warning("redis unavailable, retrying in %.2fs: %s", delay, error)
            if stopping():
                log.info(left_note)
                return True
            return False

        return _until_answered(call, errors, give_up, self.keep_membership)


def wait_for_redis_on_assignment(
    call: Callable[[], Result], stopping: Callable[[], bool], errors: Counter
) -> Result | Stopped:
    """`call()` inside a rebalance callback, retried with backoff while Redis is
    unavailable (no polling here: the callback runs inside one); STOPPED if `stopping()`
    first."""

    def give_up(error: Exception, _delay: float) -> bool:
        if stopping():
            return True
        log.warning("redis unavailable on assignment, retrying: %s", error)
        return False

    return _until_answered(call, errors, give_up, lambda: None)


def _until_answered(
    call: Callable[[], Result],
    errors: Counter,
    give_up: Callable[[Exception, float], bool],
    between: Callable[[], None],
) -> Result | Stopped:
    """The backoff both waits share: count each failed attempt in `errors`, ask `give_up`
    (which logs as its wait needs) whether to stop, else sleep, run `between` and retry."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return call()
        except REDIS_UNAVAILABLE as error:
            errors.inc()
            if give_up(error, delay):
                return STOPPED
        time.sleep(delay)
        between()
        delay = min(delay * 2, RETRY_MAX_SECONDS)


def raise_if_fatal(error: KafkaError) -> None:
    """A consumer error in a batch: the end of a partition is no error, a fatal one ends
    the run, any other is logged and the batch goes on without that message."""
    if error.code() == KafkaError._PARTITION_EOF:
        return
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka error: %s", error)


def describe(partitions: list[TopicPartition]) -> str:
    """Partitions as the assignment logs name them: `topic[partition]`, comma-separated."""
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
