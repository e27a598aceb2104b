"""The IoT alert processor (`lakehouse stream iot-alerts`): it catches the generator's
spikes and drift and stays quiet on noise and the load cycle; a burst is one alert; a
SIGKILL mid-stream neither loses nor repeats an alert, on Kafka or at the webhook; a
webhook outage delays deliveries without losing one; untrusted readings never crash it.

Real services only: the embedded broker, a private `redis-server` on a free port, a local
HTTP receiver for the webhook.
"""

from __future__ import annotations

import math
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pyarrow as pa
import redis
from confluent_kafka import Producer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.catalog import IOT_ALERTS, SENSOR_LIMITS, SENSOR_READINGS
from lakehouse.schemas import VOCABULARIES
from lakehouse.settings import Settings
from streaming.alerts import metrics, state
from streaming.alerts.detector import Detector, DetectorConfig
from streaming.alerts.processor import AlertOptions, AlertProcessor
from streaming.generators import make_generator
from tests.conftest import lakehouse_command, settings_env
from tests.support.alert_truth import decode, detect, score
from tests.support.fraud_audit import read_topic
from tests.support.net import free_port
from tests.support.redis_server import RedisServer
from tests.support.webhook import WebhookReceiver

START = datetime(2026, 11, 1, tzinfo=UTC)
CONFIG = DetectorConfig()


def readings(seed: int, machines: int, hours: float, events: int, **rates: float
             ) -> tuple[list[bytes], list[bytes]]:
    """The generator's `sensor_readings` messages (keys, values) in sending order."""
    generator = make_generator("iot", seed=seed, start=START, n_machines=machines,
                               span=timedelta(hours=hours), **rates)
    keys: list[bytes] = []
    values: list[bytes] = []
    for batch in generator.batches(events, 5_000):
        keys += batch.keys
        values += batch.values
    return keys, values


def online(settings: Settings, server: RedisServer, **overrides: object) -> Settings:
    """`settings` with the private Redis and consumer groups of their own."""
    return settings.model_copy(update={
        "redis_url": server.url,
        "iot_alerts_group_id": f"alerts-{uuid.uuid4().hex[:8]}",
        "iot_alerts_webhook_group_id": f"webhook-{uuid.uuid4().hex[:8]}",
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 300,
        **overrides,
    })


def send(settings: Settings, keys: list[bytes], values: list[bytes], chunks: int = 1,
         pause: float = 0.0) -> None:
    """Produce readings keyed by device, in `chunks` with `pause` seconds between them."""
    producer = Producer({**settings.kafka_config(), "linger.ms": 5, "acks": "all"})
    size = math.ceil(len(values) / chunks)
    for start in range(0, len(values), size):
        for key, value in zip(keys[start:start + size], values[start:start + size], strict=True):
            producer.produce(SENSOR_READINGS.name, value, key=key)
        producer.flush(60)
        time.sleep(pause)
    assert producer.flush(60) == 0


def alert_messages(settings: Settings) -> dict[str, list[bytes]]:
    """Every copy of every record on `iot_alerts`, by event id."""
    copies: dict[str, list[bytes]] = {}
    for message in read_topic(settings, IOT_ALERTS.name):
        record = orjson.loads(message.value())
        copies.setdefault(record["event_id"], []).append(message.value())
    return copies


def essence(record: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change between runs (everything but the wall-clock `detected_at`)."""
    return tuple(sorted((k, v) for k, v in record.items() if k != "detected_at"))


# --- what the detector catches ---------------------------------------------------------------


def test_spikes_drift_and_precursors_are_caught_with_few_false_alarms() -> None:
    _, values = readings(3, 12, 24, 138_240, drift_rate=0.2, failure_rate=0.1, spike_rate=0.002)
    table = decode([values])
    result = score(table, detect(table, CONFIG), CONFIG.quiet_seconds)
    assert result.spikes > 200 and result.drifting >= 5
    assert result.precision >= 0.95, result
    assert result.spike_recall >= 0.9, result
    assert result.drift_recall >= 0.8, result


def test_noise_and_the_load_cycle_raise_nothing() -> None:
    _, values = readings(4, 12, 24, 138_240, drift_rate=0, failure_rate=0, spike_rate=0)
    assert detect(decode([values]), CONFIG) == []


def reading(number: int, value: float, seconds: float, sensor: str = "dev-0001-temperature",
            kind: str = "temperature") -> dict[str, Any]:
    return {
        "event_id": f"r{number}", "event_time": START + timedelta(seconds=seconds),
        "device_id": sensor[:8], "sensor_id": sensor, "sensor_type": kind,
        "plant": "plant-pune", "sequence": number, "value": value, "unit": "degC",
    }


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    schema = SENSOR_READINGS.event.schema
    names = ["event_id", "event_time", "device_id", "sensor_id", "sensor_type", "plant",
             "sequence", "value", "unit"]
    return pa.Table.from_pylist(rows, schema=pa.schema([schema.field(n) for n in names]))


def test_a_burst_is_one_alert_opened_then_closed_after_the_quiet_period() -> None:
    noise = [0.3, -0.2, 0.5, -0.4, 0.1, -0.3, 0.2, -0.1, 0.4, -0.5]
    rows = [reading(i, 60 + noise[i % 10], i * 5.0) for i in range(60)]
    burst = [reading(60 + i, 75.0 + i, 300 + i * 5.0) for i in range(5)]  # 20 s of spikes
    after = [reading(65 + i, 60 + noise[i % 10], 325 + i * 5.0) for i in range(30)]
    records = Detector(CONFIG).process(table_of(rows + burst + after), 0).records
    assert [(r["rule"], r["state"]) for r in records] == [("zscore", "open"), ("zscore", "close")]
    opened, closed = records
    assert opened["alert_id"] == closed["alert_id"]
    assert opened["event_id"] == f"{opened['alert_id']}:open"
    assert opened["reading_event_id"] == "r60" and closed["reading_event_id"] == "r64"
    assert closed["readings"] == 5
    assert closed["closed_at"] == "2026-11-01T00:06:20.000000Z"  # last spike (320 s) + 60 s


def test_a_slow_sensor_must_behave_for_a_few_of_its_readings_before_its_alert_closes() -> None:
    """Every 5 minutes (NAB's machine temperature): a spike, one calm reading, a spike. A
    60 s quiet period cannot be seen at that pace; three readings' worth can."""
    noise = [0.3, -0.2, 0.5, -0.4, 0.1, -0.3, 0.2, -0.1, 0.4, -0.5]
    calm = [reading(i, 60 + noise[i % 10], i * 300.0) for i in range(40)]
    flare = [reading(40, 80.0, 40 * 300.0), reading(41, 60.1, 41 * 300.0),
             reading(42, 81.0, 42 * 300.0)]
    after = [reading(43 + i, 60 + noise[i % 10], (43 + i) * 300.0) for i in range(10)]
    rows = table_of(calm + flare + after)

    def zscore_records(quiet_readings: int) -> list[dict[str, Any]]:
        config = DetectorConfig(quiet_readings=quiet_readings)
        return [r for r in Detector(config).process(rows, 0).records if r["rule"] == "zscore"]

    opened, closed = zscore_records(3)
    assert (opened["state"], closed["state"]) == ("open", "close")
    assert closed["readings"] == 2
    # The last spike (42 x 300 s = 3:30) plus three 300 s intervals.
    assert closed["closed_at"] == "2026-11-01T03:45:00.000000Z"
    by_seconds = zscore_records(0)
    assert [r["state"] for r in by_seconds] == ["open", "close", "open", "close"]


def test_operating_limits_come_from_the_catalog() -> None:
    high = SENSOR_LIMITS["vibration"].operating[1]
    rows = [reading(i, high + 1, i * 5.0, "dev-0002-vibration", "vibration") for i in range(3)]
    records = Detector(CONFIG).process(table_of(rows), 0).records
    assert [(r["rule"], r["state"], r["limit"]) for r in records] == [
        ("above_limit", "open", high)
    ]


def test_batch_boundaries_and_a_state_round_trip_change_nothing() -> None:
    _, values = readings(5, 6, 24, 34_560, drift_rate=0.2, spike_rate=0.005)
    table = decode([values])
    sensor_rules = [r for r in detect(table, CONFIG, batch=10_000) if r["rule"] != "device_health"]
    whole = [essence(r) for r in sensor_rules]
    detector, resumed = Detector(CONFIG), []
    for offset in range(0, table.num_rows, 777):
        resumed += detector.process(table.slice(offset, 777), 0).records
        detector = state.load(state.dump(detector), CONFIG)
    # The same records; the order of closes may differ (a quiet sensor's alert closes at
    # the end of the batch in which the partition's time passed its quiet period).
    assert whole and sorted(whole, key=repr) == sorted(
        (essence(r) for r in resumed if r["rule"] != "device_health"), key=repr
    )


# --- untrusted input ---------------------------------------------------------------------------

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1e308, 1e308, 5e-324, 60.0, 61.0]),
    st.none(),
)


TIMES = st.one_of(
    st.none(),
    st.integers(-10**6, 10**6).map(lambda seconds: START + timedelta(seconds=seconds)),
    # The first and last moments a timestamp can carry, and the epoch.
    st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC),
                     datetime(1970, 1, 1, tzinfo=UTC)]),
)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(FLOATS, TIMES,
                  st.integers(0, 5), st.sampled_from([*SENSOR_LIMITS, "humidity", None])),
        min_size=1, max_size=120,
    ),
    st.integers(1, 40),
)
def test_untrusted_readings_never_crash_and_records_stay_valid(
    rows: list[tuple[float | None, datetime | None, int, str | None]], split: int
) -> None:
    detector = Detector(CONFIG)
    data = [
        {**reading(i, 0.0, 0.0, f"dev-000{s}-x", kind or "temperature"),
         "sensor_type": kind, "value": value, "event_time": when}
        for i, (value, when, s, kind) in enumerate(rows)
    ]
    records = []
    for offset in range(0, len(data), split):
        result = detector.process(table_of(data[offset:offset + split]), 0)
        records += result.records
        detector = state.load(state.dump(detector), CONFIG)
    for record in records:
        assert record["event_id"] == f"{record['alert_id']}:{record['state']}"
        assert record["state"] in VOCABULARIES["iot_alerts"]["state"]
        assert record["readings"] > 0
        for name in ("value", "zscore", "baseline_mean", "baseline_sd", "health_score"):
            assert record[name] is None or math.isfinite(record[name])


def test_invalid_readings_are_counted_and_kept_out_of_the_baseline() -> None:
    rows = [reading(i, 60.0 + 0.1 * (i % 3), i * 5.0) for i in range(30)]
    rows += [reading(30, math.nan, 150.0), reading(31, 1e9, 155.0), reading(32, -math.inf, 160.0)]
    detector = Detector(CONFIG)
    result = detector.process(table_of(rows), 0)
    assert result.invalid == 3
    assert abs(detector.floats["fast_mean"][0] - 60.1) < 0.1


# --- through Kafka, Redis and the webhook -----------------------------------------------------


def test_sigkill_mid_stream_neither_loses_nor_repeats_an_alert(
    settings: Settings, redis_server: RedisServer
) -> None:
    receiver = WebhookReceiver().start()
    settings = online(settings, redis_server, iot_alerts_webhook_url=receiver.url,
                      iot_alerts_batch_events=300)
    keys, values = readings(6, 6, 6, 25_920, spike_rate=0.01, drift_rate=0.1)
    env = {**settings_env(settings), "IOT_ALERTS_BATCH_EVENTS": "300"}
    expected = {r["event_id"]: essence(r) for r in detect(decode([values]), CONFIG)}
    command = lakehouse_command("stream", "iot-alerts", "--no-json-logs")
    second: subprocess.Popen[bytes] | None = None
    head = len(values) // 10
    rest = threading.Thread(target=send, args=(settings, keys[head:], values[head:], 20, 0.1))
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        send(settings, keys[:head], values[:head])
        client = redis.Redis.from_url(settings.redis_url)
        deadline = time.monotonic() + 60
        while not list(client.scan_iter(f"iot_alerts:{settings.iot_alerts_group_id}:*")):
            assert time.monotonic() < deadline, "the processor never checkpointed"
            time.sleep(0.05)
        rest.start()
        time.sleep(0.7)
        assert rest.is_alive(), "the stream ended before the kill: nothing tested"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        rest.join()
        # The restarted processor runs until every expected alert reached the webhook,
        # then stops on SIGTERM, cleanly.
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while not set(expected) <= set(receiver.event_ids()):
            assert time.monotonic() < deadline and second.poll() is None, "alerts missing"
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=30)
        assert second.returncode == 0, errors.decode()[-2000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
        receiver.stop()

    copies = alert_messages(settings)
    assert set(copies) == set(expected)
    for event_id, sent in copies.items():
        assert {essence(orjson.loads(value)) for value in sent} == {expected[event_id]}
        assert len(set(sent)) == 1  # a copy from the outbox is the same bytes
    # Every record delivered. A POST repeats only where the kill fell between the
    # receiver's 2xx and Redis remembering it (one round trip of the delivery loop, which
    # ran in the killed process): at most one record, with its Idempotency-Key, so a
    # receiver that honours the key (as webhook receivers do) takes it once.
    delivered = receiver.event_ids()
    assert receiver.keys == delivered
    assert set(delivered) == set(copies)
    assert len(delivered) - len(set(delivered)) <= 1


def test_a_webhook_outage_delays_but_loses_nothing(
    settings: Settings, redis_server: RedisServer
) -> None:
    receiver = WebhookReceiver().start()
    receiver.down = True
    settings = online(settings, redis_server, iot_alerts_webhook_url=receiver.url,
                      iot_alerts_webhook_max_backoff_seconds=0.5)
    keys, values = readings(7, 4, 6, 17_280, spike_rate=0.01)
    send(settings, keys, values)
    processor = AlertProcessor(
        settings, AlertOptions(until_idle=3, max_seconds=90, handle_signals=False)
    )
    threading.Timer(4.0, lambda: setattr(receiver, "down", False)).start()
    try:
        report = processor.run()
    finally:
        receiver.stop()
    assert receiver.refused > 0  # the outage was real
    produced = alert_messages(settings)
    assert report.alerts == len(produced) > 0
    assert sorted(receiver.event_ids()) == sorted(produced)


def test_metrics_and_health_are_served() -> None:
    port = free_port()
    server = metrics.serve(port)
    assert server is not None
    try:
        metrics.READINGS.inc(3)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "iot_alerts_readings_total" in text and "iot_alerts_alerts_total" in text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200 and health.json()["healthy"] is True
    finally:
        server.shutdown()
        server.server_close()
