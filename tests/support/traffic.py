"""Deterministic test traffic and readers for what landed, independent of the generators."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message, Producer
from deltalake import DeltaTable

from lakehouse.catalog import CATALOG, QUARANTINE, table_uri
from lakehouse.settings import Settings

Kafka = tuple[int, int]  # (partition, offset)


def click_event(number: int) -> bytes:
    """A valid clickstream event whose event_id is `c{number}`."""
    return orjson.dumps(
        {
            "event_id": f"c{number}",
            "event_time": f"2026-11-23T{number // 3_600_000 % 24:02d}:00:00.{number % 10**6:06d}Z",
            "user_id": number % 997,
            "session_id": f"s{number // 10}",
            "event_type": "product_view",
            "page": "product",
            "product_id": number % 5000,
            "category": "books",
            "price": 12.5,
            "device": "web",
            "experiment_id": "exp-1",
            "variant": "control",
        }
    )


def producer(settings: Settings) -> Producer:
    """A producer that retries through broker outages rather than dropping messages."""
    return Producer(
        {
            **settings.kafka_config(),
            "linger.ms": 10,
            "acks": "all",
            "enable.idempotence": False,
            "message.timeout.ms": 300_000,
        }
    )


def produce(
    settings: Settings,
    topic: str,
    values: Iterable[bytes | None],
    client: Producer | None = None,
) -> int:
    """Produce values keyed round-robin over partitions; raise if any delivery failed."""
    client = client or producer(settings)
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    count = 0
    for count, value in enumerate(values, start=1):
        while True:
            try:
                client.produce(topic, value, key=str(count).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                client.poll(0.05)
        if count % 10_000 == 0:
            client.poll(0)
    remaining = client.flush(120)
    if remaining or failures:
        raise RuntimeError(f"{remaining} undelivered, failures: {failures[:3]}")
    return count


class SteadyTraffic(threading.Thread):
    """Produces clickstream events c{start}, c{start+1}... at `rate` per second.

    Stops after `total` events or when `finish()` is called; `produced` then says how many
    were delivered (all of them acknowledged by the broker).
    """

    def __init__(
        self, settings: Settings, rate: float, total: int | None = None, start: int = 0
    ) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate, self.total, self.start_at = settings, rate, total, start
        self.produced = 0
        self.error: BaseException | None = None
        self._finish = threading.Event()

    def finish(self) -> int:
        """Stop producing, wait for the last chunk to be acknowledged; return the count."""
        self._finish.set()
        self.join()
        if self.error is not None:
            raise self.error
        return self.produced

    def complete(self) -> int:
        """Wait until all `total` events are produced and acknowledged; return the count."""
        assert self.total is not None, "complete() needs a total; use finish()"
        self.join()
        if self.error is not None:
            raise self.error
        return self.produced

    def expected_ids(self) -> set[str]:
        return {f"c{i}" for i in range(self.start_at, self.start_at + self.produced)}

    def run(self) -> None:
        try:
            client = producer(self.settings)
            began = time.monotonic()
            chunk = max(1, int(self.rate / 20))
            while not self._finish.is_set():
                if self.total is not None:
                    chunk = min(chunk, self.total - self.produced)
                    if chunk <= 0:
                        return
                first = self.start_at + self.produced
                numbers = range(first, first + chunk)
                self.produced += produce(
                    self.settings, "clickstream", map(click_event, numbers), client
                )
                ahead = began + self.produced / self.rate - time.monotonic()
                if ahead > 0:
                    self._finish.wait(ahead)
        except BaseException as error:  # surfaced by the test through finish()
            self.error = error


def bronze(settings: Settings, topic: str) -> pa.Table:
    """The bronze table of a topic as Arrow."""
    spec = CATALOG.bronze_for_topic(topic)
    return DeltaTable(
        table_uri(spec, settings), storage_options=settings.storage_options()
    ).to_pyarrow_table()


def quarantine(settings: Settings) -> pa.Table:
    """The quarantine table as Arrow."""
    uri = table_uri(QUARANTINE, settings)
    return DeltaTable(uri, storage_options=settings.storage_options()).to_pyarrow_table()


def assert_exactly_once(settings: Settings, topic: str, expected_ids: set[str]) -> None:
    """Every expected event landed once: no loss, no duplicate."""
    ids = bronze(settings, topic).column("event_id").to_pylist()
    duplicates = len(ids) - len(set(ids))
    missing = expected_ids - set(ids)
    unexpected = set(ids) - expected_ids
    assert not missing and not duplicates and not unexpected, (
        f"{len(missing)} lost (e.g. {sorted(missing)[:5]}), {duplicates} duplicated, "
        f"{len(unexpected)} unexpected, {len(ids)} landed of {len(expected_ids)}"
    )


def wait_for_rows(settings: Settings, topic: str, rows: int, timeout: float) -> None:
    """Poll the bronze table until it holds `rows` rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if bronze(settings, topic).num_rows >= rows:
                return
        except Exception:  # table not created yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{topic}: fewer than {rows} rows after {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM a process and wait for its graceful exit code."""
    process.terminate()
    return process.wait(timeout=timeout)


@dataclass(frozen=True)
class Record:
    """One message to produce, every field under the test's control (timestamp 0: now)."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = 0
    partition: int | None = None


def produce_records(settings: Settings, topic: str, records: Iterable[Record]) -> list[Kafka]:
    """Produce records in order; return each one's (partition, offset) as the broker
    acknowledged it. Raise if any delivery failed."""
    client = producer(settings)
    placed: dict[int, Kafka] = {}
    failures: list[str] = []

    def on_delivery(number: int) -> Callable[[object, Message], None]:
        def record(error: object, message: Message) -> None:
            if error is not None:
                failures.append(str(error))
            else:
                placed[number] = (message.partition(), message.offset())

        return record

    for count, record in enumerate(records):
        extra: dict[str, object] = {}
        if record.partition is not None:
            extra["partition"] = record.partition
        client.produce(
            topic,
            record.value,
            key=record.key,
            headers=list(record.headers),
            timestamp=record.timestamp,
            on_delivery=on_delivery(count),
            **extra,
        )
    remaining = client.flush(120)
    if remaining or failures:
        raise RuntimeError(f"{remaining} undelivered, failures: {failures[:3]}")
    return [placed[number] for number in sorted(placed)]


def landed_offsets(settings: Settings, topic: str) -> tuple[list[Kafka], list[Kafka]]:
    """(partition, offset) of every bronze row of `topic` and every quarantine row."""
    table = bronze(settings, topic)
    rows = list(
        zip(
            table.column("_kafka_partition").to_pylist(),
            table.column("_kafka_offset").to_pylist(),
            strict=True,
        )
    )
    poison = quarantine(settings)
    poison = poison.filter(pc.equal(poison.column("topic"), topic))
    partitions, offsets = poison.column("partition"), poison.column("offset")
    rejected = list(zip(partitions.to_pylist(), offsets.to_pylist(), strict=True))
    return rows, rejected
