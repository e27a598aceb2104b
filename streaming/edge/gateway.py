"""The MQTT-to-Kafka edge gateway: one process of a shared-subscription group.

The gateway connects with a persistent session (MQTT v5, clean start off, a session
expiry) and subscribes at QoS 1 to `$share/<group>/factory/+/+/+`, so the broker splits
the fleet's readings between the group's processes and queues them while none is
connected. Messages are taken in batches (`GATEWAY_BATCH_MESSAGES` or
`GATEWAY_BATCH_MS`), judged by `screen.py` and produced by `forward.py`; a message is
acknowledged to the broker (paho's `manual_ack`) only once Kafka has confirmed it, or, if
it was filtered, once it is counted. A gateway killed at any moment therefore loses
nothing the broker accepted: the broker redelivers what was not acknowledged, and silver
drops the few readings that reach Kafka twice by event id.

One thread drives everything through paho's external event loop (`select` on the socket,
`loop_read`, `loop_write`, `loop_misc`) and librdkafka's `poll`, so acknowledgements are
written in the same turn as the delivery reports that release them. SIGTERM stops the
loop, flushes the producer, sends the last acknowledgements and exits 0.
"""

from __future__ import annotations

import gc
import logging
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from lakehouse.catalog import SENSOR_READINGS_MQTT, MqttTopicLayout
from lakehouse.settings import Settings
from streaming.edge import metrics
from streaming.edge.forward import DeliveryFailedError, Forwarder
from streaming.edge.provision import Credentials
from streaming.edge.screen import DedupeWindow, Screen, Verdicts
from streaming.generators.iot import IotGenerator
from streaming.ingest.decode import BatchDecoder
from streaming.service import health

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 60.0
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class GatewayReport:
    """What one gateway process did, for the CLI, the tests and the benchmark."""

    received: int = 0
    forwarded: int = 0
    quarantined: int = 0
    filtered: int = 0
    acked: int = 0
    reconnects: int = 0
    first_message_at: float | None = None
    last_ack_at: float | None = None

    @property
    def rate(self) -> float:
        """Messages per second from the first received to the last acknowledged."""
        if self.first_message_at is None or self.last_ack_at is None:
            return 0.0
        return self.received / max(self.last_ack_at - self.first_message_at, 1e-9)


@dataclass
class GatewayOptions:
    """How long one gateway runs; the rest is in the settings."""

    client_id: str | None = None
    max_seconds: float | None = None
    until_idle: float | None = None  # stop after this long without a message, once one came
    handle_signals: bool = True


def broker_address(settings: Settings) -> tuple[str, int]:
    """Host and port of MQTT_URL."""
    from urllib.parse import urlparse

    parsed = urlparse(settings.mqtt_url)
    return parsed.hostname or "127.0.0.1", parsed.port or 1883


def subscription_filter(settings: Settings,
                        layout: MqttTopicLayout = SENSOR_READINGS_MQTT) -> str:
    """`$share/<group>/factory/+/+/+`, or the plain filter when GATEWAY_SHARE_GROUP is
    empty (one gateway; Mosquitto 2.0 restores only plain subscriptions of a persistent
    session after a broker restart: docs/iot-edge.md)."""
    group = settings.gateway_share_group
    return f"$share/{group}/{layout.subscription}" if group else layout.subscription


def gateway_password(settings: Settings) -> str:
    """GATEWAY_MQTT_PASSWORD, or the provisioned one in IOT_EDGE_DIR's credentials.json."""
    if settings.gateway_mqtt_password is not None:
        return settings.gateway_mqtt_password.get_secret_value()
    return Credentials.load(settings.iot_edge).gateway[1]


class Gateway:
    """MQTT in, Kafka out; `run()` returns the report when stopped, raises on a Kafka failure."""

    def __init__(self, settings: Settings, options: GatewayOptions,
                 layout: MqttTopicLayout = SENSOR_READINGS_MQTT) -> None:
        self.settings = settings
        self.options = options
        self.layout = layout
        self.report = GatewayReport()
        self.client_id = (options.client_id or settings.gateway_client_id
                          or f"lakehouse-gateway-{socket.gethostname()}")
        decoder = BatchDecoder(layout.kafka_topic.event, settings.ingest_max_message_bytes)
        self.window = DedupeWindow(settings.gateway_dedupe_window)
        self.screen = Screen(decoder, self.window, layout)
        self.forwarder = Forwarder(settings, layout.kafka_topic.name, self._ack)
        self.client = self._client()
        self._mids: list[int] = []
        self._topics: list[str] = []
        self._payloads: list[bytes] = []
        self._batch_started = 0.0
        self._generation = 0  # bumped on reconnect: acks for an older session are void
        self._subscribed = False
        self.ready = threading.Event()  # set once subscribed, for tests and benchmarks
        self._stopping = False
        self._synced = GatewayReport()  # what the Prometheus counters already hold

    # --- MQTT ---------------------------------------------------------------------------

    def _client(self) -> Client:
        client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        client.username_pw_set(self.settings.gateway_mqtt_username,
                               gateway_password(self.settings))
        client.on_connect = self._connected
        client.on_subscribe = self._subscribed_cb
        client.on_message = self._received
        # External loop: queued packets (acks) are written when loop_write runs, in bulk.
        client.on_socket_register_write = lambda *_: None
        client.on_socket_unregister_write = lambda *_: None
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.gateway_session_expiry_seconds
        properties.ReceiveMaximum = self.settings.gateway_receive_maximum
        return properties

    def _connect(self) -> None:
        host, port = broker_address(self.settings)
        self._subscribed = False
        self.client.connect(host, port, keepalive=30, clean_start=False,
                            properties=self._connect_properties())
        deadline = time.monotonic() + 30.0
        while not self._subscribed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscription at {host}:{port} within 30 s")
            self._turn(0.05)
            if self._mids:  # a resumed session's backlog may arrive before the SUBACK
                self._process()

    def _connected(self, client: Client, _userdata: Any, flags: ConnectFlags,
                   reason: ReasonCode, _properties: Properties | None) -> None:
        if reason.is_failure:
            raise ConnectionRefusedError(f"MQTT broker refused the gateway: {reason}")
        log.info("connected (session present: %s)", flags.session_present)
        client.subscribe(subscription_filter(self.settings, self.layout),
                         options=SubscribeOptions(qos=1))

    def _subscribed_cb(self, _client: Client, _userdata: Any, _mid: int,
                       reasons: list[ReasonCode], _properties: Properties | None) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            raise PermissionError(f"subscription refused: {refused[0]}")
        self._subscribed = True
        self.ready.set()

    def _received(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        if not self._mids:
            self._batch_started = time.monotonic()
        self._mids.append(message.mid)
        try:
            self._topics.append(message.topic)
        except UnicodeDecodeError:
            self._topics.append("")  # not in the layout: filtered as bad_topic
        self._payloads.append(message.payload)

    def _ack(self, mid: int, generation: int) -> None:
        if generation != self._generation:
            return  # the session this message came on is gone: the broker redelivers it
        self.client.ack(mid, 1)
        self.report.acked += 1
        self.report.last_ack_at = time.monotonic()

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> GatewayReport:
        """Forward until stopped (SIGTERM, max seconds, idle); flush and acknowledge."""
        if self.options.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._request_stop)
        server = None
        if self.settings.gateway_metrics_port:
            server = health.serve(self.settings.gateway_metrics_port, self.health)
        self._warm_up()
        self._connect()
        # Everything allocated so far lives for the whole run; keep the collector off it.
        # paho allocates a message object (and its properties) per reading: with the
        # default thresholds full collections would rescan them all again and again.
        gc.freeze()
        gc.set_threshold(10_000, 10, 1000)
        started = time.monotonic()
        linger = self.settings.gateway_batch_ms / 1000
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = linger if not self._mids else max(0.0, self._batch_started + linger - now)
                self._turn(min(wait, 0.05))
                if self._mids and (len(self._mids) >= self.settings.gateway_batch_messages
                                   or time.monotonic() - self._batch_started >= linger):
                    self._process()
                if self.forwarder.failure is not None:
                    raise DeliveryFailedError(f"Kafka refused a reading: {self.forwarder.failure}")
                self._sync_metrics()
                if self._should_stop(started):
                    break
            self._finish()
        finally:
            if server is not None:
                server.shutdown()
        return self.report

    def _warm_up(self) -> None:
        """Decode one generated reading before connecting, so that the first real batch
        does not pay for the decoder's lazy imports and kernels (about a second)."""
        sample = next(iter(IotGenerator(n_machines=1).batches(1, 1))).values
        self.screen.decoder.decode(sample)

    def _turn(self, timeout: float) -> None:
        """Read what the broker sent (up to a batch), serve Kafka's reports, write acks."""
        client = self.client
        sock = client.socket()
        if sock is None:
            self._reconnect()
            return
        writers = [sock] if client.want_write() else []
        readable, _, _ = select.select([sock], writers, [], timeout)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if readable:
            room = self.settings.gateway_batch_messages
            while len(self._mids) < room:
                before = len(self._mids)
                rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or len(self._mids) == before:
                    break
        self.forwarder.poll(0)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.want_write():
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping:
            self._reconnect()

    def _process(self) -> None:
        """Judge the batch, produce what goes on, acknowledge what is filtered."""
        started = time.perf_counter()
        mids, topics, payloads = self._mids, self._topics, self._payloads
        self._mids, self._topics, self._payloads = [], [], []
        report = self.report
        if report.first_message_at is None:
            report.first_message_at = self._batch_started
        report.received += len(mids)
        verdicts = self.screen.judge(topics, payloads)
        self._send(verdicts, mids, topics, payloads)
        for index, reason in verdicts.filtered:
            metrics.FILTERED.labels(reason.value).inc()
            self._ack(mids[index], self._generation)
        report.filtered += len(verdicts.filtered)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _send(self, verdicts: Verdicts, mids: list[int], topics: list[str],
              payloads: list[bytes]) -> None:
        send = self.forwarder.send
        generation = self._generation
        for index, device in verdicts.forward:
            send(mids[index], device, payloads[index], None, generation)
        for item in verdicts.quarantine:
            headers = [("gateway_reason", item.reason.encode()),
                       ("gateway_detail", item.detail.encode()),
                       ("mqtt_topic", topics[item.index].encode())]
            send(mids[item.index], item.device, payloads[item.index], headers,
                 generation=generation)
            metrics.QUARANTINED.labels(item.reason).inc()
        self.report.forwarded += len(verdicts.forward)
        self.report.quarantined += len(verdicts.quarantine)

    def _reconnect(self) -> None:
        """The connection dropped: void pending acks, forget the window, reconnect.

        Messages in flight to Kafka still land, but their acks would name message ids of
        the old connection, which the broker may reuse; it redelivers them instead, and
        the dedupe window is cleared so those redeliveries are forwarded, not dropped
        (their first copy might not reach Kafka). Silver keeps one row per event id.
        """
        self._generation += 1
        self.window.clear()
        self._mids, self._topics, self._payloads = [], [], []
        self.report.reconnects += 1
        metrics.RECONNECTS.inc()
        for delay in (*RECONNECT_DELAYS_S, *([RECONNECT_DELAYS_S[-1]] * 100)):
            if self._stopping:
                return
            log.warning("MQTT connection lost; reconnecting in %.1fs", delay)
            time.sleep(delay)
            try:
                self._connect()
                return
            except (OSError, TimeoutError) as error:
                log.warning("reconnect failed: %s", error)
        raise ConnectionError("MQTT broker unreachable; giving up")

    def _finish(self) -> None:
        """Process what is held, wait for Kafka, send the last acks, disconnect."""
        if self._mids:
            self._process()
        remaining = self.forwarder.flush(FLUSH_TIMEOUT_S)
        self.forwarder.poll(0)
        if self.client.want_write():
            self.client.loop_write()
        self._sync_metrics()
        self.client.disconnect()
        self.forwarder.close()
        if remaining or self.forwarder.failure is not None:
            raise DeliveryFailedError(
                f"{remaining} readings undelivered at stop (first error: "
                f"{self.forwarder.failure}); they stay unacknowledged at the broker"
            )
        log.info("stopped: %s", self.report)

    def _should_stop(self, started: float) -> bool:
        now = time.monotonic()
        if self.options.max_seconds is not None and now - started >= self.options.max_seconds:
            return True
        idle = self.options.until_idle
        last = self.report.last_ack_at
        return (idle is not None and last is not None and not self._mids
                and self.forwarder.in_flight == 0 and now - last >= idle)

    def _sync_metrics(self) -> None:
        report, synced = self.report, self._synced
        metrics.RECEIVED.inc(report.received - synced.received)
        metrics.FORWARDED.inc(report.forwarded - synced.forwarded)
        metrics.ACKED.inc(report.acked - synced.acked)
        metrics.IN_FLIGHT.set(len(self._mids) + self.forwarder.in_flight)
        synced.received, synced.forwarded, synced.acked = (
            report.received, report.forwarded, report.acked)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while connected and subscribed to the broker with Kafka accepting
        readings (before the subscription, the broker drops what devices publish: a
        supervisor starts them only once this answers 200)."""
        connected = self.client.is_connected()
        healthy = connected and self._subscribed and self.forwarder.failure is None
        return healthy, {
            "status": "ok" if healthy else "unhealthy",
            "mqtt_connected": connected,
            "subscribed": self._subscribed,
            "kafka_failure": str(self.forwarder.failure) if self.forwarder.failure else None,
            "in_flight": len(self._mids) + self.forwarder.in_flight,
            "received": self.report.received,
            "acked": self.report.acked,
        }

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %d: flushing and stopping", signum)
        self.stop()

    def stop(self) -> None:
        """Ask the loop to finish: flush, acknowledge, disconnect (safe from any thread)."""
        self._stopping = True


def run_gateway(settings: Settings, options: GatewayOptions) -> GatewayReport:
    """Run one gateway process until it is stopped; the report of what it did."""
    return Gateway(settings, options).run()
