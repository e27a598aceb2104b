"""Prometheus metrics of the MQTT-to-Kafka gateway (counted per batch, not per message)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("gateway_messages_received_total", "MQTT messages taken from the broker")
FORWARDED = Counter(
    "gateway_messages_forwarded_total", "Valid readings produced to Kafka sensor_readings"
)
QUARANTINED = Counter(
    "gateway_messages_quarantined_total",
    "Invalid payloads sent on to Kafka for bronze.quarantine, by decoder reason",
    ["reason"],
)
FILTERED = Counter(
    "gateway_messages_filtered_total",
    "Messages dropped on purpose, by reason: duplicate, device_mismatch, bad_topic",
    ["reason"],
)
ACKED = Counter(
    "gateway_messages_acked_total",
    "MQTT messages acknowledged to the broker (after Kafka confirmed, or once filtered)",
)
IN_FLIGHT = Gauge(
    "gateway_messages_in_flight", "Messages received but not yet acknowledged to the broker"
)
RECONNECTS = Counter("gateway_mqtt_reconnects_total", "Reconnections to the MQTT broker")
BATCH_SECONDS = Histogram(
    "gateway_batch_seconds",
    "Screen + produce time of one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
