"""What the consumer loop holds for one topic between flushes, and when it must flush it."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import Message

from streaming.ingest.sink import PartitionRange
from streaming.ingest.writer import Batch, Unreadable

TRANSIT_CREDIT_SECONDS = 1.0


@dataclass
class TopicBuffer:
    """Messages (and unreadable offsets) of one topic waiting for the next flush."""

    messages: list[Message] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    ranges: dict[int, PartitionRange] = field(default_factory=dict)
    flush_at: float = 0.0  # monotonic deadline for the time-based flush

    def holding(self) -> bool:
        return bool(self.messages or self.unreadable)

    def take(self, topic: str) -> Batch:
        batch = Batch(topic, self.messages, self.ranges, self.unreadable)
        self.messages, self.ranges, self.unreadable = [], {}, []
        return batch

    def drop(self, partitions: set[int]) -> None:
        """Forget what is held for these partitions (fenced or lost)."""
        if not any(p in self.ranges for p in partitions):
            return
        self.messages = [m for m in self.messages if m.partition() not in partitions]
        self.unreadable = [u for u in self.unreadable if u.partition not in partitions]
        for partition in partitions:
            self.ranges.pop(partition, None)


def flush_deadline(timestamp: tuple[int, int], now: float, wall: float, interval: float) -> float:
    """When a buffer opened by a message with this Kafka timestamp must be flushed.

    `interval` (INGEST_FLUSH_SECONDS) after the message arrived (`now`, monotonic), less the
    time it spent in transit (broker and fetch: `wall` minus its Kafka timestamp) up to
    `TRANSIT_CREDIT_SECONDS`: a longer transit means we are catching up on a backlog, where
    batches should fill to INGEST_FLUSH_ROWS rather than be cut by the clock. The timestamp
    is the producer's word: absent, zero, negative or far off either way it only moves the
    deadline within [now + interval - credit, now + interval].
    """
    kind, millis = timestamp
    transit = wall - millis / 1000 if kind and millis > 0 else 0.0
    return now + interval - min(max(transit, 0.0), TRANSIT_CREDIT_SECONDS, interval)
