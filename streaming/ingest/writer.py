"""Decode one topic's batches and commit them: poison to the quarantine, then data to bronze.

`TopicWriter.prepare` decodes a batch and builds both tables' rows without touching any
table, so the worker can decode batch N+1 while batch N commits; `TopicWriter.commit`
writes them under the fencing rules of `sink.py`. docs/ingest.md has the protocol.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from confluent_kafka import Message

from lakehouse import schemas
from lakehouse.catalog import CATALOG, QUARANTINE
from lakehouse.settings import Settings
from streaming.ingest import metrics
from streaming.ingest.decode import BatchDecoder, Decoded, Reason
from streaming.ingest.provenance import with_provenance
from streaming.ingest.sink import CommitResult, PartitionedDeltaSink, PartitionRange
from streaming.ingest.timestamps import kafka_timestamps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unreadable:
    """An offset the consumer kept failing to read (see the worker's consumer errors): it is
    quarantined without its bytes, which were never received."""

    partition: int
    offset: int
    key: bytes | None
    timestamp: tuple[int, int]  # Kafka's (type, milliseconds), as on a Message
    detail: str


@dataclass
class Batch:
    """Messages of one topic taken from the buffer, with the offset range per partition.

    Every offset in a range is either one of `messages` or one of `unreadable` (or does
    not exist: offsets are not contiguous in general).
    """

    topic: str
    messages: list[Message]
    ranges: dict[int, PartitionRange]
    unreadable: list[Unreadable] = field(default_factory=list)


@dataclass
class FlushOutcome:
    """The result of writing one batch."""

    topic: str
    consumed: int
    data: CommitResult
    quarantined: int


@dataclass
class Prepared:
    """A decoded batch ready to commit: bronze rows, quarantine rows, decode seconds."""

    batch: Batch
    decoded: Decoded
    rows: pa.Table
    rejects: pa.Table | None
    seconds: float


class TopicWriter:
    """Decodes one topic's batches and commits them to its bronze table and the quarantine."""

    def __init__(self, topic: str, settings: Settings) -> None:
        spec = CATALOG.bronze_for_topic(topic)
        self.topic = topic
        self.schema = spec.schema
        self.decoder = BatchDecoder(CATALOG.topic(topic).event, settings.ingest_max_message_bytes)
        self.data = PartitionedDeltaSink(spec, settings, topic)
        self.quarantine = PartitionedDeltaSink(
            QUARANTINE, settings, topic, partition_column="partition", offset_column="offset"
        )
        # pyarrow imports pandas the first time it converts Python or NumPy values into
        # Arrow (with_provenance does, for every batch): about 1 s of CPU where bytecode is
        # not cached (PYTHONDONTWRITEBYTECODE). Pay it at start-up, not in the first flush.
        pa.array(np.zeros(1, dtype=np.int64))

    def prepare(self, batch: Batch) -> Prepared:
        """Decode and build the rows to commit; touches no table, so it may overlap a commit."""
        started = time.perf_counter()
        messages = batch.messages
        # `map` over the accessors: C-level calls, no Python frame per message.
        decoded = self.decoder.decode(list(map(Message.value, messages)))
        partitions = np.fromiter(map(Message.partition, messages), np.int32, len(messages))
        offsets = np.fromiter(map(Message.offset, messages), np.int64, len(messages))
        now = datetime.now(UTC)
        rejects = None
        if decoded.rejects or batch.unreadable:
            rejects = self._quarantine_rows(batch, decoded, partitions, offsets, now)
        rows = self._bronze_rows(decoded, partitions, offsets, now)
        return Prepared(batch, decoded, rows, rejects, time.perf_counter() - started)

    def commit(self, prepared: Prepared) -> FlushOutcome:
        """Quarantine first, then data: the data commit is what moves the resume point.

        A partition the quarantine refuses (its data has not reached the batch's base) is
        fenced for the data commit as well, so data never lands ahead of its poison.
        """
        started = time.perf_counter()
        batch, decoded = prepared.batch, prepared.decoded
        ranges = batch.ranges
        quarantined = 0
        refused: dict[int, int | None] = {}
        if prepared.rejects is not None:
            outcome = self.quarantine.commit_above_watermark(prepared.rejects, ranges, self.data)
            quarantined, refused = outcome.rows, outcome.fenced
            ranges = {p: span for p, span in ranges.items() if p not in refused}
            for reject in decoded.rejects:
                metrics.QUARANTINED.labels(self.topic, reject.reason.value).inc()
            if batch.unreadable:
                metrics.QUARANTINED.labels(self.topic, Reason.UNREADABLE.value).inc(
                    len(batch.unreadable)
                )
        result = self.data.commit_contiguous(prepared.rows, ranges)
        result.fenced.update(refused)
        elapsed = prepared.seconds + time.perf_counter() - started
        metrics.CONSUMED.labels(self.topic).inc(len(batch.messages))
        metrics.FLUSH_SECONDS.labels(self.topic).observe(elapsed)
        log.info(
            "flushed %d messages in %.3fs: %d rows at version %s, %d quarantined",
            len(batch.messages),
            elapsed,
            result.rows,
            result.version,
            quarantined,
            extra={"topic": self.topic, "table": self.data.spec.key},
        )
        metrics.WRITTEN.labels(self.topic).inc(result.rows)
        if result.fenced:
            metrics.FENCED.labels(self.topic).inc(len(result.fenced))
        return FlushOutcome(self.topic, len(batch.messages), result, quarantined)

    def _bronze_rows(
        self, decoded: Decoded, partitions: np.ndarray, offsets: np.ndarray, now: datetime
    ) -> pa.Table:
        kept = decoded.indices
        return with_provenance(decoded.table, partitions[kept], offsets[kept], now)

    def _quarantine_rows(
        self,
        batch: Batch,
        decoded: Decoded,
        partitions: np.ndarray,
        offsets: np.ndarray,
        now: datetime,
    ) -> pa.Table:
        """One row per reject and per unreadable offset; Python runs per poison message only."""
        index = np.fromiter((r.index for r in decoded.rejects), np.int64, len(decoded.rejects))
        picked = [batch.messages[i] for i in index.tolist()]
        lost = batch.unreadable
        count = len(picked) + len(lost)
        stamps = [m.timestamp() for m in picked] + [u.timestamp for u in lost]
        kinds = np.fromiter((kind for kind, _ in stamps), np.int64, count)
        millis = np.fromiter((value for _, value in stamps), np.int64, count)
        lost_reason = Reason.UNREADABLE.value
        return pa.table(
            {
                "topic": pa.repeat(pa.scalar(self.topic), count),
                "partition": pa.array(
                    np.concatenate([partitions[index], _ints([u.partition for u in lost])]),
                    pa.int32(),
                ),
                "offset": pa.array(
                    np.concatenate([offsets[index], _ints([u.offset for u in lost])]), pa.int64()
                ),
                "kafka_timestamp": kafka_timestamps(kinds, millis),
                "key": pa.array([m.key() for m in picked] + [u.key for u in lost], pa.binary()),
                "value": pa.array([m.value() for m in picked] + [None] * len(lost), pa.binary()),
                "reason": pa.array(
                    [r.reason.value for r in decoded.rejects] + [lost_reason] * len(lost),
                    pa.string(),
                ),
                "detail": pa.array(
                    [r.detail for r in decoded.rejects] + [u.detail for u in lost], pa.string()
                ),
                "quarantined_at": pa.repeat(pa.scalar(now, schemas.TIMESTAMP), count),
                "quarantine_date": pa.repeat(pa.scalar(now.date(), pa.date32()), count),
            },
            schema=schemas.QUARANTINE,
        )


def _ints(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)
