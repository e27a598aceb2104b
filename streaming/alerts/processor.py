"""The IoT alert processor: a consumer-group member over `sensor_readings` that raises and
closes alerts on `iot_alerts`, restart-safe.

Micro-batches of up to `iot_alerts_batch_events` readings or `iot_alerts_batch_ms`
milliseconds are decoded with the ingest sidecar's decoder (poison is counted, logged and
skipped) and handed, per partition, to that partition's `Detector`. Each partition's new
offset, detector state and alert records are then checkpointed in Redis in one atomic
script call (`store.py`, `checkpoint.lua`), and only then are the records produced to
Kafka; once Kafka confirms them the outbox is cleared. A crash before the checkpoint
re-reads the batch from the old state (the same records, byte for byte, since ids and
detection depend only on the readings and the operating limits in force); a crash after it
sends the outbox again on restart. Per-device operating limits (`limits.py`) are read from
`reference.device_limits` at start and every `iot_alerts_limits_refresh_seconds`.
Redis, not Kafka, records progress: committed offsets are only a lag hint.
The webhook is another loop (`webhook.py`) reading `iot_alerts`, so a slow or failing
receiver never holds this one up. docs/iot-alerts.md explains the design.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from lakehouse.catalog import IOT_ALERTS, SENSOR_READINGS
from lakehouse.settings import Settings
from streaming.alerts import metrics, state
from streaming.alerts.detector import Detector, DetectorConfig
from streaming.alerts.limits import LimitsWatch
from streaming.alerts.store import AlertStore, Outbox
from streaming.alerts.webhook import WebhookDelivery
from streaming.ingest.decode import BatchDecoder
from streaming.microbatch import (
    RETRY_MAX_SECONDS,
    STOPPED,
    MicroBatches,
    Result,
    RunClock,
    Stopped,
    checkpointing_consumer,
    describe,
    raise_if_fatal,
    wait_for_redis_on_assignment,
)

log = logging.getLogger(__name__)

PRODUCE_TIMEOUT_SECONDS = 10.0
DRAIN_SECONDS = 60.0


@dataclass
class AlertOptions:
    """How long the processor runs: `until_idle` seconds without a message (once it owns
    partitions), `max_seconds` in all, or until SIGTERM/SIGINT; `webhook`: run the
    delivery loop beside it when a webhook URL is configured."""

    until_idle: float | None = None
    max_seconds: float | None = None
    handle_signals: bool = True
    webhook: bool = True


@dataclass
class AlertReport:
    """What one run did."""

    consumed: int = 0
    invalid: int = 0
    repeated: int = 0
    bad: int = 0
    alerts: int = 0
    batches: int = 0
    fenced: int = 0
    delivered: int = 0
    seconds: float = 0.0


@dataclass
class _Partition:
    """An owned partition: the next offset to process (None: Redis had none, read from
    the start) and its detector."""

    position: int | None
    detector: Detector


class AlertProcessor:
    """One member of the alert processor's consumer group; `run()` returns when stopped,
    idle or out of time, having checkpointed (or dropped, to be read again) its last batch."""

    def __init__(self, settings: Settings, options: AlertOptions,
                 store: AlertStore | None = None) -> None:
        self.settings = settings
        self.options = options
        self.config = DetectorConfig.from_settings(settings)
        self.store = store or AlertStore(settings)
        self.topic = SENSOR_READINGS.name
        self.decoder = BatchDecoder(SENSOR_READINGS.event, settings.ingest_max_message_bytes)
        self.partitions: dict[int, _Partition] = {}
        self.limits = LimitsWatch(settings)
        self._limits_due = 0.0
        self.report = AlertReport()
        self._stopping = False
        self._clock = RunClock(options.until_idle, options.max_seconds)
        self._consumer = checkpointing_consumer(settings, settings.iot_alerts_group_id)
        self._batches = MicroBatches(self._consumer)
        self._producer = Producer(
            {
                **settings.kafka_config(),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "logger": logging.getLogger("librdkafka"),
            }
        )

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> AlertReport:
        """Consume, detect, checkpoint and produce until told to stop, idle or out of time."""
        self._clock.start()
        if self.options.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._request_stop)
        delivery = self._start_delivery()
        self._refresh_limits(time.monotonic())
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._clock.active()
        try:
            while not self._stopping:
                messages = self._batches.collect(
                    self.settings.iot_alerts_batch_events,
                    self.settings.iot_alerts_batch_ms / 1000,
                    lambda: self._stopping,
                )
                now = time.monotonic()
                if messages:
                    self._clock.active(now)
                    self._process(messages)
                metrics.beat()
                if now >= self._limits_due:
                    self._refresh_limits(now)
                if self._clock.over(now, bool(self.partitions)):
                    break
                if self._clock.lag_due(now):
                    self._report_lag()
        finally:
            self._consumer.close()
            self._producer.flush(PRODUCE_TIMEOUT_SECONDS)
            if delivery is not None:
                self._stop_delivery(*delivery)
        self.report.seconds = time.monotonic() - self._clock.started
        log.info(
            "stopped: %d readings, %d invalid, %d repeated, %d bad, %d alert records, "
            "%d batches, "
            "%d fenced, %d delivered in %.1fs",
            self.report.consumed, self.report.invalid, self.report.repeated, self.report.bad,
            self.report.alerts,
            self.report.batches, self.report.fenced, self.report.delivered, self.report.seconds,
        )
        return self.report

    def stop(self) -> None:
        """Ask `run()` to finish the batch in hand and return; safe from another thread."""
        self._stopping = True

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch and stopping", signum)
        self.stop()

    def _start_delivery(self) -> tuple[WebhookDelivery, threading.Thread] | None:
        if not (self.options.webhook and self.settings.iot_alerts_webhook_url):
            return None
        delivery = WebhookDelivery(self.settings)
        thread = threading.Thread(target=delivery.run, name="alerts-webhook", daemon=True)
        thread.start()
        return delivery, thread

    def _stop_delivery(self, delivery: WebhookDelivery, thread: threading.Thread) -> None:
        """Let the delivery loop drain what is there (when running until idle), but not wait
        on a webhook that stays down: what it has not delivered is read again next run."""
        delivery.stop_after(self.options.until_idle)
        thread.join(timeout=(self.options.until_idle or 0) + DRAIN_SECONDS)
        if thread.is_alive():
            log.warning("webhook still failing after %.0fs: stopping delivery", DRAIN_SECONDS)
            delivery.stop()
            thread.join(timeout=PRODUCE_TIMEOUT_SECONDS)
        self.report.delivered = delivery.delivered

    def _refresh_limits(self, now: float) -> None:
        """Load per-device operating limits if they changed and hand them to every owned
        partition's detector; a failed read keeps the ones in force (`LimitsWatch`)."""
        self._limits_due = now + self.settings.iot_alerts_limits_refresh_seconds
        if self.limits.refresh():
            for owned in self.partitions.values():
                owned.detector.use_limits(self.limits.limits)

    # --- one batch ---------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        began = time.perf_counter()
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                raise_if_fatal(error)
                continue
            owned = self.partitions.get(message.partition())
            if owned is None:
                continue  # no longer ours (revoked while the batch filled)
            batch = by_partition.setdefault(message.partition(), [])
            floor = owned.position if not batch else batch[-1].offset() + 1
            if floor is not None and message.offset() < floor:
                continue  # already processed: delivered again after a seek or re-assignment
            batch.append(message)
        now_us = time.time_ns() // 1000
        sent: list[tuple[int, int, Outbox]] = []
        for partition, batch in by_partition.items():
            outcome = self._detect(partition, batch, now_us)
            if outcome is not None:
                sent.append((partition, batch[-1].offset() + 1, outcome))
        if not sent:
            return
        published = self._publish([entry for _, _, outbox in sent for entry in outbox])
        for partition, next_offset, outbox in sent:
            if outbox and published:
                self._retry(lambda p=partition, o=next_offset: self.store.clear_outbox(
                    self.topic, p, o))
        self.report.batches += 1
        metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
        self._hint([(p, o) for p, o, _ in sent])

    def _detect(self, partition: int, batch: list[Message], now_us: int) -> Outbox | None:
        """Detect over one partition's messages and checkpoint; the outbox to produce, or
        None if the batch was fenced or the processor is stopping with Redis away."""
        owned = self.partitions[partition]
        decoded = self.decoder.decode([message.value() for message in batch])
        self._count_rejects(decoded.rejects, batch)
        # If Redis refuses the batch, `_fence` replaces this detector with what Redis holds.
        detector = owned.detector
        result = detector.process(decoded.table, now_us)
        outbox = [
            (str(record["device_id"]).encode(), orjson.dumps(record)) for record in result.records
        ]
        next_offset = batch[-1].offset() + 1
        stored = self._retry(lambda: self.store.checkpoint(
            self.topic, partition, owned.position, next_offset, state.dump(detector), outbox))
        if stored is STOPPED:
            return None
        if stored is not None:
            self._fence(partition, int(stored))
            return None
        owned.position = next_offset
        self.report.consumed += len(batch)
        self.report.invalid += result.invalid
        self.report.repeated += result.repeated
        self.report.alerts += len(result.records)
        metrics.READINGS.inc(result.readings)
        metrics.INVALID.inc(result.invalid)
        metrics.REPEATED.inc(result.repeated)
        for record in result.records:
            metrics.ALERTS.labels(record["rule"], record["state"]).inc()
        return outbox

    def _count_rejects(self, rejects: list, batch: list[Message]) -> None:
        if not rejects:
            return
        self.report.bad += len(rejects)
        reasons = Counter(reject.reason.value for reject in rejects)
        for reason, count in reasons.items():
            metrics.BAD.labels(reason).inc(count)
        where = batch[rejects[0].index]
        log.warning("%d bad records skipped (%s); first at [%d]@%d: %s", len(rejects),
                    dict(reasons), where.partition(), where.offset(), rejects[0].detail[:200])

    def _publish(self, outbox: Outbox) -> bool:
        """Produce alert records and wait until Kafka has them all (acks=all), retrying
        the ones it refused; False if told to stop first (the outbox in Redis keeps them
        for the restart)."""
        pending = list(outbox)
        delay = 0.05
        while pending:
            failed: list[tuple[bytes, bytes]] = []

            def report(error: KafkaError | None, message: Message,
                       failed: list[tuple[bytes, bytes]] = failed) -> None:
                if error is not None:
                    failed.append((message.key(), message.value()))

            for key, value in pending:
                self._producer.produce(IOT_ALERTS.name, value=value, key=key, on_delivery=report)
            remaining = self._producer.flush(PRODUCE_TIMEOUT_SECONDS)
            if remaining == 0 and not failed:
                return True
            log.warning("kafka took %d of %d alert records; retrying in %.2fs",
                        len(pending) - len(failed) - remaining, len(pending), delay)
            if self._stopping:
                log.info("stopping with alert records unsent; the outbox sends them on restart")
                return False
            pending = failed if remaining == 0 else pending
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
        return True

    def _retry(self, call: Callable[[], Result]) -> Result | Stopped:
        """Call Redis, retrying with backoff while it is unreachable; STOPPED if told to
        stop first."""
        return self._batches.wait_for_redis(
            call,
            lambda: self._stopping,
            metrics.REDIS_ERRORS,
            "stopping with Redis away; the batch is read again on restart",
        )

    def _fence(self, partition: int, stored: int) -> None:
        """Redis does not hold this batch's start: reload what it holds and read on from
        there (from the start if it lost the partition altogether)."""
        self.report.fenced += 1
        metrics.FENCED.inc()
        log.warning("partition %d fenced: redis holds offset %d", partition, stored)
        self._resume(partition)
        position = self.partitions[partition].position
        target = OFFSET_BEGINNING if position is None else position
        try:
            self._consumer.seek(TopicPartition(self.topic, partition, target))
        except KafkaException as error:
            log.warning("seek after fencing failed (%s); the partition is re-assigned", error)

    def _resume(self, partition: int) -> None:
        """Load a partition's checkpoint and send its outbox (records a crash may have left
        unsent; Kafka may get them twice, with the same ids)."""
        saved = self.store.load(self.topic, partition)
        limits = self.limits.limits
        detector = (state.load(saved.state, self.config, limits) if saved.state
                    else Detector(self.config, limits))
        self.partitions[partition] = _Partition(saved.offset, detector)
        if saved.outbox:
            log.info("partition %d: sending %d alert records left in the outbox",
                     partition, len(saved.outbox))
            if self._publish(saved.outbox):
                self.store.clear_outbox(self.topic, partition, saved.offset or 0)

    def _hint(self, done: list[tuple[int, int]]) -> None:
        """Commit the checkpointed offsets to Kafka, only as a hint for lag dashboards."""
        offsets = [TopicPartition(self.topic, p, o) for p, o in done]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            log.debug("offset hint not committed: %s", error)

    def _report_lag(self) -> None:
        for partition, owned in list(self.partitions.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                metrics.LAG.labels(str(partition)).set(max(high - (owned.position or 0), 0))

    # --- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Resume each partition from its checkpoint, assigning with explicit offsets so no
        fetch starts elsewhere."""
        for tp in partitions:
            resumed = wait_for_redis_on_assignment(
                lambda p=tp.partition: self._resume(p), lambda: self._stopping, metrics.REDIS_ERRORS
            )
            if resumed is STOPPED:
                return
            position = self.partitions[tp.partition].position
            tp.offset = OFFSET_BEGINNING if position is None else position
        consumer.assign(partitions)
        self._clock.active()
        log.info("assigned %s", describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp.partition, None)
        consumer.unassign()
        log.info("revoked %s", describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp.partition, None)
        log.warning("lost %s", describe(partitions))


def run_iot_alerts(settings: Settings, options: AlertOptions) -> AlertReport:
    """Serve metrics and health (if a port is set) and run one processor until it stops."""
    metrics.serve(settings.iot_alerts_metrics_port)
    return AlertProcessor(settings, options).run()
