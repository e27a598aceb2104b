"""The ingest sidecar: a Kafka consumer-group member landing topics in bronze Delta tables.

The main thread polls Kafka and buffers messages per topic; the commit pipeline
(`pipeline.py`, writers in `writer.py`) decodes and commits flushes in order, so the next
batch accumulates while the last one is written. The Delta log is the source of truth for
progress: on assignment a partition is read from the offset its bronze table records plus
one; Kafka's committed offsets are only advisory (for lag dashboards).

The worker is fail-stop: an error anywhere (a batch that fails to decode or commit, a
fatal Kafka error) stops it without flushing what it holds, and the error propagates so
the process exits non-zero; a restart resumes from the Delta log. Buffers are flushed
only on a clean stop (SIGTERM, `--until-idle`, `--max-seconds`). docs/ingest.md explains
the protocol.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from lakehouse.settings import Settings
from streaming.ingest import metrics
from streaming.ingest.buffer import TopicBuffer, flush_deadline
from streaming.ingest.pipeline import CommitPipeline
from streaming.ingest.read_errors import ReadFailures
from streaming.ingest.sink import PartitionRange
from streaming.ingest.writer import Batch, FlushOutcome, TopicWriter
from streaming.microbatch import describe

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
JOIN_WARNING_SECONDS = 60.0
# How often the consumer loop unfreezes and collects everything (see `IngestWorker.run`).
GC_FULL_SECONDS = 60.0
# A position no offset exceeds: while a partition is being re-read, the rest of the
# messages of the same poll are dropped by the ordinary duplicate check.
_HOLD = 2**63 - 1


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
class IngestOptions:
    """How long and how one worker runs."""

    topics: list[str]
    until_idle: bool = False
    max_seconds: float | None = None
    poll_batch: int = 10_000
    handle_signals: bool = True


class IngestWorker:
    """One consumer-group member; `run()` returns when stopped, idle or out of time, and
    raises (having committed nothing after the failure) when something fails."""

    def __init__(self, settings: Settings, options: IngestOptions) -> None:
        self.settings = settings
        self.options = options
        self.writers = {topic: TopicWriter(topic, settings) for topic in options.topics}
        self.buffers = {topic: TopicBuffer() for topic in options.topics}
        # Last offset handed to a batch per assigned partition (None: read from the start).
        self.positions: dict[TopicPartitionKey, int | None] = {}
        self.report = IngestReport()
        self._pipeline = CommitPipeline()
        # Fenced partitions: seek back to what the table records, dropping the buffer.
        self._rewinds: dict[TopicPartitionKey, int | None] = {}
        # Partitions with a consumer error: seek back to just after their position.
        self._rereads: set[TopicPartitionKey] = set()
        self._read_failures = ReadFailures()
        # Partitions whose end the consumer has reached, with the end offset seen then.
        self._at_end: dict[TopicPartitionKey, int] = {}
        self._assigned_at: float | None = None
        self._stopping = False
        self._failed = False
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
        """Consume, buffer and flush until told to stop; on a clean stop, land everything
        held before returning. On an error, abandon what is held and queued and raise."""
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
        # Buffered Kafka messages are GC-tracked and live until their flush: each would be
        # scanned by a young collection, and again by a middle one, for nothing (they form
        # no cycles). So every poll's messages are frozen once buffered (`_consume`), and
        # the young threshold sits above a poll's worth of them so that `consume()` itself
        # does not trigger collections midway. Freezing is O(1); frozen objects are still
        # freed by reference counting; a full collection every GC_FULL_SECONDS, after an
        # unfreeze, reclaims whatever cycles were frozen with them.
        gc.set_threshold(max(700, 2 * self.options.poll_batch), 10, 1000)
        try:
            self._consume(started)
            self._land_everything()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._close()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _consume(self, started: float) -> None:
        next_idle_check = next_watermark_check = 0.0
        next_full_collection = started + GC_FULL_SECONDS
        join_warning_at = started + JOIN_WARNING_SECONDS
        while not self._stopping:
            self._apply_rewinds()
            messages = self._consumer.consume(self.options.poll_batch, timeout=0.2)
            now = time.monotonic()
            if messages:
                self._buffer(messages, now)
                gc.freeze()  # the buffered messages: see `run`
            if now >= next_full_collection:
                next_full_collection = now + GC_FULL_SECONDS
                gc.unfreeze()
                gc.collect()
            self._collect(block=False)
            quiet = not messages
            self._flush_due(now, force=quiet and self.options.until_idle)
            if self.options.max_seconds and now - started >= self.options.max_seconds:
                return
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
                    return

    def stop(self) -> None:
        """Ask `run()` to flush what it holds and return; safe from another thread."""
        self._stopping = True

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %d: flushing and stopping", signum)
        self.stop()

    def _land_everything(self) -> None:
        """A clean stop: flush every buffer and wait for every commit."""
        if self.positions:
            self._flush_due(time.monotonic(), force=True)
        self._collect_all()

    def _abandon(self) -> None:
        """An error: commit nothing more. Buffered and queued batches are dropped; they are
        read again from the Delta log's offsets after a restart."""
        self._failed = True
        self._pipeline.abort()
        for topic, buffer in self.buffers.items():
            buffer.take(topic)
        log.error("stopping on an error: nothing buffered or queued is committed")

    def _close(self) -> None:
        try:
            self._pipeline.close()  # a commit already running finishes
        finally:
            self._consumer.close()

    def _buffer(self, messages: list[Message], now: float) -> None:
        """Append our new messages to their topic's buffer and extend its offset ranges.

        Most calls take `_buffer_in_bulk`, which decides for the whole call at once; the
        rest (errors, end-of-partition events, several topics, partitions we do not own,
        duplicates after a seek) take the loop below, which decides message by message.

        This loop runs once per message, so it does only what must be decided per message
        (errors, partitions we do not own, duplicates after a seek); each partition's range
        and each buffer's opening time are settled once per call, in `finally` so that
        buffered messages and ranges stay consistent even if an error is raised midway.
        A partition with a consumer error is held at `_HOLD` for the rest of the call, so
        its later messages are dropped as duplicates and read again after a seek.
        """
        if self._buffer_in_bulk(messages, now):
            return
        positions = self.positions
        at_end = self._at_end
        appends = {topic: buffer.messages.append for topic, buffer in self.buffers.items()}
        was_empty = {topic for topic, buffer in self.buffers.items() if not buffer.holding()}
        before: dict[TopicPartitionKey, int | None] = {}  # position before this call, per key
        held: dict[TopicPartitionKey, int | None] = {}  # real position of partitions on hold
        consumed = 0
        try:
            for message in messages:
                error = message.error()
                if error is not None:
                    consumed += self._on_consume_error(message, error, held, before)
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
            positions.update(held)
            for (topic, partition), position in before.items():
                buffer = self.buffers[topic]
                span = buffer.ranges.get(partition)
                base = span.base if span is not None else position
                buffer.ranges[partition] = PartitionRange(base, positions[(topic, partition)])
                if topic in was_empty:
                    buffer.flush_at = self._flush_deadline(buffer, now)
            self.report.consumed += consumed

    def _buffer_in_bulk(self, messages: list[Message], now: float) -> bool:
        """`_buffer` for the common call, with no Python loop per message: every message
        is a message (no error event) of one topic, on partitions we own, above their
        position and in offset order. Then every message is kept, and only the offset
        ranges need settling, once per partition. Returns False, having changed nothing,
        for any other call; the per-message loop then decides exactly as it always has.

        The per-message accessors run through `map` (C-level calls, about a third of the
        loop's cost per message; bench/ingest).
        """
        count = len(messages)
        if not count or any(map(Message.error, messages)):
            return False  # an error event (a KafkaError is truthy) or nothing at all
        topics = set(map(Message.topic, messages))
        topic = topics.pop()
        buffer = self.buffers.get(topic)
        if topics or buffer is None:
            return False
        try:
            partitions = np.fromiter(map(Message.partition, messages), np.int64, count)
            offsets = np.fromiter(map(Message.offset, messages), np.int64, count)
        except TypeError:  # a message without a partition or offset (None)
            return False
        lasts: dict[TopicPartitionKey, int] = {}
        for partition in np.unique(partitions).tolist():
            key = (topic, partition)
            if key not in self.positions:
                return False
            own = offsets[partitions == partition]
            position = self.positions[key]
            if (position is not None and own[0] <= position) or (np.diff(own) <= 0).any():
                return False
            lasts[key] = int(own[-1])
        opening = not buffer.holding()
        buffer.messages.extend(messages)
        for key, last in lasts.items():
            span = buffer.ranges.get(key[1])
            base = span.base if span is not None else self.positions[key]
            buffer.ranges[key[1]] = PartitionRange(base, last)
            self.positions[key] = last
            self._at_end.pop(key, None)
        if opening:
            buffer.flush_at = self._flush_deadline(buffer, now)
        self.report.consumed += count
        return True

    def _on_consume_error(
        self,
        message: Message,
        error: KafkaError,
        held: dict[TopicPartitionKey, int | None],
        before: dict[TopicPartitionKey, int | None],
    ) -> int:
        """Handle an error event from `consume()`; return 1 if it quarantined an offset.

        An error tied to a partition we own means a message may have been skipped (a
        corrupt record, a failed fetch), and the next message would extend the range past
        it; so the partition is read again from just after its position. Errors not tied
        to one of our partitions (broker down) are logged: librdkafka reconnects itself.
        """
        code = error.code()
        key = (message.topic(), message.partition())
        if code == KafkaError._PARTITION_EOF:
            if key in self.positions:
                self._at_end[key] = message.offset()
            return 0
        if code == KafkaError._AUTO_OFFSET_RESET:
            raise LakeAheadOfBrokerError(message.topic(), message.partition(), str(error))
        if error.fatal():
            raise RuntimeError(f"fatal Kafka error: {error}")
        if key not in self.positions:
            log.warning("kafka: %s", error, extra={"topic": message.topic()})
            return 0
        return self._reread(key, message, error, held, before)

    def _reread(
        self,
        key: TopicPartitionKey,
        message: Message,
        error: KafkaError,
        held: dict[TopicPartitionKey, int | None],
        before: dict[TopicPartitionKey, int | None],
    ) -> int:
        """Put a partition on hold to be read again from just after its position, or, once
        an offset has kept failing (`read_errors.py`), quarantine it as unreadable and move
        the position past it. Return 1 if an offset was quarantined."""
        position = held[key] if key in held else self.positions[key]
        topic, partition = key
        lost = self._read_failures.give_up(key, message, error, position)
        where = {"topic": topic, "partition": partition}
        if lost is None:
            log.warning(
                "kafka error on an owned partition, reading it again after offset %s: %s",
                position,
                error,
                extra=where,
            )
        else:
            before.setdefault(key, position)
            self.buffers[topic].unreadable.append(lost)
            position = lost.offset
            log.error("offset %d quarantined as unreadable: %s", lost.offset, error, extra=where)
        held[key] = position
        self.positions[key] = _HOLD
        self._rereads.add(key)
        return int(lost is not None)

    def _flush_due(self, now: float, force: bool = False) -> None:
        for topic, buffer in self.buffers.items():
            if not buffer.holding():
                continue
            full = len(buffer.messages) >= self.settings.ingest_flush_rows
            if force or full or now >= buffer.flush_at:
                self._submit(buffer.take(topic))

    def _flush_deadline(self, buffer: TopicBuffer, now: float) -> float:
        """When the buffer, just opened, must be flushed (see `flush_deadline`)."""
        first = buffer.messages[0].timestamp() if buffer.messages else (0, -1)
        return flush_deadline(first, now, time.time(), self.settings.ingest_flush_seconds)

    def _submit(self, batch: Batch) -> None:
        while self._pipeline.full():
            self._collect(block=True)
        self._pipeline.submit(self.writers[batch.topic], batch)

    def _collect(self, block: bool) -> None:
        while (outcome := self._pipeline.next_outcome(block)) is not None:
            self._apply_outcome(outcome)
            block = False

    def _collect_all(self) -> None:
        while len(self._pipeline):
            self._collect(block=True)

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
        """Seek fenced partitions we still own back to what their table records (dropping
        what is buffered for them), and partitions with a consumer error back to just after
        their position (keeping it)."""
        for key, recorded in self._rewinds.items():
            if key not in self.positions:
                continue
            self.buffers[key[0]].drop({key[1]})
            self.positions[key] = recorded
            self._read_failures.forget(key)
            self._seek(key, recorded)
        for key in self._rereads - self._rewinds.keys():
            if key in self.positions:
                self._seek(key, self.positions[key])
        self._rewinds.clear()
        self._rereads.clear()

    def _seek(self, key: TopicPartitionKey, position: int | None) -> None:
        self._at_end.pop(key, None)
        target = position + 1 if position is not None else OFFSET_BEGINNING
        self._consumer.seek(TopicPartition(key[0], key[1], target))

    def _caught_up(self) -> bool:
        """Every assigned partition drained to its end and everything read is committed."""
        if self._assigned_at is None or len(self._pipeline) or self._rewinds or self._rereads:
            return False
        if not self._owns_everything() and not self._group_settled():
            return False
        if any(buffer.holding() for buffer in self.buffers.values()):
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
                _, high = self._consumer.get_watermark_offsets(assigned, timeout=10, cached=False)
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
        log.info("assigned %s", describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """We still own the partitions until this returns: land what we have for them."""
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not self._failed:  # after an error (the consumer closing), commit nothing more
            for topic in {topic for topic, _ in revoked}:
                if self.buffers[topic].holding():
                    self._submit(self.buffers[topic].take(topic))
            self._collect_all()
        self._forget(revoked)
        consumer.unassign()
        log.info("revoked %s", describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Someone else may own these already: drop their buffers; fencing stops stale commits."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        for topic in {topic for topic, _ in lost}:
            self.buffers[topic].drop({p for t, p in lost if t == topic})
        self._forget(lost)
        log.warning("lost %s", describe(partitions))

    def _forget(self, keys: Iterable[TopicPartitionKey]) -> None:
        for key in keys:
            self.positions.pop(key, None)
            self._rewinds.pop(key, None)
            self._rereads.discard(key)
            self._read_failures.forget(key)
            self._at_end.pop(key, None)
