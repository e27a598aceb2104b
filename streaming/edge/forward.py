"""Produce screened readings to Kafka and acknowledge each MQTT message only once Kafka has.

Every forwarded or quarantined message carries its MQTT message id into its delivery
callback; the callback acknowledges it to the broker (`ack(mid)`), so a message the
gateway dies holding is redelivered by the broker. Keys are the device ids (a device's
readings stay in order on one partition), batches are LZ4-compressed and linger a few
milliseconds, and the producer is idempotent with `acks=all` (streaming/producer.py's
defaults). A message Kafka finally refuses is never acknowledged: the gateway stops with
an error and its restart receives it again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from lakehouse.settings import Settings
from streaming.producer import producer_config

Ack = Callable[[int, int], None]  # (MQTT message id, connection generation)


class DeliveryFailedError(RuntimeError):
    """Kafka refused a message for good (after librdkafka's retries)."""


class Forwarder:
    """A Kafka producer whose delivery reports acknowledge MQTT messages."""

    def __init__(self, settings: Settings, topic: str, ack: Ack) -> None:
        config: dict[str, Any] = {
            **producer_config(settings),
            "linger.ms": settings.gateway_linger_ms,
            "compression.type": "lz4",
        }
        # Correctness, not tuning: each message's report is what acknowledges it.
        config["delivery.report.only.error"] = False
        self.topic = topic
        self.ack = ack
        self.in_flight = 0
        self.delivered = 0
        self.failure: KafkaError | None = None
        self._producer = Producer(config)

    def send(self, mid: int, key: str, payload: bytes,
             headers: list[tuple[str, bytes]] | None = None, generation: int = 0) -> None:
        """Queue one message; its delivery report will acknowledge `mid` (received on the
        connection numbered `generation`)."""
        callback = partial(self._delivered, mid, generation)
        while True:
            try:
                self._producer.produce(self.topic, payload, key, on_delivery=callback,
                                       headers=headers)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain it
        self.in_flight += 1

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (acknowledging); the number served."""
        return self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait for every queued message's report; the number still undelivered."""
        return self._producer.flush(timeout)

    def close(self) -> None:
        """Release the producer's connections (after `flush`)."""
        self._producer.close()

    def _delivered(self, mid: int, generation: int, error: KafkaError | None,
                   _message: Message) -> None:
        self.in_flight -= 1
        if error is not None:
            if self.failure is None:
                self.failure = error
            return
        self.delivered += 1
        self.ack(mid, generation)
