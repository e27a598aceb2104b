"""The whole landing path with the lake on S3 (a local moto_server): the production-like profile.

Local folders and S3 differ exactly where exactly-once lives: how a Delta commit is made
atomic (S3 conditional puts instead of a rename) and how storage fails. So the same
generators-to-bronze path runs here against S3, and every event must land once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pyarrow.compute as pc

from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.catalog import (
    CATALOG,
    ENGINE_CYCLES,
    FRAUD_DECISIONS,
    IOT_ALERTS,
    SENSOR_READINGS,
    TRANSACTIONS,
    Domain,
)
from lakehouse.delta import table_stats
from lakehouse.query import run_query
from lakehouse.settings import Settings
from streaming.generators import make_generator
from streaming.ingest.worker import IngestOptions, IngestReport, IngestWorker
from tests.conftest import s3_client, s3_lake_options
from tests.support.fraud_audit import decisions_for
from tests.support.importing import engine_cycles_messages
from tests.support.iot_alerts import alerts_for
from tests.support.traffic import bronze, produce

EVENTS = {Domain.ECOMMERCE: 4_000, Domain.FRAUD: 2_000, Domain.IOT: 3_000}
START = datetime(2026, 11, 23, tzinfo=UTC)


def produce_all_domains(settings: Settings) -> dict[str, Counter[str]]:
    """Produce every domain's traffic, a fraud decision per transaction, an alert per
    labelled spike and two imported engines' cycles; return the event ids sent per topic,
    with multiplicity."""
    sent: dict[str, Counter[str]] = {topic: Counter() for topic in CATALOG.topics}
    for domain, events in EVENTS.items():
        generator = make_generator(domain, seed=7, start=START)
        for batch in generator.batches(events, 1_000):
            produce(settings, batch.topic, batch.values)
            sent[batch.topic].update(orjson.loads(value)["event_id"] for value in batch.values)
            if batch.topic == TRANSACTIONS.name:  # and the fraud service's decisions
                decisions = decisions_for(map(orjson.loads, batch.values))
                produce(settings, FRAUD_DECISIONS.name, decisions)
                sent[FRAUD_DECISIONS.name].update(orjson.loads(v)["event_id"] for v in decisions)
            if batch.topic == SENSOR_READINGS.name:  # and the alert processor's records
                alerts = alerts_for(map(orjson.loads, batch.values))
                produce(settings, IOT_ALERTS.name, alerts)
                sent[IOT_ALERTS.name].update(orjson.loads(v)["event_id"] for v in alerts)
    cycles = engine_cycles_messages(START.date())  # the one topic only an import fills
    produce(settings, ENGINE_CYCLES.name, cycles)
    sent[ENGINE_CYCLES.name].update(orjson.loads(v)["event_id"] for v in cycles)
    return sent


def ingest(settings: Settings) -> IngestReport:
    options = IngestOptions(topics=list(CATALOG.topics), until_idle=True, handle_signals=False)
    return IngestWorker(settings, options).run()


def test_every_event_lands_once_on_s3_and_a_rerun_lands_nothing(
    broker: EmbeddedBroker,
    make_settings: Callable[..., Settings],
    moto_server: str,
    s3_bucket: str,
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap,
        **s3_lake_options(moto_server, s3_bucket),
    )
    ensure_topics(settings)
    sent = produce_all_domains(settings)
    total = sum(sum(ids.values()) for ids in sent.values())
    assert all(sent.values()), {topic: len(ids) for topic, ids in sent.items()}

    report = ingest(settings)
    assert (report.consumed, report.written, report.quarantined) == (total, total, 0)

    for topic, ids in sent.items():
        landed = bronze(settings, topic)
        # Compared as multisets: only IoT redeliveries repeat an event id, and each such
        # message must land exactly as often as it was sent; every other id exactly once.
        assert Counter(landed.column("event_id").to_pylist()) == ids, topic
        positions = pc.binary_join_element_wise(
            pc.cast(landed.column("_kafka_partition"), "string"),
            pc.cast(landed.column("_kafka_offset"), "string"),
            ":",
        )
        assert pc.count_distinct(positions).as_py() == landed.num_rows, f"{topic}: duplicates"
    assert sum(sent["sensor_readings"].values()) > len(sent["sensor_readings"]), (
        "the IoT generator should inject redeliveries (repeated event ids)"
    )

    # The Delta logs are really in the bucket, not in a local folder.
    objects = s3_client(moto_server).list_objects_v2(
        Bucket=s3_bucket, Prefix="lake/bronze/clickstream/_delta_log/"
    )
    assert objects.get("KeyCount", 0) > 0

    # DuckDB reads the S3 tables through the query layer.
    answer = run_query(
        settings,
        "SELECT count(*) AS events, count(DISTINCT event_id) AS ids FROM bronze.transactions",
    ).to_pylist()
    fraud = sent["transactions"]
    assert answer == [{"events": sum(fraud.values()), "ids": len(fraud)}]
    per_topic = run_query(
        settings,
        "SELECT 'sensor_readings' AS t, count(*) AS n FROM bronze.sensor_readings "
        "UNION ALL SELECT 'purchases', count(*) FROM bronze.purchases ORDER BY t",
    ).to_pylist()
    assert per_topic == [
        {"t": "purchases", "n": sum(sent["purchases"].values())},
        {"t": "sensor_readings", "n": sum(sent["sensor_readings"].values())},
    ]

    # A second run finds every partition landed: no new rows, no new commits.
    versions = {key: table_stats(spec, settings) for key, spec in CATALOG.tables.items()}
    again = ingest(settings)
    assert (again.written, again.commits, again.quarantined) == (0, 0, 0)
    assert {key: table_stats(spec, settings) for key, spec in CATALOG.tables.items()} == versions
