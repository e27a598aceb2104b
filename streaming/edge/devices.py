"""Devices over MQTT: each simulated device connects with its own credentials and publishes
its readings at QoS 1 under its own topic, as the fleet in a plant would.

One `DeviceFleet` drives every device's paho client from a single thread (paho's external
event loop: `select` over their sockets), so a fleet of hundreds costs no thread per
device. A reading counts as accepted when the broker's PUBACK says so; under MQTT v5 a
publish the ACL refuses comes back with reason code 135 (not authorized) and is counted as
refused. `publish_batches` feeds it a generator's batches (`lakehouse generate iot --via
mqtt`).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from paho.mqtt.client import Client, ConnectFlags, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from lakehouse.catalog import SENSOR_READINGS_MQTT, MqttTopicLayout
from streaming.edge.provision import Credentials
from streaming.generators import EventBatch

Outcome = Callable[[bytes, ReasonCode], None]
# Unacknowledged publishes per device before paho holds further ones back.
DEVICE_INFLIGHT = 100
# PUBACK reason code: accepted, but no subscription matched, so nobody will receive it.
NO_MATCHING_SUBSCRIBERS = 16


class DeviceRefusedError(RuntimeError):
    """The broker refused a device's connection (wrong or missing credentials)."""


@dataclass
class PublishReport:
    """What the broker did with the fleet's publishes."""

    accepted: int = 0
    refused: int = 0
    unrouted: int = 0  # accepted, but the broker had no subscriber for it (reason code 16)
    seconds: float = 0.0
    refused_reasons: dict[str, int] = field(default_factory=dict)


class DeviceFleet:
    """Connected MQTT clients, one per device, publishing QoS 1 from one thread."""

    def __init__(self, credentials: Credentials, devices: Iterable[str] | None = None, *,
                 layout: MqttTopicLayout = SENSOR_READINGS_MQTT,
                 on_outcome: Outcome | None = None, passwords: dict[str, str] | None = None
                 ) -> None:
        """`passwords` overrides the provisioned ones (tests use it to try wrong ones)."""
        self.credentials = credentials
        self.layout = layout
        self.on_outcome = on_outcome
        names = list(devices) if devices is not None else list(credentials.devices)
        secrets = {**credentials.devices, **(passwords or {})}
        self.report = PublishReport()
        self._pending: dict[tuple[str, int], bytes] = {}
        self._inflight: dict[str, int] = dict.fromkeys(names, 0)
        self._clients: dict[str, Client] = {}
        self._refusals: dict[str, ReasonCode] = {}
        for name in names:
            client = Client(CallbackAPIVersion.VERSION2, client_id=name, userdata=name,
                            protocol=MQTTProtocolVersion.MQTTv5)
            client.username_pw_set(name, secrets.get(name))
            client.max_inflight_messages_set(DEVICE_INFLIGHT)
            client.max_queued_messages_set(0)
            client.on_publish = self._published
            client.on_connect = self._connected
            self._clients[name] = client

    def connect(self, timeout: float = 30.0) -> None:
        """Connect every device; raise `DeviceRefusedError` if the broker refuses one."""
        for client in self._clients.values():
            client.connect(self.credentials.host, self.credentials.port, keepalive=60)
        deadline = time.monotonic() + timeout
        while any(not c.is_connected() for c in self._clients.values()):
            if self._refusals:
                name, reason = next(iter(self._refusals.items()))
                raise DeviceRefusedError(f"broker refused device {name}: {reason}")
            if time.monotonic() > deadline:
                raise TimeoutError("devices did not connect in time")
            self.pump(0.05)

    def publish(self, device: str, topic: str, payload: bytes) -> None:
        """Publish one reading at QoS 1 as `device` (its outcome arrives with its PUBACK)."""
        client = self._clients[device]
        while self._inflight[device] >= DEVICE_INFLIGHT:
            self.pump(0.01)
        info: MQTTMessageInfo = client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"device {device} could not publish: {info.rc}")
        self._pending[(device, info.mid)] = payload
        self._inflight[device] += 1

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until the broker has answered every publish."""
        deadline = time.monotonic() + timeout
        while self._pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._pending)} publishes unacknowledged")
            self.pump(0.05)

    def pump(self, timeout: float) -> None:
        """One turn of the event loop: read what arrived, write what is queued, keepalive."""
        clients = [c for c in self._clients.values() if c.socket() is not None]
        readers = [c.socket() for c in clients]
        writers = [c.socket() for c in clients if c.want_write()]
        readable, writable, _ = select.select(readers, writers, [], timeout)
        ready_r, ready_w = set(readable), set(writable)
        for client in clients:
            sock = client.socket()
            if sock in ready_r:
                client.loop_read()
            if sock in ready_w:
                client.loop_write()
            client.loop_misc()

    def close(self) -> None:
        """Disconnect every device."""
        for client in self._clients.values():
            if client.is_connected():
                client.disconnect()
            self.pump(0)

    def _connected(self, _client: Client, device: str, _flags: ConnectFlags,
                   reason: ReasonCode, _properties: Properties | None) -> None:
        if reason.is_failure:
            self._refusals[device] = reason

    def _published(self, _client: Client, device: str, mid: int, reason: ReasonCode,
                   _properties: Properties | None) -> None:
        payload = self._pending.pop((device, mid), b"")
        self._inflight[device] -= 1
        if reason.is_failure:
            self.report.refused += 1
            name = reason.getName()
            self.report.refused_reasons[name] = self.report.refused_reasons.get(name, 0) + 1
        else:
            self.report.accepted += 1
            if reason.value == NO_MATCHING_SUBSCRIBERS:
                self.report.unrouted += 1
        if self.on_outcome is not None:
            self.on_outcome(payload, reason)


def reading_topic(payload: bytes, device: str, layout: MqttTopicLayout = SENSOR_READINGS_MQTT
                  ) -> str:
    """The topic a device publishes a reading to; a payload that is not a readable reading
    (an injected fault) goes under the device's own topic with `unknown` levels."""
    try:
        reading = orjson.loads(payload)
        return layout.topic(str(reading["plant"]), device, str(reading["sensor_id"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return layout.topic("unknown", device, "unknown")


def publish_batches(fleet: DeviceFleet, batches: Iterable[EventBatch],
                    advance: Callable[[int], None] = lambda _: None) -> PublishReport:
    """Publish a generator's readings, each as the device its key names; wait for PUBACKs."""
    started = time.perf_counter()
    for batch in batches:
        for key, value in zip(batch.keys, batch.values, strict=True):
            device = key.decode()
            fleet.publish(device, reading_topic(value, device, fleet.layout), value)
        fleet.pump(0)
        advance(len(batch.values))
    fleet.drain()
    fleet.report.seconds = time.perf_counter() - started
    return fleet.report
