"""`lakehouse import nab`: NAB's machine temperature as one device's readings over MQTT.

The mapping is checked on small hand-written slices of the file; every row's counted
reason is checked against what the gateway's and ingest's decoder and silver's rules do
with its message; and a slice with an injected excursion goes over a private Mosquitto
through the gateway to the project's broker, into bronze once per reading, and through
the alert processor, whose alert is read back at the series' own time and scored the
NAB way; the command publishes a slice to a private broker and prints each reason.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bench.nab.__main__ import replay_scores
from lakehouse.catalog import IOT_ALERTS, QUARANTINE, SENSOR_READINGS
from lakehouse.device_limits import read_limits
from lakehouse.models import nab
from lakehouse.models.nab_replay import REPLAY_DEVICE, alert_openings, replay_alerts
from lakehouse.settings import Settings
from lakehouse.transforms.silver import to_silver
from streaming.alerts.processor import AlertOptions, AlertProcessor
from streaming.edge.gateway import Gateway, GatewayOptions
from streaming.edge.provision import Credentials
from streaming.importers import IMPORTERS
from streaming.importers.common import CLEAN
from streaming.importers.nab import (
    HEADER,
    REASONS,
    SOURCE,
    DeviceNotProvisionedError,
    NabImport,
    event_id,
    paced,
    publish,
)
from streaming.ingest.decode import BatchDecoder, Reason
from streaming.ingest.provenance import with_provenance
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.conftest import REPO, settings_env
from tests.support import importing
from tests.support.mosquitto import MosquittoServer, provisioned_mosquitto
from tests.support.redis_server import RedisServer
from tests.support.traffic import bronze, quarantine

ROWS = [
    ("2013-12-02 21:15:00", "73.96732207"),
    ("2013-12-02 21:20:00", "74.93588199999998"),
    ("2013-12-02 21:25:00", "76.12416182"),
    # The real file repeats an hour (2014-01-07 02:00 comes twice): two rows, two readings.
    ("2014-01-07 02:00:00", "85.1"),
    ("2014-01-07 02:00:00", "85.1"),
]


def write_csv(path: Path, rows: list[tuple[str, ...]] | list[list[str]]) -> Path:
    """The rows as NAB's CSV, header first."""
    return importing.write_csv(path, HEADER, rows)


def messages(importer: NabImport) -> list[dict[str, object]]:
    """Every message the import sends, decoded back from JSON, in file order."""
    return importing.sent_messages(importer, batch_size=2)


def test_rows_map_to_one_devices_readings_with_utc_times_and_stable_ids(tmp_path: Path) -> None:
    importer = NabImport(write_csv(tmp_path / "nab.csv", ROWS))
    sent = messages(importer)
    values = [orjson.dumps(message) for message in sent]
    decoded = BatchDecoder(SENSOR_READINGS.event, 1 << 20).decode(values)
    assert decoded.rejects == [] and decoded.table.num_rows == len(ROWS)
    assert {
        (m["device_id"], m["sensor_id"], m["sensor_type"], m["plant"], m["unit"]) for m in sent
    } == {(REPLAY_DEVICE, f"{REPLAY_DEVICE}-temperature", "temperature", "plant-nab", "degC")}
    assert [m["event_time"] for m in sent[:2]] == [
        "2013-12-02T21:15:00.000000Z",
        "2013-12-02T21:20:00.000000Z",
    ]
    times = decoded.table.column("event_time").to_pylist()
    assert times[0] == datetime(2013, 12, 2, 21, 15, tzinfo=UTC)
    assert [m["value"] for m in sent] == [float(value) for _, value in ROWS]
    assert [m["sequence"] for m in sent] == list(range(len(ROWS)))
    assert all(m["label_anomaly"] is None and m["label_failure_at"] is None for m in sent)
    ids = [m["event_id"] for m in sent]
    assert len(set(ids)) == len(ROWS) and ids == [event_id(n) for n in range(len(ROWS))]
    # The same ids on another run and in a shorter slice.
    again = messages(NabImport(write_csv(tmp_path / "again.csv", ROWS), limit=3))
    assert [m["event_id"] for m in again] == ids[:3]
    assert IMPORTERS["nab"] is NabImport


def fates(values: list[bytes]) -> list[str]:
    """What the platform does with each message: the decoder's reason (the gateway and the
    ingest share it), or the silver rules it breaks, or `clean`; by the platform's code."""
    decoded = BatchDecoder(SENSOR_READINGS.event, 1 << 20).decode(values)
    outcome = {reject.index: reject.reason.value for reject in decoded.rejects}
    landed = with_provenance(
        decoded.table,
        np.zeros(decoded.table.num_rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    silver = to_silver(landed, SENSOR_READINGS.name)
    assert isinstance(silver.rejected, pa.Table)
    broken = dict(
        zip(
            silver.rejected.column("event_id").to_pylist(),
            silver.rejected.column("broken_rules").to_pylist(),
            strict=True,
        )
    )
    ids = decoded.table.column("event_id").to_pylist()
    for index, identifier in zip(decoded.indices.tolist(), ids, strict=True):
        outcome[index] = " ".join(broken.get(identifier, [CLEAN]))
    return [outcome[index] for index in range(len(values))]


def assert_accounted(importer: NabImport, rows: int) -> dict[str, int]:
    """Every row is sent once, counted once, and its counted reason is its fate."""
    plan = importer.plan()
    assert plan.selected == rows and sum(plan.per_reason.values()) == rows
    sent = list(importer.rows())
    assert [row.position for row in sent] == list(range(rows))
    values = [value for batch in importer.batches(rows, 7) for value in batch.values]
    assert values == [row.value for row in sent]
    reasons = [row.reason for row in sent]
    assert {r: reasons.count(r) for r in set(reasons)} == plan.per_reason
    for row, fate in zip(sent, fates(values), strict=True):
        if row.reason == CLEAN:
            assert fate == CLEAN, fate
        else:
            assert fate == Reason.MISSING_FIELD.value, (row.reason, fate)
            assert "source_row" in orjson.loads(row.value)
    return plan.per_reason


BAD_ROWS: list[list[str]] = [
    ["2013-12-02 21:30:00"],
    ["2013-12-02 21:35:00", "74.1", "extra"],
    [],
    ["02/12/2013 21:40", "74.2"],
    ["2013-12-02 21:45:00", "nan"],
    ["2013-12-02 21:50:00", "1e999"],
    ["2013-12-02 21:55:00", "seventy"],
    ["2013-12-02 22:00:00", "250.0"],
    ["2013-12-02 22:05:00", "-41"],
]


def test_bad_rows_are_counted_per_reason_and_quarantined_with_their_fields(
    tmp_path: Path,
) -> None:
    assert {reason.goes_to for reason in REASONS} == {f"{QUARANTINE.key} (missing_required_field)"}
    importer = NabImport(write_csv(tmp_path / "bad.csv", [*map(list, ROWS), *BAD_ROWS]))
    assert assert_accounted(importer, len(ROWS) + len(BAD_ROWS)) == {
        CLEAN: len(ROWS),
        "wrong_field_count": 3,
        "unreadable_timestamp": 1,
        "unreadable_value": 3,
        "outside_physical_limits": 2,
    }
    impossible = orjson.loads(list(importer.rows())[len(ROWS) + 7].value)
    assert impossible["value"] is None and impossible["source_row"] == [
        "2013-12-02 22:00:00",
        "250.0",
    ]


_GARBAGE = st.text(
    st.characters(exclude_categories=("Cs",), include_characters='\n\r\t,"\x00'), max_size=14
)
_FIELD = st.one_of(
    st.sampled_from(
        [
            "2013-12-02 21:15:00",
            "2014-02-30 00:00:00",
            "0001-01-01 00:00:00",
            "73.9",
            "-40",
            "200",
            "200.0001",
            "1e3",
            "inf",
            "",
            " 5 ",
        ]
    ),
    _GARBAGE,
)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_FIELD, max_size=3), min_size=1, max_size=20))
def test_garbage_rows_never_crash_and_are_all_accounted_for(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    path = write_csv(tmp_path / "fuzz.csv", rows)
    with path.open(newline="", encoding="utf-8") as file:
        records = sum(1 for _ in csv.reader(file)) - 1
    assert_accounted(NabImport(path), records)


def test_paced_replay_keeps_the_compressed_original_spacing(tmp_path: Path) -> None:
    importer = NabImport(write_csv(tmp_path / "nab.csv", ROWS))
    now = [0.0]
    waited: list[float] = []

    def wait(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    due = []
    for _ in paced(importer.batches(len(ROWS), 1), 300.0, wait, clock=lambda: now[0]):
        due.append(now[0])
    # 5 minutes apart at 300x is a second apart; the jump to January is held back in
    # one-second waits; the repeated hour is not held at all.
    assert due[:3] == [0.0, 1.0, 2.0]
    january = (datetime(2014, 1, 7, 2) - datetime(2013, 12, 2, 21, 15)).total_seconds() / 300
    assert due[3] == pytest.approx(january) and due[4] == due[3]
    assert max(waited) <= 1.0


# --- end to end: MQTT, the gateway, Kafka, the ingest and the alert processor -----------------

START = datetime(2013, 12, 2, 21, 15)
EXCURSION = 200


def slice_with_excursion(rows: int = 300) -> list[tuple[str, str]]:
    """Five-minute readings around 70 with a little noise, and one obvious excursion."""
    noise = np.random.default_rng(11).normal(0.0, 0.4, rows)
    values = 70.0 + noise
    values[EXCURSION] = 150.0
    return [
        ((START + timedelta(minutes=5 * n)).strftime("%Y-%m-%d %H:%M:%S"), f"{values[n]:.5f}")
        for n in range(rows)
    ]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = provisioned_mosquitto(tmp_path / "edge", [REPLAY_DEVICE])
    yield server
    server.stop()


def run_gateway(settings: Settings, mosquitto: MosquittoServer) -> tuple[Gateway, threading.Thread]:
    edge = settings.model_copy(
        update={
            "mqtt_url": mosquitto.url,
            "iot_edge_dir": mosquitto.directory,
            "gateway_client_id": f"gw-{uuid.uuid4().hex[:6]}",
            "gateway_share_group": f"g{uuid.uuid4().hex[:6]}",
            "gateway_batch_ms": 5.0,
        }
    )
    gateway = Gateway(edge, GatewayOptions(handle_signals=False, until_idle=2.0))
    thread = threading.Thread(target=gateway.run, daemon=True)
    thread.start()
    assert gateway.ready.wait(30), "gateway never subscribed"
    return gateway, thread


def test_a_slice_arrives_once_through_the_gateway_and_its_excursion_raises_an_alert(
    settings: Settings, mosquitto: MosquittoServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    rows = slice_with_excursion()
    bad = [["2013-12-03 22:00:00", "not a number"]]
    importer = NabImport(write_csv(tmp_path / "slice.csv", [*map(list, rows), *bad]))
    ids = [event_id(n) for n in range(len(rows))]

    gateway, thread = run_gateway(settings, mosquitto)
    report = publish(importer, mosquitto.credentials)
    thread.join(60)
    assert report.accepted == len(rows) + 1 and report.refused == 0
    assert gateway.report.forwarded == len(rows) and gateway.report.quarantined == 1

    IngestWorker(
        settings,
        IngestOptions(topics=[SENSOR_READINGS.name], until_idle=True, handle_signals=False),
    ).run()
    landed = bronze(settings, SENSOR_READINGS.name)
    assert sorted(landed.column("event_id").to_pylist()) == sorted(ids)  # each exactly once
    held = quarantine(settings)
    assert held.column("reason").to_pylist() == [Reason.MISSING_FIELD.value]
    assert held.column("key").to_pylist() == [REPLAY_DEVICE.encode()]

    online = settings.model_copy(
        update={
            "redis_url": redis_server.url,
            "iot_alerts_group_id": f"alerts-{uuid.uuid4().hex[:8]}",
            "iot_alerts_webhook_url": None,
            "kafka_session_timeout_ms": 3000,
            "kafka_heartbeat_interval_ms": 300,
        }
    )
    began = time.monotonic()
    AlertProcessor(
        online, AlertOptions(until_idle=3.0, max_seconds=90, handle_signals=False, webhook=False)
    ).run()
    assert time.monotonic() - began < 90
    IngestWorker(
        settings, IngestOptions(topics=[IOT_ALERTS.name], until_idle=True, handle_signals=False)
    ).run()
    excursion = np.datetime64(START + timedelta(minutes=5 * EXCURSION), "ns")
    assert list(replay_alerts(settings, rules=("above_limit",))) == [excursion]
    openings = replay_alerts(settings)
    assert excursion in openings
    # The same times from the records themselves, deduplicated by alert id.
    records = bronze(settings, IOT_ALERTS.name)
    doubled = pa.concat_tables([records, records])
    assert list(alert_openings(doubled)) == list(openings)
    assert list(alert_openings(records, device_id="dev-0000")) == []
    # NAB's scoring takes them as detections on the slice's own timestamps.
    stamps = np.array(
        [np.datetime64(START + timedelta(minutes=5 * n), "ns") for n in range(len(rows))]
    )
    window = nab.Window(stamps[EXCURSION - 5], stamps[EXCURSION + 5])
    judged = nab.score(openings, (window,), stamps, nab.STANDARD)
    assert judged.true_positives == 1 and judged.false_negatives == 0
    # `python -m bench.nab --replay` scores the same alerts, each rule that fired alone too.
    series = nab.Series(stamps, np.zeros(len(rows)), (window,))
    scored = replay_scores(settings, series, nab.STANDARD)
    assert scored["platform alerts (all rules)"]["score"] == judged
    assert scored["platform alerts (above_limit)"]["detections"] == 1


def test_an_unprovisioned_device_is_refused_with_the_command_to_fix_it(
    tmp_path: Path,
) -> None:
    credentials = Credentials("127.0.0.1", 1, ("gateway", "x"), {"dev-0000": "y"})
    with pytest.raises(DeviceNotProvisionedError, match="--extra-device nab-machine-01"):
        publish(NabImport(write_csv(tmp_path / "nab.csv", ROWS)), credentials)


def test_the_command_publishes_a_slice_and_prints_where_each_row_goes(
    settings: Settings, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    source = tmp_path / "real" / SOURCE
    source.parent.mkdir(parents=True)
    write_csv(source, [*map(list, ROWS), *BAD_ROWS])
    environment = {
        **settings_env(settings),
        "REAL_DATA_DIR": str(tmp_path / "real"),
        "MQTT_URL": mosquitto.url,
        "IOT_EDGE_DIR": str(mosquitto.directory),
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "cli.app", "import", "nab", "--limit", "9"]
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    table = " ".join(done.stdout.split())
    assert "read (selected) │ 9 │" in table
    assert "wrong_field_count │ 3 │ bronze.quarantine (missing_required_field)" in table
    assert "clean │ 5 │ silver" in table
    assert f"readings accepted by the broker │ 9 │ {mosquitto.url}" in table
    # NAB publishes no operating limit: the machine is registered as having none.
    limits = read_limits(settings, REPLAY_DEVICE).select(["sensor_type", "low", "high"])
    assert limits.to_pylist() == [{"sensor_type": "temperature", "low": None, "high": None}]


def test_a_paced_replay_reaches_the_broker_at_the_compressed_pace(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    importer = NabImport(write_csv(tmp_path / "nab.csv", ROWS), limit=3)
    began = time.monotonic()
    report = publish(importer, mosquitto.credentials, speedup=1500.0)
    # Three readings 5 minutes apart at 1500x: the last one 0.4 s after the first.
    assert report.accepted == 3 and report.refused == 0
    assert time.monotonic() - began >= 0.4
