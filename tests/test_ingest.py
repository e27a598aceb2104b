"""Kafka to bronze: everything lands once, poison is quarantined, the Delta log leads."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.catalog import CATALOG, table_uri
from lakehouse.settings import Settings
from streaming.ingest.metrics import serve_metrics
from streaming.ingest.runner import run_ingest
from streaming.ingest.worker import IngestOptions, IngestWorker, LakeAheadOfBrokerError
from tests.support.net import free_port
from tests.support.traffic import (
    assert_exactly_once,
    bronze,
    click_event,
    produce,
    quarantine,
)
from tests.test_decode import POISON


def ingest(settings: Settings, topics: tuple[str, ...] = ("clickstream",)):
    options = IngestOptions(topics=list(topics), until_idle=True, handle_signals=False)
    return IngestWorker(settings, options).run()


def test_every_event_lands_once_and_a_rerun_adds_nothing(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(30_000)))
    report = ingest(settings)
    assert report.consumed == 30_000 and report.written == 30_000
    assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(30_000)})

    again = ingest(settings)
    assert again.written == 0
    assert bronze(settings, "clickstream").num_rows == 30_000


def test_bronze_rows_carry_their_kafka_provenance_and_event_date(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(2_000)))
    ingest(settings)
    table = bronze(settings, "clickstream")
    pairs = set(
        zip(
            table.column("_kafka_partition").to_pylist(),
            table.column("_kafka_offset").to_pylist(),
            strict=True,
        )
    )
    assert len(pairs) == 2_000
    dates = pc.cast(table.column("event_time"), "date32")
    assert pc.all(pc.equal(dates, table.column("event_date"))).as_py()
    assert table.column("_ingested_at").null_count == 0


def test_the_delta_log_records_each_partitions_last_offset(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(5_000)))
    ingest(settings)
    spec = CATALOG.bronze_for_topic("clickstream")
    table = DeltaTable(table_uri(spec, settings))
    landed = bronze(settings, "clickstream")
    for partition in range(4):
        offsets = pc.filter(
            landed.column("_kafka_offset"), pc.equal(landed.column("_kafka_partition"), partition)
        )
        app_id = f"{settings.ingest_app_id}:clickstream:{partition}"
        assert table.transaction_version(app_id) == pc.max(offsets).as_py()


def test_progress_comes_from_the_delta_log_not_kafka_offsets(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(3_000)))
    ingest(settings)
    produce(settings, "clickstream", map(click_event, range(3_000, 4_000)))
    # A new consumer group has no committed offsets; the Delta log still says where to start.
    fresh_group = settings.model_copy(update={"ingest_group_id": f"g-{uuid.uuid4().hex[:6]}"})
    report = ingest(fresh_group)
    assert report.written == 1_000
    assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(4_000)})


def test_poison_messages_are_quarantined_with_raw_bytes_and_provenance(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"ingest_max_message_bytes": 4096})
    poison = list(POISON)
    values: list[bytes | None] = []
    for number in range(4_000):
        values.append(click_event(number))
        if number % 300 == 0:
            values.append(poison[(number // 300) % len(poison)])
    values.append(None)  # a tombstone
    produce(settings, "clickstream", values)

    report = ingest(settings)

    expected_poison = len(values) - 4_000
    assert report.quarantined == expected_poison
    assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(4_000)})
    table = quarantine(settings)
    assert table.num_rows == expected_poison
    assert set(table.column("topic").to_pylist()) == {"clickstream"}
    expected_reasons = {POISON[value].value for value in poison}
    assert set(table.column("reason").to_pylist()) == expected_reasons
    raw = [value or b"" for value in table.column("value").to_pylist()]
    assert sorted(raw) == sorted(value or b"" for value in values if value not in _valid(values))
    assert table.column("kafka_timestamp").null_count == 0
    offsets = set(
        zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True)
    )
    assert len(offsets) == expected_poison
    for detail in table.column("detail").to_pylist():
        assert detail


def _valid(values: list[bytes | None]) -> set[bytes | None]:
    return {value for value in values if value is not None and value.startswith(b'{"event_id":"c')}


def test_prometheus_metrics_count_what_landed(settings: Settings) -> None:
    port = free_port()
    serve_metrics(port)
    produce(settings, "clickstream", [*map(click_event, range(1_000)), b"{not json"])
    ingest(settings)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert _sample(body, 'ingest_rows_written_total{topic="clickstream"}') >= 1_000
    assert _sample(body, 'ingest_messages_consumed_total{topic="clickstream"}') >= 1_001
    quarantined = 'ingest_messages_quarantined_total{reason="invalid_json",topic="clickstream"}'
    assert _sample(body, quarantined) >= 1
    assert "ingest_flush_seconds_bucket" in body


def test_two_worker_processes_share_the_partitions(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(20_000)))
    options = IngestOptions(topics=["clickstream"], until_idle=True)
    report = run_ingest(settings, options, workers=2)
    assert report.written == 20_000
    assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(20_000)})


def _sample(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} in metrics")


def test_a_lake_ahead_of_a_recreated_topic_is_refused_loudly(
    settings: Settings, tmp_path: Path
) -> None:
    produce(settings, "clickstream", map(click_event, range(4_000)))
    ingest(settings)
    # The broker restarts with empty in-memory topics: the lake now records offsets the
    # new topic does not have. Landing new events there would silently skip them.
    fresh = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "fresh-broker.log").start()
    try:
        moved = settings.model_copy(update={"kafka_bootstrap_servers": fresh.bootstrap})
        ensure_topics(moved)
        produce(moved, "clickstream", map(click_event, range(4_000, 4_100)))
        with pytest.raises(LakeAheadOfBrokerError, match="recreated or truncated"):
            ingest(moved)
    finally:
        fresh.stop()
    assert bronze(settings, "clickstream").num_rows == 4_000
