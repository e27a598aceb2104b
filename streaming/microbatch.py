"""Micro-batches from a Kafka consumer, for the stream processors that apply a batch and
its offsets to Redis in one step (the session-features and the IoT alert processors).

confluent-kafka's `consume(n, timeout)` returns as soon as anything is there; a processor
wants a batch that is full or old enough, so this waits for more within a window. While
a processor waits on Redis it must keep polling or the group drops it; a message fetched
then is carried into the next batch, never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Message

from lakehouse.settings import Settings

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
