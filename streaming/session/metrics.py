"""Prometheus metrics of the session processor, served on an optional port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

APPLIED = Counter("session_features_events_applied_total", "Events whose features Redis now holds")
BAD = Counter(
    "session_features_bad_records_total",
    "Records that could not be decoded (skipped, counted, logged)",
    ["topic", "reason"],
)
FENCED = Counter(
    "session_features_partitions_fenced_total",
    "Partition batches Redis refused because its offsets were already past them",
    ["topic"],
)
REDIS_ERRORS = Counter(
    "session_features_redis_errors_total", "Failed attempts to apply a batch to Redis"
)
LAG = Gauge(
    "session_features_consumer_lag",
    "High watermark minus the next offset to apply",
    ["topic", "partition"],
)
BATCH_SECONDS = Histogram(
    "session_features_batch_seconds",
    "Decode + aggregate + apply time of one micro-batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def serve_metrics(port: int | None) -> None:
    """Expose /metrics on `port` when one is configured."""
    if port:
        start_http_server(port)
