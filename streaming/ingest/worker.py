"""The ingest sidecar: a Kafka consumer-group member landing topics in bronze Delta tables.

The main thread polls Kafka and buffers messages per topic; a single writer thread
decodes and commits flushes in order, so the next batch accumulates while the last one
is written. The Delta log is the source of truth for progress: on assignment a partition
is read from the offset its bronze table records plus one; Kafka's committed offsets are
only advisory (for lag dashboards). docs/ingest.md explains the protocol.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from lakehouse import schemas
from lakehouse.catalog import CATALOG, QUARANTINE
from lakehouse.settings import Settings
from streaming.ingest import metrics
from streaming.ingest.decode import BatchDecoder, Decoded
from streaming.ingest.sink import CommitResult, PartitionedDeltaSink, PartitionRange

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
JOIN_WARNING_SECONDS = 60.0
TRANSIT_CREDIT_SECONDS = 1.0


class LakeAheadOfBrokerError(RuntimeError):
    """The bronze table records offsets the broker does not have: the topic was recreated
    (an embedded broker restarted with empty in-memory topics) or retention deleted data
    before it landed. Carrying on would silently skip or mis-assign messages."""

    def __init__(self, topic: str, partition: int, detail: str) -> None:
        super().__init__(
            f"{topic}[{partition}]: {detail}. The topic was recreated or truncated since "
            "this lake last landed it. Start from a fresh lake (`lakehouse reset`, or another "
            "LAKEHOUSE_ROOT) or, to accept the gap, remove the table's offsets by hand."
        )


@dataclass
class IngestReport:
    """What one worker did, for the CLI and the tests."""

    consumed: int = 0
    written: int = 0
    quarantined: int = 0
    commits: int = 0
    fenced: int = 0
    seconds: float = 0.0

    def add(self, other: IngestReport) -> None:
        """Fold another worker's report into this one."""
        self.consumed += other.consumed
        self.written += other.written
        self.quarantined += other.quarantined
        self.commits += other.commits
        self.fenced += other.fenced
        self.seconds = max(self.seconds, other.seconds)


@dataclass
class Batch:
    """Messages of one topic taken from the buffer, with the offset range per partition."""

    topic: str
    messages: list[Message]
    ranges: dict[int, PartitionRange]


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


@dataclass
class TopicBuffer:
    """Messages of one topic waiting for the next flush."""

    messages: list[Message] = field(default_factory=list)
    ranges: dict[int, PartitionRange] = field(default_factory=dict)
    flush_at: float = 0.0  # monotonic deadline for the time-based flush

    def take(self, topic: str) -> Batch:
        batch = Batch(topic, self.messages, self.ranges)
        self.messages, self.ranges = [], {}
        return batch


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

    def prepare(self, batch: Batch) -> Prepared:
        """Decode and build the rows to commit; touches no table, so it may overlap a commit."""
        started = time.perf_counter()
        messages = batch.messages
        decoded = self.decoder.decode([m.value() for m in messages])
        partitions = np.fromiter((m.partition() for m in messages), np.int32, len(messages))
        offsets = np.fromiter((m.offset() for m in messages), np.int64, len(messages))
        now = datetime.now(UTC)
        rejects = None
        if decoded.rejects:
            rejects = self._quarantine_rows(messages, decoded, partitions, offsets, now)
        rows = self._bronze_rows(decoded, partitions, offsets, now)
        return Prepared(batch, decoded, rows, rejects, time.perf_counter() - started)

    def commit(self, prepared: Prepared) -> FlushOutcome:
        """Quarantine first, then data: the data commit is what moves the resume point."""
        started = time.perf_counter()
        batch, decoded = prepared.batch, prepared.decoded
        quarantined = 0
        if prepared.rejects is not None:
            lasts = {p: span.last for p, span in batch.ranges.items()}
            quarantined = self.quarantine.commit_above_watermark(prepared.rejects, lasts).rows
            for reject in decoded.rejects:
                metrics.QUARANTINED.labels(self.topic, reject.reason.value).inc()
        result = self.data.commit_contiguous(prepared.rows, batch.ranges)
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
        table = decoded.table
        columns = [table.column(name) for name in table.column_names]
        event_time = table.column("event_time")
        columns += [
            pa.array(partitions[decoded.indices], pa.int32()),
            pa.array(offsets[decoded.indices], pa.int64()),
            pa.repeat(pa.scalar(now, schemas.TIMESTAMP), table.num_rows),
            pc.cast(event_time, pa.date32()),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _quarantine_rows(
        self,
        messages: list[Message],
        decoded: Decoded,
        partitions: np.ndarray,
        offsets: np.ndarray,
        now: datetime,
    ) -> pa.Table:
        picked = [messages[r.index] for r in decoded.rejects]
        index = np.asarray([r.index for r in decoded.rejects], dtype=np.int64)
        timestamps = [_kafka_time(m) for m in picked]
        return pa.table(
            {
                "topic": pa.array([self.topic] * len(picked), pa.string()),
                "partition": pa.array(partitions[index], pa.int32()),
                "offset": pa.array(offsets[index], pa.int64()),
                "kafka_timestamp": pa.array(timestamps, schemas.TIMESTAMP),
                "key": pa.array([m.key() for m in picked], pa.binary()),
                "value": pa.array([m.value() for m in picked], pa.binary()),
                "reason": pa.array([r.reason.value for r in decoded.rejects], pa.string()),
                "detail": pa.array([r.detail for r in decoded.rejects], pa.string()),
                "quarantined_at": pa.array([now] * len(picked), schemas.TIMESTAMP),
                "quarantine_date": pa.array([now.date()] * len(picked), pa.date32()),
            },
            schema=schemas.QUARANTINE,
        )


def _kafka_time(message: Message) -> datetime | None:
    kind, millis = message.timestamp()
    return datetime.fromtimestamp(millis / 1000, UTC) if kind and millis >= 0 else None


@dataclass
class IngestOptions:
    """How long and how one worker runs."""

    topics: list[str]
    until_idle: bool = False
    max_seconds: float | None = None
    poll_batch: int = 10_000
    handle_signals: bool = True


class IngestWorker:
    """One consumer-group member; `run()` returns when stopped, idle or out of time."""

    def __init__(self, settings: Settings, options: IngestOptions) -> None:
        self.settings = settings
        self.options = options
        self.writers = {topic: TopicWriter(topic, settings) for topic in options.topics}
        self.buffers = {topic: TopicBuffer() for topic in options.topics}
        # Last offset handed to a batch per assigned partition (None: read from the start).
        self.positions: dict[TopicPartitionKey, int | None] = {}
        self.report = IngestReport()
        # A two-stage pipeline of single threads: batch N+1 decodes while batch N commits
        # (the commit runs mostly in delta-rs, without the GIL); commits stay in order.
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoder")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delta-writer")
        self._inflight: list[Future[FlushOutcome]] = []
        self._rewinds: dict[TopicPartitionKey, int | None] = {}
        # Partitions whose end the consumer has reached, with the end offset seen then.
        self._at_end: dict[TopicPartitionKey, int] = {}
        self._assigned_at: float | None = None
        self._stopping = False
        self._consumer = Consumer(self._consumer_config())

    def _consumer_config(self) -> dict[str, object]:
        settings = self.settings
        return {
            **settings.kafka_config(),
            "group.id": settings.ingest_group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Every partition starts at an explicit offset from the Delta log; if the broker
            # no longer has it (topic recreated, retention ran ahead), fail loudly rather
            # than silently skip to some other offset.
            "auto.offset.reset": "error",
            # End-of-partition events tell `--until-idle` when a partition is drained; they
            # come from fetch responses, which (unlike ListOffsets on tansu) are exact.
            "enable.partition.eof": True,
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
            "partition.assignment.strategy": "roundrobin",
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            # librdkafka pauses a partition's fetching for fetch.queue.backoff.ms (1 s by
            # default) once its local queue holds queued.min.messages (100k by default):
            # that capped consumption at about 210k messages/s (bench/ingest). The prefetch
            # queue is bounded by size instead: 64 MiB is about 1 s of input at full speed;
            # 256 MiB only added 450 MB of resident memory, no throughput.
            "queued.max.messages.kbytes": 64 << 10,
            "queued.min.messages": 1_000_000,
            "fetch.queue.backoff.ms": 10,
            # librdkafka's own log lines go through Python logging, so they are JSON too.
            "logger": logging.getLogger("librdkafka"),
        }

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> IngestReport:
        """Consume, buffer and flush until told to stop; flush everything before returning."""
        started = time.monotonic()
        if self.options.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._request_stop)
        self._consumer.subscribe(
            self.options.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        # Everything allocated so far lives for the whole run; keep the collector off it.
        gc.freeze()
        # Buffered Kafka messages are GC-tracked and live until their flush; with the default
        # thresholds a full collection rescans all of them every ~70k allocations (13% of
        # the time in bench/ingest). Cycles are rare here, so full collections can be too.
        gc.set_threshold(700, 10, 1000)
        next_idle_check = next_watermark_check = 0.0
        join_warning_at = started + JOIN_WARNING_SECONDS
        try:
            while not self._stopping:
                self._apply_rewinds()
                messages = self._consumer.consume(self.options.poll_batch, timeout=0.2)
                now = time.monotonic()
                if messages:
                    self._buffer(messages, now)
                self._collect(block=False)
                quiet = not messages
                self._flush_due(now, force=quiet and self.options.until_idle)
                if self.options.max_seconds and now - started >= self.options.max_seconds:
                    break
                if self._assigned_at is None and now >= join_warning_at:
                    join_warning_at = now + JOIN_WARNING_SECONDS
                    log.warning(
                        "no partitions assigned after %.0fs; on the embedded broker a group "
                        "whose members all left at the same moment stays stuck (a tansu bug): "
                        "`lakehouse down && lakehouse up`, or another INGEST_GROUP_ID, clears it",
                        now - started,
                    )
                if now >= next_watermark_check:
                    next_watermark_check = now + 1.0
                    self._check_watermarks()
                if quiet and self.options.until_idle and now >= next_idle_check:
                    next_idle_check = now + 0.5
                    if self._caught_up():
                        break
        finally:
            self._shutdown()
        self.report.seconds = time.monotonic() - started
        return self.report

    def stop(self) -> None:
        """Ask `run()` to flush what it holds and return; safe from another thread."""
        self._stopping = True

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %d: flushing and stopping", signum)
        self.stop()

    def _buffer(self, messages: list[Message], now: float) -> None:
        """Append our new messages to their topic's buffer and extend its offset ranges.

        This loop runs once per message, so it does only what must be decided per message
        (errors, partitions we do not own, duplicates after a seek); each partition's range
        and each buffer's opening time are settled once per call, in `finally` so that
        buffered messages and ranges stay consistent even if an error is raised midway.
        """
        positions = self.positions
        at_end = self._at_end
        appends = {topic: buffer.messages.append for topic, buffer in self.buffers.items()}
        was_empty = {topic for topic, buffer in self.buffers.items() if not buffer.messages}
        before: dict[TopicPartitionKey, int | None] = {}  # position before this call, per key
        consumed = 0
        try:
            for message in messages:
                error = message.error()
                if error is not None:
                    self._on_consume_error(message, error)
                    continue
                topic = message.topic()
                key = (topic, message.partition())
                offset = message.offset()
                if key not in positions:
                    continue  # not ours (any more): a revoke or rewind raced this fetch
                position = positions[key]
                if position is not None and offset <= position:
                    continue  # already in a batch: duplicate delivery after a seek
                if at_end:
                    at_end.pop(key, None)
                if key not in before:
                    before[key] = position
                appends[topic](message)
                positions[key] = offset
                consumed += 1
        finally:
            for (topic, partition), position in before.items():
                buffer = self.buffers[topic]
                span = buffer.ranges.get(partition)
                base = span.base if span is not None else position
                buffer.ranges[partition] = PartitionRange(base, positions[(topic, partition)])
                if topic in was_empty:
                    buffer.flush_at = self._flush_deadline(buffer.messages[0], now)
            self.report.consumed += consumed

    def _on_consume_error(self, message: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            key = (message.topic(), message.partition())
            if key in self.positions:
                self._at_end[key] = message.offset()
            return
        if error.code() == KafkaError._AUTO_OFFSET_RESET:
            raise LakeAheadOfBrokerError(message.topic(), message.partition(), str(error))
        if error.fatal():
            raise RuntimeError(f"fatal Kafka error: {error}")
        # Broker outages surface here as transient errors; librdkafka reconnects by itself.
        log.warning("kafka: %s", error, extra={"topic": message.topic()})

    def _flush_due(self, now: float, force: bool = False) -> None:
        for topic, buffer in self.buffers.items():
            if not buffer.messages:
                continue
            full = len(buffer.messages) >= self.settings.ingest_flush_rows
            if force or full or now >= buffer.flush_at:
                self._submit(buffer.take(topic))

    def _flush_deadline(self, first: Message, now: float) -> float:
        """When a buffer opened by `first` must be flushed for freshness.

        INGEST_FLUSH_SECONDS after the message arrived, less the time it spent in transit
        (broker and fetch, from its Kafka timestamp) up to `TRANSIT_CREDIT_SECONDS`: a
        longer transit means we are catching up on a backlog, where batches should fill to
        INGEST_FLUSH_ROWS rather than be cut by the clock.
        """
        interval = self.settings.ingest_flush_seconds
        kind, millis = first.timestamp()
        transit = time.time() - millis / 1000 if kind and millis > 0 else 0.0
        return now + interval - min(max(transit, 0.0), TRANSIT_CREDIT_SECONDS, interval)

    def _submit(self, batch: Batch) -> None:
        # At most two batches queued behind the writer: bounded memory, and backpressure.
        while len(self._inflight) >= 2:
            self._collect(block=True)
        writer = self.writers[batch.topic]
        decoding = self._decoder.submit(writer.prepare, batch)
        self._inflight.append(self._executor.submit(lambda: writer.commit(decoding.result())))

    def _collect(self, block: bool) -> None:
        while self._inflight and (block or self._inflight[0].done()):
            outcome = self._inflight.pop(0).result()
            self._apply_outcome(outcome)
            block = False

    def _apply_outcome(self, outcome: FlushOutcome) -> None:
        result = outcome.data
        self.report.written += result.rows
        self.report.quarantined += outcome.quarantined
        if result.committed:
            self.report.commits += 1
            advisory = [
                TopicPartition(outcome.topic, p, last + 1)
                for p, last in result.committed.items()
                if (outcome.topic, p) in self.positions
            ]
            if advisory:
                self._consumer.commit(offsets=advisory, asynchronous=True)
        for partition, recorded in result.fenced.items():
            self.report.fenced += 1
            key = (outcome.topic, partition)
            log.warning(
                "partition fenced: another writer moved it to offset %s; rewinding",
                recorded,
                extra={"topic": outcome.topic, "partition": partition},
            )
            if key in self.positions:
                self._rewinds[key] = recorded

    def _apply_rewinds(self) -> None:
        """Seek fenced partitions we still own back to what their table records."""
        for (topic, partition), recorded in self._rewinds.items():
            if (topic, partition) not in self.positions:
                continue
            self._drop_buffered(topic, {partition})
            self.positions[(topic, partition)] = recorded
            self._at_end.pop((topic, partition), None)
            target = recorded + 1 if recorded is not None else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(topic, partition, target))
        self._rewinds.clear()

    def _drop_buffered(self, topic: str, partitions: set[int]) -> None:
        buffer = self.buffers[topic]
        if not any(p in buffer.ranges for p in partitions):
            return
        buffer.messages = [m for m in buffer.messages if m.partition() not in partitions]
        for partition in partitions:
            buffer.ranges.pop(partition, None)

    def _caught_up(self) -> bool:
        """Every assigned partition drained to its end and everything read is committed."""
        if self._assigned_at is None or self._inflight or self._rewinds:
            return False
        if not self._owns_everything() and not self._group_settled():
            return False
        if any(buffer.messages for buffer in self.buffers.values()):
            return False
        for key, position in self.positions.items():
            end = self._at_end.get(key)
            if end is None or (position is not None and position + 1 < end):
                return False
        return True

    def _owns_everything(self) -> bool:
        """Whether this member holds every partition of its topics."""
        metadata = self._consumer.list_topics(timeout=10)
        total = sum(len(metadata.topics[topic].partitions) for topic in self.options.topics)
        return len(self.positions) >= total

    def _group_settled(self) -> bool:
        """Long enough since the last rebalance for dead members to have been evicted.

        Partitions this member does not hold may belong to a crashed process whose session
        has not expired yet; once it has, the group rebalances and hands them out again.
        """
        assert self._assigned_at is not None
        settle = self.settings.kafka_session_timeout_ms / 1000 * 1.5 + 1.0
        return time.monotonic() - self._assigned_at >= settle

    def _check_watermarks(self) -> None:
        """Report lag, and refuse partitions whose recorded offset lies beyond the log's end.

        Uses the watermarks of the last fetch response (no broker round trip). Real Kafka
        answers a fetch past the end with OFFSET_OUT_OF_RANGE (see `auto.offset.reset`);
        the embedded broker just returns nothing, so the end offset is compared here.
        A cached watermark can be older than the position: a process paused for a while
        (a zombie) wakes with the watermarks of its last fetch while its fencing has moved
        the position on to what another member landed since. So the broker is asked
        afresh before a partition is refused.
        """
        for (topic, partition), position in self.positions.items():
            assigned = TopicPartition(topic, partition)
            _, high = self._consumer.get_watermark_offsets(assigned, cached=True)
            if high < 0:
                continue  # no fetch response yet
            landed = position + 1 if position is not None else 0
            if landed > high:
                _, high = self._consumer.get_watermark_offsets(
                    assigned, timeout=10, cached=False
                )
            if landed > high:
                detail = f"the lake records offset {position}, the log ends at {high}"
                raise LakeAheadOfBrokerError(topic, partition, detail)
            metrics.LAG.labels(topic, str(partition)).set(high - landed)

    # --- rebalances ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition right after the offset its bronze table records."""
        self._collect_all()
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        recorded: dict[TopicPartitionKey, int | None] = {}
        for topic, numbers in by_topic.items():
            for partition, version in self.writers[topic].data.recorded_offsets(numbers).items():
                recorded[(topic, partition)] = version
        for tp in partitions:
            version = recorded[(tp.topic, tp.partition)]
            tp.offset = version + 1 if version is not None else OFFSET_BEGINNING
            self.positions[(tp.topic, tp.partition)] = version
            self._at_end.pop((tp.topic, tp.partition), None)
        # Assigning with explicit offsets here means the fetch starts there: no seek race.
        consumer.assign(partitions)
        self._assigned_at = time.monotonic()
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """We still own the partitions until this returns: land what we have for them."""
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        for topic in {topic for topic, _ in revoked}:
            if self.buffers[topic].messages:
                self._submit(self.buffers[topic].take(topic))
        self._collect_all()
        self._forget(revoked)
        consumer.unassign()
        log.info("revoked %s", _describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Someone else may own these already: drop their buffers; fencing stops stale commits."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        for topic in {topic for topic, _ in lost}:
            self._drop_buffered(topic, {p for t, p in lost if t == topic})
        self._forget(lost)
        log.warning("lost %s", _describe(partitions))

    def _forget(self, keys: Iterable[TopicPartitionKey]) -> None:
        for key in keys:
            self.positions.pop(key, None)
            self._rewinds.pop(key, None)
            self._at_end.pop(key, None)

    def _collect_all(self) -> None:
        while self._inflight:
            self._collect(block=True)

    def _shutdown(self) -> None:
        try:
            if self.positions:
                self._flush_due(time.monotonic(), force=True)
            self._collect_all()
        finally:
            self._executor.shutdown(wait=True)  # queued commits wait on their decode
            self._decoder.shutdown(wait=True)
            self._consumer.close()


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
