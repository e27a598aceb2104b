"""Payments, the decision service's answers and their audit records, for the tests that
drive the audit trail and for lakes that need decisions beside their transactions."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from lakehouse.catalog import CATALOG, FRAUD_DECISIONS, topic_partitions
from lakehouse.settings import Settings
from streaming.fraud.audit import decision_event, iso_utc
from tests.support.landing import bronze_messages

DECIDED_AFTER = timedelta(milliseconds=3)


def _really_ended(consumer: Consumer, topic: str, ended: set[int]) -> set[int]:
    """The partitions of `ended` whose read position has reached the high watermark (an
    empty partition has no position yet: it counts as at 0)."""
    positions = consumer.position([TopicPartition(topic, p) for p in sorted(ended)])
    return {
        tp.partition for tp in positions
        if max(tp.offset, 0) >= consumer.get_watermark_offsets(tp, timeout=5)[1]
    }


def payment(number: int, when: datetime, label: bool | None = None) -> dict[str, Any]:
    """A valid `transactions` event `p{number}`, JSON-ready, as a client sends it: without
    a label unless one is given."""
    event: dict[str, Any] = {
        "event_id": f"p{number}",
        "event_time": iso_utc(when),
        "user_id": 1 + number % 997,
        "card_id": f"card-{number % 313:04d}",
        "merchant_id": f"m-groc-{number % 50:04d}",
        "merchant_category": "grocery",
        "amount": round(5 + number % 200 * 1.25, 2),
        "currency": "USD",
        "country": "US",
        "city": "Boston",
        "latitude": 42.36,
        "longitude": -71.06,
        "device_id": f"dev-{number % 401:04d}",
        "ip_address": None,
        "channel": ("pos", "online", "mobile")[number % 3],
    }
    if label is not None:
        event["label_is_fraud"] = label
    return event


def verdict(event_id: str, fraud: bool | None) -> str:
    """A deterministic, imperfect decision: most fraud blocked, some reviewed or missed; a
    few legitimate payments reviewed or blocked."""
    draw = zlib.crc32(event_id.encode()) % 1000
    if fraud:
        return "BLOCK" if draw < 700 else "REVIEW" if draw < 850 else "APPROVE"
    return "BLOCK" if draw < 2 else "REVIEW" if draw < 20 else "APPROVE"


def answer(transaction: dict[str, Any], decision: str = "APPROVE") -> dict[str, Any]:
    """What the decision service answers (and hands to `AuditTrail.record`)."""
    blocked = decision != "APPROVE"
    return {
        "transaction_id": transaction["event_id"],
        "decision": decision,
        "fraud_probability": 0.93 if blocked else 0.002,
        "reasons": ["amount far above the holder's norm"] if blocked else [],
        "rules_fired": ["amount_spike"] if blocked else [],
        "top_features": [{"name": "amount_zscore", "value": 7.1, "contribution": 2.3}],
        "model_version": 3,
        "rules_version": "rules-2026-12-01",
        "degraded": False,
        "missing": [],
        "stage_ms": {"enrich": 0.4, "aggregate": 0.6, "score": 0.9, "decide": 0.1},
    }


def decisions_for(transactions: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """The `fraud_decisions` messages of transactions (`transactions` events, their times
    as datetimes or ISO strings): `verdict` of each one's label, decided 3 ms after it."""
    values = []
    for transaction in transactions:
        when = transaction["event_time"]
        if isinstance(when, str):
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        row = {**transaction, "event_time": iso_utc(when)}
        decided = answer(row, verdict(row["event_id"], row.get("label_is_fraud")))
        values.append(orjson.dumps(decision_event(row, decided, when + DECIDED_AFTER)))
    return values


def decisions_bronze(transactions: pa.Table) -> pa.Table:
    """Bronze rows of `fraud_decisions` for bronze or silver `transactions` rows
    (`decisions_for` them), decoded by the ingest decoder as ingest would land them."""
    return bronze_messages(FRAUD_DECISIONS.name, decisions_for(transactions.to_pylist()))


def read_topic(settings: Settings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every message of `topic`, read from the start of each partition to its end (no
    consumer group: nothing to join). An end-of-partition event is checked against the
    partition's high watermark before it counts: one clean-clone run in two processes read
    297 of 300 acknowledged decisions, and an early end-of-partition under load is the
    likely cause (records really lost would still fail the caller's count)."""
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": "audit-test-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = topic_partitions(CATALOG.topic(topic), settings)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    messages: list[Message] = []
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if len(ended) == partitions:
                ended = _really_ended(consumer, topic, ended)
                if len(ended) == partitions:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {ended} of {partitions} read to the end")
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                    continue
                raise RuntimeError(str(error))
            messages.append(message)
    finally:
        consumer.close()
    return messages
