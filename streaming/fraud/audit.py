"""The audit trail: every decided transaction and its decision, to Kafka, never lost.

The decision service calls `AuditTrail.record(transaction, decision)` after answering. It
queues two messages with confluent-kafka's producer and returns (a few microseconds; it
never blocks on Kafka and never raises): the transaction as received to `transactions`
(keyed by card, as the generator keys it) and the decision event to `fraud_decisions`
(keyed by transaction id; `decision_event` builds it, `docs/events.md` lists its fields).

Nothing is lost while the process lives or shuts down cleanly:

- A record Kafka does not acknowledge within `FRAUD_AUDIT_DELIVERY_TIMEOUT_MS` (broker
  down, partition leaderless), or that finds librdkafka's queue full, goes to the on-disk
  spool (`streaming/fraud/spool.py`): one set of files per process, bounded by
  `FRAUD_AUDIT_SPOOL_MAX_BYTES`.
- A background thread serves the delivery reports and, every `FRAUD_AUDIT_RETRY_SECONDS`
  while the spool holds anything, asks the broker for metadata; once it answers, the
  thread resends the spool one segment at a time, oldest first, including files that a
  closed or killed process left (claimed under a lock, so never by two processes). Each
  spooled record ends delivered or spooled again; a segment is deleted only then.
- `close()` (the service's shutdown, on SIGTERM; also registered with `atexit`) flushes
  for up to its timeout, then purges what is left and spools it.

**When the spool is full, records are dropped**: counted in
`fraud_audit_records_dropped_total{reason="spool_full"}` and logged as errors with the
running count (at once, then at most every 10 s). They are not in Kafka and never will
be. Size the bound for the longest outage you must survive (about 1 KB per transaction
and decision pair).

Exactly once is the lake's job, not the producer's: the producer runs without
`enable.idempotence` (the embedded broker's support for it is not established here), so a
record the broker stored but did not acknowledge in time (a timeout, a purge at close, a
crash while a segment is resent) is sent again and may be twice in bronze. The event ids
make that harmless: the transaction's `event_id`, and the decision's `event_id` which is
the transaction id; silver keeps one row per event id. A SIGKILL loses what was still in
librdkafka's memory (at most the delivery timeout's worth); what was spooled survives.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Gauge

from lakehouse.catalog import FRAUD_DECISIONS, TRANSACTIONS
from lakehouse.settings import Settings
from streaming.fraud.spool import Segment, Spool, SpooledRecord

log = logging.getLogger(__name__)

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 200_000,
    "reconnect.backoff.max.ms": 1000,  # back within a second of the broker's return
    "enable.idempotence": False,  # see the module docstring: silver dedups by event id
}
"""Producer defaults; `Settings.kafka_config()` (KAFKA_CLIENT_CONFIG included) wins."""

MAX_RETRY_SECONDS = 30.0
DROP_LOG_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 1.0
# Refusals no retry will change: the record is dropped (and logged), not spooled forever.
_PERMANENT = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
}

SPOOLED = Counter(
    "fraud_audit_records_spooled_total",
    "Audit records written to the on-disk spool, by why Kafka did not take them",
    ["reason"],
)
RESENT = Counter("fraud_audit_records_resent_total", "Audit records delivered from the spool")
DELIVERED = Counter(
    "fraud_audit_records_delivered_total", "Audit records delivered to Kafka at the first try"
)
DROPPED = Counter(
    "fraud_audit_records_dropped_total",
    "Audit records LOST: neither in Kafka nor in the spool, by reason",
    ["reason"],
)
SPOOL_BYTES = Gauge(
    "fraud_audit_spool_bytes", "Bytes waiting in the audit spool", multiprocess_mode="livesum"
)
PENDING = Gauge(
    "fraud_audit_pending_records",
    "Audit records in the producer's memory, waiting for the broker",
    multiprocess_mode="livesum",
)


@dataclass(frozen=True)
class AuditStats:
    """What one AuditTrail did with its records (two per `record` call)."""

    recorded: int = 0
    delivered: int = 0
    spooled: int = 0
    resent: int = 0
    dropped: int = 0


_STAT_NAMES = tuple(AuditStats.__dataclass_fields__)


def decision_event(
    transaction: Mapping[str, Any], decision: Mapping[str, Any], decided_at: datetime | None = None
) -> dict[str, Any]:
    """The `fraud_decisions` event of a decided transaction.

    From `transaction` (a `transactions` event): `event_id` (or `transaction_id`),
    `event_time`, `user_id`, `card_id`, `amount`, `merchant_category`, `channel`. From
    `decision` (the service's answer): `transaction_id` (optional), `decision`,
    `fraud_probability`, `rules_fired`, `reasons` (strings; anything else is kept as its
    JSON), `model_version`, `rules_version`, `degraded`, `missing` (default none),
    `latency_ms` (default: the sum of `stage_ms`), `decided_at` (default: `decided_at`
    or now).
    """
    transaction_id = (
        decision.get("transaction_id")
        or transaction.get("event_id")
        or transaction.get("transaction_id")
    )
    latency = decision.get("latency_ms")
    if latency is None and isinstance(decision.get("stage_ms"), Mapping):
        latency = float(sum(decision["stage_ms"].values()))
    when = decision.get("decided_at") or iso_utc(decided_at or datetime.now(UTC))
    return {
        "event_id": transaction_id,
        "event_time": when,
        "transaction_id": transaction_id,
        "transaction_time": transaction.get("event_time"),
        "user_id": transaction.get("user_id"),
        "card_id": transaction.get("card_id"),
        "amount": transaction.get("amount"),
        "merchant_category": transaction.get("merchant_category"),
        "channel": transaction.get("channel"),
        "decision": decision.get("decision"),
        "fraud_probability": decision.get("fraud_probability"),
        "rules_fired": [str(rule) for rule in decision.get("rules_fired") or ()],
        "reasons": [_text(reason) for reason in decision.get("reasons") or ()],
        "model_version": decision.get("model_version"),
        "rules_version": decision.get("rules_version"),
        "degraded": bool(decision.get("degraded", False)),
        "missing": [str(what) for what in decision.get("missing") or ()],
        "latency_ms": latency,
    }


class AuditTrail:
    """Produces each decided transaction and its decision; one per service process,
    created in the process that uses it (after any fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._spool = Spool(settings.fraud_audit_spool, settings.fraud_audit_spool_max_bytes)
        self._producer = Producer(
            {
                **PRODUCER_CONFIG,
                "message.timeout.ms": settings.fraud_audit_delivery_timeout_ms,
                **settings.kafka_config(),
                "on_delivery": self._on_delivery,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        self._gate = threading.Lock()  # record() against close()
        self._tally_lock = threading.Lock()
        self._tally: Tally[str] = Tally()
        self._unlogged: Tally[str] = Tally()
        self._last_drop_log = 0.0
        self._last_detail = ""
        self._resending: _Resend | None = None
        self._spooling_since: float | None = None
        self._closed = False
        self._producer_closed = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fraud-audit", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the request path ---------------------------------------------------------------

    def record(self, transaction: dict[str, Any], decision: dict[str, Any]) -> None:
        """Queue the transaction (to the `transactions` topic, keyed like the generator
        keys it: card_id) and its decision (to `fraud_decisions`, keyed by transaction_id).
        Never blocks the caller, never raises because Kafka is down. Both dicts are
        JSON-ready (ISO-8601 timestamps, as the generators produce)."""
        try:
            event = decision_event(transaction, decision)
            messages = (
                (TRANSACTIONS.name, _key(transaction.get("card_id")), _dumps(transaction)),
                (FRAUD_DECISIONS.name, _key(event["transaction_id"]), _dumps(event)),
            )
        except Exception as error:  # a bad dict must never fail the request
            self._count(recorded=2)
            self._drop(2, "unserializable", repr(error))
            return
        self._count(recorded=2)
        with self._gate:
            for topic, key, value in messages:
                if self._closed:
                    self._drop(1, "closed", "record() after close()")
                    continue
                try:
                    self._producer.produce(topic, value, key)
                except BufferError:
                    self._spool_one(SpooledRecord(topic, key, value), "queue_full")
                except KafkaException as error:  # refused before sending: too large, say
                    self._drop(1, "rejected", str(error))

    def close(self, timeout: float = 10.0) -> None:
        """Flush on shutdown (SIGTERM); whatever cannot be delivered in time goes to the
        spool, nothing is lost."""
        with self._gate:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._producer.flush(max(0.0, deadline - time.monotonic())):
            # Purged records come back through the delivery reports and are spooled; a
            # purged in-flight request may still have been stored by the broker (the
            # duplicate silver drops).
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        # Serves the last delivery reports (each record ends delivered or spooled) and
        # lets go of the broker connections.
        self._producer.close()
        self._producer_closed = True
        resend = self._resending
        if resend is not None and resend.outstanding == 0:
            resend.release(self._spool)  # every record delivered or spooled again
        self._spool.close()
        self._log_drops(force=True)
        stats = self.stats
        log.info(
            "fraud audit trail closed",
            extra={"delivered": stats.delivered, "spooled": stats.spooled,
                   "resent": stats.resent, "dropped": stats.dropped,
                   "spool_bytes": self._spool.bytes},
        )
        self._gauges()

    # --- health -------------------------------------------------------------------------

    @property
    def stats(self) -> AuditStats:
        """A snapshot of this trail's counts."""
        with self._tally_lock:
            return AuditStats(**{name: self._tally[name] for name in _STAT_NAMES})

    @property
    def pending(self) -> int:
        """Records in the producer's memory, not yet acknowledged (or spooled)."""
        return 0 if self._producer_closed else len(self._producer)

    @property
    def spooled_bytes(self) -> int:
        """Bytes of this process's records waiting in the spool."""
        return self._spool.bytes

    @property
    def spooled_records(self) -> int:
        """This process's records waiting in the spool."""
        return self._spool.records

    def health(self) -> dict[str, Any]:
        """For `/readyz` or `/healthz` detail: the audit path never makes a request fail."""
        stats = self.stats
        return {
            "pending": self.pending,
            "spooled_records": self._spool.records,
            "spooled_bytes": self._spool.bytes,
            "spool_max_bytes": self._spool.max_bytes,
            "spooling": self._spooling_since is not None,
            "dropped": stats.dropped,
        }

    # --- delivery reports (called by poll or flush, in their thread) --------------------

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._count(delivered=1)
            DELIVERED.inc()
            return
        self._undelivered(message, error)

    def _on_resent(self, resend: _Resend, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._count(resent=1)
            RESENT.inc()
        else:
            resend.failed += 1
            self._undelivered(message, error)
        resend.settle(1)

    def _undelivered(self, message: Message, error: KafkaError) -> None:
        record = SpooledRecord(message.topic() or "", message.key(), message.value() or b"")
        if error.code() in _PERMANENT:
            self._drop(1, "rejected", str(error))
            return
        reason = "closing" if self._closed else "undelivered"
        if self._spooling_since is None:
            self._spooling_since = time.monotonic()
            log.warning(
                "Kafka did not take an audit record (%s): spooling to %s until it does",
                error, self._spool.folder,
            )
        self._spool_one(record, reason)

    def _spool_one(self, record: SpooledRecord, reason: str) -> None:
        try:
            spooled = self._spool.append(record)
        except OSError as error:
            self._drop(1, "spool_error", str(error))
            return
        if not spooled and self._spool.closed:
            self._drop(1, "closed", "a delivery report after close()")
            return
        if not spooled:
            self._drop(1, "spool_full", f"{self._spool.bytes:,} of {self._spool.max_bytes:,} "
                       f"bytes used in {self._spool.folder}")
            return
        self._count(spooled=1)
        SPOOLED.labels(reason).inc()

    # --- the background thread -----------------------------------------------------------

    def _run(self) -> None:
        base = pause = self.settings.fraud_audit_retry_seconds
        next_try = time.monotonic() + pause
        while not self._stopping.is_set() and not self._producer_closed:
            try:
                self._producer.poll(0.1)
                if time.monotonic() >= next_try:
                    # Probing an absent broker costs one connection attempt: keep at it
                    # every `base` seconds; back off only when resends themselves fail.
                    failed = self._resend_all() is False
                    pause = min(pause * 2, MAX_RETRY_SECONDS) if failed else base
                    next_try = time.monotonic() + pause
                    self._gauges()
                self._log_drops()
            except Exception:  # the thread must outlive any surprise; say so
                log.exception("fraud audit background thread: unexpected error")
                self._stopping.wait(1.0)

    def _resend_all(self) -> bool | None:
        """Resend every spooled segment if the broker answers: True when all went, False
        when a resend failed (what failed is spooled again), None when the broker does
        not answer or there is nothing to send."""
        if self._spool.records == 0 and not self._spool.has_others():
            self._spooling_since = None
            return None
        try:
            self._producer.list_topics(timeout=PROBE_TIMEOUT_SECONDS)
        except KafkaException:
            return None
        self._spool.seal()
        while not self._stopping.is_set():
            segment = self._spool.take() or self._spool.claim_orphan()
            if segment is None:
                return True
            if not self._resend(segment):
                return False
        return True

    def _resend(self, segment: Segment) -> bool:
        contents = self._spool.read(segment)
        if contents.unreadable_bytes:
            self._drop(1, "corrupt", f"{contents.unreadable_bytes} unreadable bytes at the end "
                       f"of {segment.path} (a torn write): at least one record lost")
        resend = self._resending = _Resend(segment, len(contents.records))
        callback = partial(self._on_resent, resend)
        for number, record in enumerate(contents.records):
            if self._stopping.is_set():
                # Closing: what was not sent yet goes to this process's own spool.
                for rest in contents.records[number:]:
                    self._spool_one(rest, "closing")
                resend.settle(len(contents.records) - number)
                break
            while True:
                try:
                    self._producer.produce(record.topic, record.value, record.key,
                                           on_delivery=callback)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        while resend.outstanding and not self._stopping.is_set():
            self._producer.poll(0.1)
        if resend.outstanding:
            return False  # closing: close() settles the rest and deletes the segment
        resend.release(self._spool)
        self._resending = None
        if contents.records:
            log.info("resent %d spooled audit records from %s (%d failed and were spooled "
                     "again)", len(contents.records), segment.path.name, resend.failed)
        return resend.failed == 0

    # --- counting and telling ---------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._tally_lock:
            self._tally.update(increments)

    def _drop(self, count: int, reason: str, detail: str) -> None:
        """Records that are lost: counted, and logged loudly (never silently)."""
        self._count(dropped=count)
        DROPPED.labels(reason).inc(count)
        with self._tally_lock:
            self._unlogged[reason] += count
            self._last_detail = detail
        self._log_drops()

    def _log_drops(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._tally_lock:
            if not self._unlogged or (not force and now - self._last_drop_log < DROP_LOG_SECONDS):
                return
            unlogged, self._unlogged = dict(self._unlogged), Tally()
            self._last_drop_log = now
            detail = self._last_detail
        log.error(
            "fraud audit records DROPPED: %s. They are not in Kafka and will not reach the "
            "lake. Last: %s. Total dropped by this process: %d.",
            ", ".join(f"{count} ({reason})" for reason, count in sorted(unlogged.items())),
            detail, self.stats.dropped,
            extra={"dropped": unlogged, "spool": str(self._spool.folder)},
        )

    def _gauges(self) -> None:
        SPOOL_BYTES.set(self._spool.bytes)
        PENDING.set(self.pending)


class _Resend:
    """A segment being resent: how many of its records still await a delivery report.

    Once none does, each record is in Kafka or spooled again, and the segment is deleted
    (once, by the background thread or by `close`)."""

    def __init__(self, segment: Segment, outstanding: int) -> None:
        self.segment = segment
        self.outstanding = outstanding
        self.failed = 0
        self._released = False
        self._lock = threading.Lock()

    def settle(self, count: int) -> None:
        with self._lock:
            self.outstanding -= count

    def release(self, spool: Spool) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        spool.release(self.segment)


def _key(value: object) -> bytes | None:
    return None if value is None else str(value).encode()


def iso_utc(moment: datetime) -> str:
    """A timestamp as the events carry it: ISO-8601 UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(reason: object) -> str:
    return reason if isinstance(reason, str) else orjson.dumps(reason, default=_plain).decode()


def _dumps(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        document,
        default=_plain,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )


def _plain(value: object) -> object:
    """What orjson cannot write itself: numpy scalars, decimals, dates as ISO text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-ready")
