"""Prometheus metrics of the ingest sidecar, served on an optional port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

CONSUMED = Counter(
    "ingest_messages_consumed_total", "Messages read from Kafka and flushed", ["topic"]
)
WRITTEN = Counter("ingest_rows_written_total", "Rows committed to bronze tables", ["topic"])
QUARANTINED = Counter(
    "ingest_messages_quarantined_total",
    "Messages committed to bronze.quarantine",
    ["topic", "reason"],
)
FENCED = Counter(
    "ingest_partitions_fenced_total",
    "Partition batches refused because another writer moved on",
    ["topic"],
)
LAG = Gauge("ingest_consumer_lag", "High watermark minus landed offset", ["topic", "partition"])
FLUSH_SECONDS = Histogram(
    "ingest_flush_seconds",
    "Decode + commit time of one flush",
    ["topic"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def serve_metrics(port: int | None) -> None:
    """Expose /metrics on `port` when one is configured."""
    if port:
        start_http_server(port)
