"""The IoT edge end to end: a private Mosquitto provisioned by the project, devices over
MQTT with their own credentials, the gateway, the embedded Kafka broker.

Nothing is mocked: each test starts its own Mosquitto (Debian's /usr/sbin/mosquitto) on a
free port with the config `lakehouse iot provision` writes, never the shared one on 1883.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.request import urlopen

import orjson
import pytest
from confluent_kafka import Consumer
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import REGISTRY

from lakehouse.catalog import QUARANTINE, SENSOR_READINGS, SENSOR_READINGS_MQTT
from lakehouse.delta import open_table
from lakehouse.settings import Settings
from streaming.edge.devices import DeviceFleet, DeviceRefusedError, publish_batches
from streaming.edge.gateway import Gateway, GatewayOptions
from streaming.edge.provision import CREDENTIALS_FILE, Credentials
from streaming.generators.iot import IotGenerator
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.conftest import lakehouse_command, settings_env
from tests.support.mosquitto import MosquittoServer, provisioned_mosquitto
from tests.support.net import free_port

LAYOUT = SENSOR_READINGS_MQTT
MACHINES = 4  # dev-0000 .. dev-0003, 16 sensors


@pytest.fixture
def fleet_generator() -> IotGenerator:
    return IotGenerator(seed=7, n_machines=MACHINES)


@pytest.fixture
def mosquitto(tmp_path: Path, fleet_generator: IotGenerator) -> Iterator[MosquittoServer]:
    server = provisioned_mosquitto(tmp_path / "edge", list(fleet_generator.devices.values))
    yield server
    server.stop()


@pytest.fixture
def edge_settings(settings: Settings, mosquitto: MosquittoServer) -> Settings:
    return settings.model_copy(update={
        "mqtt_url": mosquitto.url,
        "iot_edge_dir": mosquitto.directory,
        "gateway_client_id": f"gw-{uuid.uuid4().hex[:6]}",
        "gateway_share_group": f"g{uuid.uuid4().hex[:6]}",
        "gateway_batch_ms": 5.0,
    })


def edge_env(settings: Settings, client_id: str) -> dict[str, str]:
    """The environment of a `lakehouse gateway` subprocess with these settings."""
    return {
        **settings_env(settings),
        "MQTT_URL": settings.mqtt_url,
        "IOT_EDGE_DIR": str(settings.iot_edge),
        "GATEWAY_CLIENT_ID": client_id,
        "GATEWAY_SHARE_GROUP": settings.gateway_share_group,
        "GATEWAY_BATCH_MS": str(settings.gateway_batch_ms),
    }


def readings(fleet_generator: IotGenerator, n: int) -> list[tuple[str, bytes]]:
    """`n` generated readings as (device, payload), redeliveries included."""
    out = []
    for batch in fleet_generator.batches(n, 5_000):
        out.extend((k.decode(), v) for k, v in zip(batch.keys, batch.values, strict=True))
    return out


def kafka_values(settings: Settings, expected: int, timeout: float = 30.0) -> list:
    """Every message on sensor_readings (waiting until `expected` have arrived)."""
    consumer = Consumer({**settings.kafka_config(), "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500, "enable.auto.commit": False})
    consumer.subscribe([SENSOR_READINGS.name])
    messages: list = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(10_000, 0.5) if m.error() is None]
        messages.extend(batch)
        if len(messages) >= expected:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:
                break
    consumer.close()
    return messages


def start_gateway(settings: Settings, **options: object) -> tuple[Gateway, threading.Thread]:
    gateway = Gateway(settings, GatewayOptions(handle_signals=False, **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=gateway.run, daemon=True)
    thread.start()
    assert gateway.ready.wait(30), "gateway never subscribed"
    return gateway, thread


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- broker security ---------------------------------------------------------------------


def test_provisioning_writes_private_credentials(mosquitto: MosquittoServer) -> None:
    path = mosquitto.directory / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = orjson.loads(path.read_bytes())
    assert set(document["devices"]) == {f"dev-{m:04d}" for m in range(MACHINES)}
    hashed = (mosquitto.directory / "passwords").read_text()
    assert document["gateway"]["password"] not in hashed  # mosquitto_passwd hashed them
    assert "pattern write factory/+/%u/+" in (mosquitto.directory / "acl").read_text()


def test_credentials_live_under_the_state_folder_unless_placed_elsewhere(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    assert Settings(lakehouse_home=home).iot_edge == home.resolve() / "iot"
    elsewhere = tmp_path / "edge"
    assert Settings(lakehouse_home=home, iot_edge_dir=elsewhere).iot_edge == elsewhere.resolve()


@pytest.mark.parametrize("password", [None, "wrong"])
def test_device_without_valid_credentials_is_refused(mosquitto: MosquittoServer,
                                                     password: str | None) -> None:
    fleet = DeviceFleet(mosquitto.credentials, ["dev-0000"],
                        passwords={"dev-0000": password})  # type: ignore[dict-item]
    with pytest.raises(DeviceRefusedError):
        fleet.connect(timeout=10)


def test_device_may_publish_only_under_its_own_id(mosquitto: MosquittoServer) -> None:
    outcomes: list[ReasonCode] = []
    fleet = DeviceFleet(mosquitto.credentials, ["dev-0000"],
                        on_outcome=lambda _payload, reason: outcomes.append(reason))
    fleet.connect()
    fleet.publish("dev-0000", LAYOUT.topic("p", "dev-0001", "dev-0001-temperature"), b"{}")
    fleet.publish("dev-0000", LAYOUT.topic("p", "dev-0000", "dev-0000-temperature"), b"{}")
    fleet.drain(10)
    fleet.close()
    # Not authorized; then accepted (16, "no matching subscribers", is a success code).
    assert outcomes[0].value == 135
    assert not outcomes[1].is_failure


def _listener(mosquitto: MosquittoServer, user: str, password: str) -> tuple[Client, list]:
    received: list = []
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-listener",
                    protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(mosquitto.credentials.host, mosquitto.credentials.port)
    client.loop_start()
    client.subscribe(LAYOUT.subscription, qos=1)
    assert subscribed.wait(10)
    return client, received


def test_only_the_gateway_user_reads_readings(mosquitto: MosquittoServer) -> None:
    # Mosquitto grants the SUBSCRIBE itself; the ACL is applied to every message it would
    # deliver, so a device's subscription stays empty while the gateway user's receives.
    device, device_got = _listener(mosquitto, "dev-0000",
                                   mosquitto.credentials.devices["dev-0000"])
    gateway, gateway_got = _listener(mosquitto, *mosquitto.credentials.gateway)
    fleet = DeviceFleet(mosquitto.credentials, ["dev-0001"])
    fleet.connect()
    fleet.publish("dev-0001", LAYOUT.topic("p", "dev-0001", "s"), b"reading")
    fleet.drain(10)
    fleet.close()
    deadline = time.monotonic() + 10
    while not gateway_got and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the device's copy, were there one, would be sent alongside
    for client in (device, gateway):
        client.loop_stop()
        client.disconnect()
    assert gateway_got == [b"reading"]
    assert device_got == []


# --- the gateway -------------------------------------------------------------------------


def test_gateway_forwards_filters_and_quarantines(edge_settings: Settings,
                                                  mosquitto: MosquittoServer,
                                                  fleet_generator: IotGenerator) -> None:
    sent = readings(fleet_generator, 2_000)
    valid = {orjson.loads(v)["event_id"] for _, v in sent}
    redeliveries = len(sent) - len(valid)
    assert redeliveries > 0  # the generator's own byte-identical redeliveries
    spoofs = []
    for device, payload in sent[:5]:
        reading = orjson.loads(payload)
        other = f"dev-{(int(device[-4:]) + 1) % MACHINES:04d}"
        spoof = {**reading, "device_id": other, "event_id": uuid.uuid4().hex}
        spoofs.append((device, orjson.dumps(spoof)))
    poison = [("dev-0001", b"{not json"), ("dev-0002", b'{"event_id": "x"}'),
              ("dev-0003", b"[1, 2]")]
    before = {reason: metric("gateway_messages_filtered_total", reason=reason)
              for reason in ("duplicate", "device_mismatch")}

    gateway, thread = start_gateway(edge_settings, until_idle=1.5)
    fleet = DeviceFleet(mosquitto.credentials)
    fleet.connect()
    for device, payload in [*sent, *spoofs, *poison]:
        fleet.publish(device, LAYOUT.topic("plant-x", device, "s"), payload)
    fleet.drain()
    fleet.close()
    thread.join(60)
    report = gateway.report

    total = len(sent) + len(spoofs) + len(poison)
    assert report.received == total == report.acked
    assert report.received == report.forwarded + report.quarantined + report.filtered
    assert report.forwarded == len(valid)
    assert report.quarantined == len(poison)
    assert metric("gateway_messages_filtered_total", reason="duplicate") - before[
        "duplicate"] == redeliveries
    assert metric("gateway_messages_filtered_total", reason="device_mismatch") - before[
        "device_mismatch"] == len(spoofs)

    messages = kafka_values(edge_settings, len(valid) + len(poison))
    headers = [dict(m.headers() or []) for m in messages]
    reasons = sorted(h["gateway_reason"].decode() for h in headers if "gateway_reason" in h)
    assert reasons == ["invalid_json", "missing_required_field", "not_an_object"]
    forwarded = [orjson.loads(m.value())["event_id"] for m, h in zip(messages, headers,
                                                                      strict=True)
                 if "gateway_reason" not in h]
    assert sorted(forwarded) == sorted(valid)  # each once: no duplicate, no spoof

    # The ingest sidecar lands the poison in bronze.quarantine with the same reasons.
    worker = IngestWorker(edge_settings, IngestOptions(topics=[SENSOR_READINGS.name],
                                                       until_idle=True, handle_signals=False))
    worker.run()
    quarantine = open_table(QUARANTINE, edge_settings).to_pyarrow_table()
    assert sorted(quarantine.column("reason").to_pylist()) == reasons
    assert sorted(quarantine.column("key").to_pylist()) == [b"dev-0001", b"dev-0002",
                                                            b"dev-0003"]


def test_gateway_killed_under_traffic_loses_nothing(edge_settings: Settings,
                                                    mosquitto: MosquittoServer,
                                                    fleet_generator: IotGenerator) -> None:
    client_id = "gw-kill"
    env = edge_env(edge_settings, client_id)
    command = lakehouse_command("gateway", "--no-json-logs")
    accepted: list[bytes] = []

    def keep(payload: bytes, reason: ReasonCode) -> None:
        if not reason.is_failure:
            accepted.append(payload)

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fleet = DeviceFleet(mosquitto.credentials, on_outcome=keep)
    fleet.connect()
    sent = readings(fleet_generator, 12_000)
    # Let the gateway's session exist before traffic: wait for its subscription.
    _wait_for_session(mosquitto, client_id)
    for number, (device, payload) in enumerate(sent):
        fleet.publish(device, LAYOUT.topic("p", device, "s"), payload)
        if number == 6_000:
            first.send_signal(signal.SIGKILL)  # mid-stream: some acked, some in flight
    fleet.drain()
    fleet.close()
    first.wait(10)

    port = free_port()
    second = subprocess.Popen([*command, "--metrics-port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wanted = {orjson.loads(p)["event_id"] for p in accepted}
    assert len(wanted) > 10_000
    messages = kafka_values(edge_settings, len(wanted), timeout=60)
    landed = {orjson.loads(m.value())["event_id"] for m in messages}
    health = orjson.loads(urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
    exposition = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert health["mqtt_connected"] and health["status"] == "ok"
    assert "gateway_messages_acked_total" in exposition
    second.send_signal(signal.SIGTERM)
    output = second.communicate(timeout=30)[0].decode()
    assert second.returncode == 0, output
    assert wanted <= landed, f"{len(wanted - landed)} accepted readings never reached Kafka"


def _wait_for_session(mosquitto: MosquittoServer, client_id: str) -> None:
    """Until the broker's log shows the gateway connected (its session then holds traffic)."""
    log = mosquitto.directory / "mosquitto.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and client_id in log.read_text(errors="replace"):
            time.sleep(0.5)  # the SUBSCRIBE follows the CONNECT closely
            return
        time.sleep(0.05)
    raise AssertionError(f"gateway {client_id} never connected")


def test_two_gateways_share_the_subscription(edge_settings: Settings,
                                             mosquitto: MosquittoServer,
                                             fleet_generator: IotGenerator) -> None:
    one, one_thread = start_gateway(edge_settings.model_copy(
        update={"gateway_client_id": "gw-a"}), until_idle=1.5)
    two, two_thread = start_gateway(edge_settings.model_copy(
        update={"gateway_client_id": "gw-b"}), until_idle=1.5)
    fleet = DeviceFleet(mosquitto.credentials)
    fleet.connect()
    report = publish_batches(fleet, fleet_generator.batches(2_000, 1_000))
    fleet.close()
    one_thread.join(60)
    two_thread.join(60)
    assert one.report.received > 0 and two.report.received > 0
    assert one.report.received + two.report.received == report.accepted == 2_000


def test_cli_provisions_a_broker_the_devices_publish_to(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    edge = tmp_path / "iot"
    env = {**settings_env(make_settings()), "MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "IOT_EDGE_DIR": str(edge)}
    subprocess.run(lakehouse_command("iot", "provision", "--devices", "200"), env=env,
                   check=True, capture_output=True)
    server = MosquittoServer(edge, Credentials.load(edge)).start()
    try:
        done = subprocess.run(
            lakehouse_command("generate", "iot", "--via", "mqtt", "--events", "500"),
            env=env, check=True, capture_output=True, text=True)
    finally:
        server.stop()
    assert "published 500 readings over MQTT" in done.stdout
    assert "0 refused" in done.stdout


def test_gateway_rides_out_a_broker_restart(edge_settings: Settings,
                                            mosquitto: MosquittoServer,
                                            fleet_generator: IotGenerator) -> None:
    sent = readings(fleet_generator, 2_000)
    wanted = {orjson.loads(p)["event_id"] for _, p in sent}
    # A plain subscription: Mosquitto 2.0.11 restores a persistent session's plain
    # subscriptions after a restart but not its shared ones (docs/iot-edge.md).
    edge_settings = edge_settings.model_copy(update={"gateway_share_group": ""})
    gateway, thread = start_gateway(edge_settings, until_idle=3.0)
    codes: list[int] = []
    for number, half in enumerate((sent[:1_000], sent[1_000:])):
        fleet = DeviceFleet(mosquitto.credentials,
                            on_outcome=lambda _payload, reason: codes.append(reason.value))
        fleet.connect()
        for device, payload in half:
            fleet.publish(device, LAYOUT.topic("p", device, "s"), payload)
        fleet.drain()
        fleet.close()
        if number == 0:  # between the halves, while the gateway is connected
            mosquitto.stop()  # SIGTERM: the broker saves its sessions and queues
            mosquitto.start()
    thread.join(90)
    assert gateway.report.reconnects >= 1
    landed = {orjson.loads(m.value())["event_id"] for m in kafka_values(edge_settings,
                                                                         len(wanted))}
    assert codes == [0] * len(sent)  # every reading accepted and routed to the session
    assert wanted <= landed, f"{len(wanted - landed)} accepted readings never reached Kafka"
