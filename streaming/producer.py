"""Send a generator's synthetic traffic to Kafka, as fast as possible or at a target rate.

The producer is tuned for throughput (large lingering batches, lz4 compression) without
giving up safety: `acks=all` and idempotence, so a retried request never duplicates a
message. Nothing is dropped: a full local queue is drained by polling and the message is
sent again, and any message the broker finally refuses makes `produce` raise after the
flush, with the count and the first error.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Full, Queue
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from lakehouse.settings import Settings
from streaming.generators import DomainGenerator, EventBatch

THROUGHPUT_CONFIG: dict[str, Any] = {
    "linger.ms": 25,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "lz4",
    "acks": "all",
    "enable.idempotence": True,
    # Only failures call back into Python: a callback per message would cost ~20% throughput.
    "delivery.report.only.error": True,
}
"""Producer defaults; anything in KAFKA_CLIENT_CONFIG (via `Settings.kafka_config`) wins."""

FLUSH_TIMEOUT_S = 120.0
PACING_SLICE_S = 0.01

DeliveryErrorHandler = Callable[[KafkaError, Message], None]


class DeliveryError(RuntimeError):
    """Some messages were not delivered: the run is incomplete and must not pass as done."""


@dataclass
class ProduceReport:
    """What a `produce` run delivered, per topic, and how long it took."""

    per_topic: dict[str, int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.per_topic.values())

    @property
    def rate(self) -> float:
        """Delivered events per second, flush included."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


def producer_config(settings: Settings) -> dict[str, Any]:
    """The throughput defaults overlaid with the platform's Kafka settings."""
    return {**THROUGHPUT_CONFIG, **settings.kafka_config()}


class _Failures:
    """Counts delivery failures (librdkafka calls back only for those) and keeps the first."""

    def __init__(self, forward: DeliveryErrorHandler | None) -> None:
        self.count = 0
        self.first: KafkaError | None = None
        self.forward = forward

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        self.count += 1
        if self.first is None:
            self.first = error
        if self.forward is not None:
            self.forward(error, message)


class _Pacer:
    """Token-bucket pacing: never get ahead of `rate` events per second since the start."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.start = time.perf_counter()
        self.sent = 0

    def slices(self, size: int) -> Iterator[tuple[int, int]]:
        """Split `size` messages into slices of about 10 ms each, waiting before each one."""
        if self.rate is None:
            yield 0, size
            self.sent += size
            return
        step = max(1, int(self.rate * PACING_SLICE_S))
        for lo in range(0, size, step):
            hi = min(lo + step, size)
            delay = self.start + self.sent / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield lo, hi
            self.sent += hi - lo


def _send(producer: Producer, batch: EventBatch, lo: int, hi: int) -> None:
    """Queue messages [lo, hi) of a batch, waiting for queue space rather than dropping."""
    produce, topic = producer.produce, batch.topic
    for key, value in zip(batch.keys[lo:hi], batch.values[lo:hi], strict=True):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let deliveries drain it
    producer.poll(0)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _: None
        return
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("produce", total=total)
        yield lambda n: bar.advance(task, n)


def _prefetch(batches: Iterator[EventBatch], depth: int = 4) -> Iterator[EventBatch]:
    """Generate on a background thread while the caller sends.

    Encoding is mostly numpy and Arrow work that releases the GIL, so it overlaps with the
    producer loop and librdkafka's threads on a second core.
    """
    done = object()
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(batch, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as error:  # re-raised in the consumer thread
            queue.put(error)

    thread = threading.Thread(target=work, name="generate", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def default_batch_size(rate: float | None) -> int:
    """20,000 messages a batch, or about 100 ms of traffic when pacing (fresh live stamps)."""
    if rate is None:
        return 20_000
    return max(1, min(20_000, int(rate / 10)))


def produce(settings: Settings, generator: DomainGenerator, n_events: int, *,
            rate: float | None = None, progress: bool = True,
            on_delivery_error: DeliveryErrorHandler | None = None,
            batch_size: int | None = None) -> ProduceReport:
    """Generate `n_events` and send them to their topics; raise if any is not delivered.

    `rate` paces sending to that many events per second (None: as fast as possible).
    `on_delivery_error(error, message)` is called for each failed message as it fails;
    either way, failures raise `DeliveryError` once everything has been flushed.
    """
    failures = _Failures(on_delivery_error)
    producer = Producer({**producer_config(settings), "on_delivery": failures})
    pacer = _Pacer(rate)
    per_topic: Counter[str] = Counter()
    started = time.perf_counter()
    with _progress(progress, n_events) as advance:
        batches = generator.batches(n_events, batch_size or default_batch_size(rate))
        # Paced (live) traffic is generated just in time, so its stamps stay fresh.
        for batch in batches if rate is not None else _prefetch(batches):
            for lo, hi in pacer.slices(len(batch.values)):
                _send(producer, batch, lo, hi)
            per_topic[batch.topic] += len(batch.values)
            advance(len(batch.values))
        remaining = producer.flush(FLUSH_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if remaining:
        raise DeliveryError(f"{remaining} of {n_events} messages still undelivered after "
                            f"{FLUSH_TIMEOUT_S:.0f} s flush to {settings.kafka_bootstrap_servers}")
    if failures.count:
        raise DeliveryError(f"{failures.count} of {n_events} messages failed delivery to "
                            f"{settings.kafka_bootstrap_servers}; first error: {failures.first}")
    return ProduceReport(dict(per_topic), seconds)
