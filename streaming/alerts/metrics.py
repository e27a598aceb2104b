"""Prometheus metrics of the IoT alert processor and its health endpoint, on one optional
port: `/metrics` for Prometheus, `/healthz` answering 200 while the loop is turning (503
once it has not finished a pass for `STALE_SECONDS`, stuck on Redis or Kafka)."""

from __future__ import annotations

import time
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from streaming.service import health

STALE_SECONDS = 30.0

READINGS = Counter("iot_alerts_readings_total", "Sensor readings the detector processed")
INVALID = Counter(
    "iot_alerts_invalid_readings_total",
    "Readings not finite, outside physical limits or without a time (never in a baseline)",
)
REPEATED = Counter(
    "iot_alerts_repeated_readings_total",
    "Readings dropped because their sensor already reported that sequence or a later one",
)
BAD = Counter(
    "iot_alerts_bad_records_total",
    "Records that could not be decoded (skipped, counted, logged)",
    ["reason"],
)
ALERTS = Counter("iot_alerts_alerts_total", "Alert records produced", ["rule", "state"])
FENCED = Counter(
    "iot_alerts_partitions_fenced_total",
    "Partition batches Redis refused because its offsets were elsewhere",
)
REDIS_ERRORS = Counter("iot_alerts_redis_errors_total", "Failed attempts to reach Redis")
LAG = Gauge(
    "iot_alerts_consumer_lag", "High watermark minus the next offset to process", ["partition"]
)
BATCH_SECONDS = Histogram(
    "iot_alerts_batch_seconds",
    "Decode + detect + checkpoint + produce time of one micro-batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DELIVERED = Counter("iot_alerts_webhook_deliveries_total", "Alert records the webhook accepted")
DELIVERY_FAILURES = Counter(
    "iot_alerts_webhook_failures_total", "Failed webhook attempts (each is retried)", ["reason"]
)
ALREADY_DELIVERED = Counter(
    "iot_alerts_webhook_skipped_total", "Alert records read again but delivered before"
)
LAST_PASS = Gauge("iot_alerts_last_pass_timestamp_seconds", "When the loop last finished a pass")
LIMITS_VERSION = Gauge(
    "iot_alerts_device_limits_version",
    "Version of reference.device_limits the detectors judge by (-1: none recorded yet)",
)
LIMITS_OVERRIDES = Gauge(
    "iot_alerts_device_limits_overrides", "Per-device operating limits in force"
)
LIMITS_REFRESH_FAILURES = Counter(
    "iot_alerts_device_limits_refresh_failures_total",
    "Reads of reference.device_limits that failed (the limits in force were kept)",
)


_last_pass = [time.time()]


def beat() -> None:
    """Record that the processing loop finished a pass."""
    _last_pass[0] = time.time()
    LAST_PASS.set(_last_pass[0])


def _probe() -> tuple[bool, dict[str, Any]]:
    """Healthy while the loop finished a pass within `STALE_SECONDS`."""
    age = time.time() - _last_pass[0]
    return age < STALE_SECONDS, {"healthy": age < STALE_SECONDS,
                                 "seconds_since_pass": round(age, 1)}


def serve(port: int | None) -> ThreadingHTTPServer | None:
    """Serve /metrics and /healthz on `port` (a daemon thread) when one is configured."""
    if not port:
        return None
    beat()
    return health.serve(port, _probe)
