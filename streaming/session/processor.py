"""The session processor: a consumer-group member over the shop topics that keeps each
user's session features in Redis, exactly once in effect.

Micro-batches of up to `session_features_batch_events` messages or
`session_features_batch_ms` milliseconds are decoded with the ingest sidecar's decoder
(poison is counted, logged and skipped), turned into feature deltas by
`lakehouse.features.ecommerce` (the definition the batch side shares), and applied with
their partitions' offsets in one atomic Redis script (`store.py`, `apply.lua`). Redis, not
Kafka, records progress: on assignment each partition starts at the offset Redis holds;
offsets committed to Kafka are only a hint for lag dashboards. docs/session-features.md
explains the design and its limits.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from lakehouse.catalog import TopicSpec
from lakehouse.features.ecommerce import (
    SESSION_TOPICS,
    FeatureDeltas,
    feature_deltas,
    session_events,
)
from lakehouse.settings import Settings
from streaming.ingest.decode import BatchDecoder
from streaming.microbatch import (
    STOPPED,
    MicroBatches,
    RunClock,
    checkpointing_consumer,
    describe,
    raise_if_fatal,
    wait_for_redis_on_assignment,
)
from streaming.session import metrics
from streaming.session.store import PART, ApplyResult, PartitionRange, SessionStore

log = logging.getLogger(__name__)

Key = tuple[str, int]


@dataclass
class SessionOptions:
    """How long the processor runs: `until_idle` seconds without a message (once it owns
    partitions), `max_seconds` in all, or until SIGTERM/SIGINT."""

    until_idle: float | None = None
    max_seconds: float | None = None
    handle_signals: bool = True


@dataclass
class SessionReport:
    """What one run did."""

    consumed: int = 0
    applied: int = 0
    bad: int = 0
    batches: int = 0
    fenced: int = 0
    seconds: float = 0.0


class SessionProcessor:
    """One member of the session-features consumer group; `run()` returns when stopped,
    idle or out of time, having applied (or dropped, to be read again) its last batch."""

    def __init__(
        self, settings: Settings, options: SessionOptions, store: SessionStore | None = None
    ) -> None:
        self.settings = settings
        self.options = options
        self.store = store or SessionStore(settings)
        self.topics = {topic.name: topic for topic in SESSION_TOPICS}
        self.decoders = {
            name: BatchDecoder(topic.event, settings.ingest_max_message_bytes)
            for name, topic in self.topics.items()
        }
        # Next offset to apply per owned partition (None: the first one the broker has).
        self.positions: dict[Key, int | None] = {}
        self.report = SessionReport()
        self._stopping = False
        self._clock = RunClock(options.until_idle, options.max_seconds)
        self._consumer = checkpointing_consumer(settings, settings.session_features_group_id)
        self._batches = MicroBatches(self._consumer)

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> SessionReport:
        """Consume and apply micro-batches until told to stop, idle or out of time."""
        self._clock.start()
        if self.options.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._request_stop)
        self._consumer.subscribe(
            list(self.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._clock.active()
        try:
            while not self._stopping:
                messages = self._batches.collect(
                    self.settings.session_features_batch_events,
                    self.settings.session_features_batch_ms / 1000,
                    lambda: self._stopping,
                )
                now = time.monotonic()
                if messages:
                    self._clock.active(now)
                    self._process(messages)
                if self._clock.over(now, bool(self.positions)):
                    break
                if self._clock.lag_due(now):
                    self._report_lag()
        finally:
            self._consumer.close()
        self.report.seconds = time.monotonic() - self._clock.started
        log.info(
            "stopped: %d consumed, %d applied, %d bad, %d batches, %d fenced in %.1fs",
            self.report.consumed,
            self.report.applied,
            self.report.bad,
            self.report.batches,
            self.report.fenced,
            self.report.seconds,
        )
        return self.report

    def stop(self) -> None:
        """Ask `run()` to apply the batch in hand and return; safe from another thread."""
        self._stopping = True

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch and stopping", signum)
        self.stop()

    # --- one batch ---------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        began = time.perf_counter()
        by_topic: dict[str, list[Message]] = {}
        ranges: dict[Key, list[int]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                raise_if_fatal(error)
                continue
            key = (message.topic(), message.partition())
            if key not in self.positions:
                continue  # no longer ours (revoked while the batch filled)
            position, offset = self.positions[key], message.offset()
            if position is not None and offset < position:
                continue  # already applied: delivered again after a seek
            span = ranges.get(key)
            if span is not None and offset <= span[1]:
                continue  # delivered twice within the batch (re-assigned while it filled)
            by_topic.setdefault(key[0], []).append(message)
            if span is None:
                ranges[key] = [offset, offset]
            else:
                span[1] = offset
        if not ranges:
            return
        # A partition's batch starts where its position is (what Redis recorded), so that
        # Redis fences it if another member applied that offset meanwhile.
        parts = []
        for (topic, partition), (first, last) in ranges.items():
            position = self.positions[(topic, partition)]
            start = first if position is None else position
            parts.append(PartitionRange(topic, partition, start, last + 1, position is None))
        index = {(p.topic, p.partition): number for number, p in enumerate(parts, start=1)}
        tables: dict[TopicSpec, pa.Table] = {}
        for name, batch in by_topic.items():
            tables[self.topics[name]] = self._decode(name, batch, index)
        self.report.consumed += sum(len(batch) for batch in by_topic.values())
        events = session_events(tables, keep=[PART])
        deltas = feature_deltas(events, by=[PART])
        result = self._apply(parts, deltas)
        if result is None:
            return
        for part in parts:
            key = (part.topic, part.partition)
            if key in result.fenced:
                self._fence(key, result.fenced[key])
            elif key in self.positions:
                self.positions[key] = part.next
        self.report.applied += result.applied
        self.report.batches += 1
        metrics.APPLIED.inc(result.applied)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
        self._hint(parts, result.fenced)

    def _decode(self, name: str, batch: list[Message], index: dict[Key, int]) -> pa.Table:
        """The decoded rows of one topic's messages with their `PART`; poison is counted
        and logged, never raised."""
        decoded = self.decoders[name].decode([message.value() for message in batch])
        if decoded.rejects:
            self.report.bad += len(decoded.rejects)
            reasons = Counter(reject.reason.value for reject in decoded.rejects)
            for reason, count in reasons.items():
                metrics.BAD.labels(name, reason).inc(count)
            first = decoded.rejects[0]
            where = batch[first.index]
            log.warning(
                "%d bad records skipped (%s); first at %s[%d]@%d: %s",
                len(decoded.rejects),
                dict(reasons),
                name,
                where.partition(),
                where.offset(),
                first.detail[:200],
            )
        numbers = np.fromiter(
            (index[(name, message.partition())] for message in batch), np.int64, len(batch)
        )
        return decoded.table.append_column(PART, pa.array(numbers[decoded.indices]))

    def _apply(self, parts: list[PartitionRange], deltas: FeatureDeltas) -> ApplyResult | None:
        """Apply to Redis, retrying with backoff while it is unreachable; None if told to
        stop first (nothing was applied: the batch is read again by the next run)."""
        result = self._batches.wait_for_redis(
            lambda: self.store.apply(parts, deltas),
            lambda: self._stopping,
            metrics.REDIS_ERRORS,
            "stopping with a batch not applied; it is read again on restart",
        )
        return None if result is STOPPED else result

    def _fence(self, key: Key, stored: int) -> None:
        """Redis does not hold this partition's batch start: read on from what it holds,
        or from the partition's start if it lost the offset (a restart without persistence
        rebuilds the features from what Kafka retains)."""
        self.report.fenced += 1
        metrics.FENCED.labels(key[0]).inc()
        if stored < 0:
            log.warning("redis lost the offset of %s[%d]: reading it from the start", *key)
            self.positions[key] = None
            target = OFFSET_BEGINNING
        else:
            log.warning("partition fenced %s[%d]: redis holds offset %d", key[0], key[1], stored)
            self.positions[key] = target = stored
        try:
            self._consumer.seek(TopicPartition(key[0], key[1], target))
        except KafkaException as error:
            log.warning("seek after fencing failed (%s); the partition is re-assigned", error)

    def _hint(self, parts: list[PartitionRange], fenced: dict[Key, int]) -> None:
        """Commit the applied offsets to Kafka, only as a hint for lag dashboards."""
        offsets = [
            TopicPartition(p.topic, p.partition, p.next)
            for p in parts
            if (p.topic, p.partition) not in fenced
        ]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as error:
                log.debug("offset hint not committed: %s", error)

    def _report_lag(self) -> None:
        for (topic, partition), position in list(self.positions.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                behind = high - (position or 0)
                metrics.LAG.labels(topic, str(partition)).set(max(behind, 0))

    # --- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition at the offset Redis records for it (the first the broker
        has if none), assigning with explicit offsets so no fetch starts elsewhere."""
        keys = [(tp.topic, tp.partition) for tp in partitions]
        stored = wait_for_redis_on_assignment(
            lambda: self.store.stored_offsets(keys), lambda: self._stopping, metrics.REDIS_ERRORS
        )
        if stored is STOPPED:
            log.info("stopping before redis answered; %s left unassigned", keys)
            return
        for tp in partitions:
            offset = stored[(tp.topic, tp.partition)]
            tp.offset = offset if offset is not None else OFFSET_BEGINNING
            self.positions[(tp.topic, tp.partition)] = offset
        consumer.assign(partitions)
        self._clock.active()
        log.info("assigned %s", describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
        consumer.unassign()
        log.info("revoked %s", describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
        log.warning("lost %s", describe(partitions))


def run_session_features(settings: Settings, options: SessionOptions) -> SessionReport:
    """Serve metrics (if a port is set) and run one processor until it stops."""
    metrics.serve_metrics(settings.session_features_metrics_port)
    return SessionProcessor(settings, options).run()
