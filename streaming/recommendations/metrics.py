"""Prometheus metrics of the recommendation service, served on its own `/metrics`.

With several workers (`--workers N`) each is a process of its own, so the metrics use
prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by
`lakehouse serve` before the workers start): `/metrics` on any worker then sums them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5)
"""Seconds: fine below the 5 ms target, coarse above."""


@dataclass(frozen=True)
class ServiceMetrics:
    """Every metric the service records."""

    requests: Counter
    latency: Histogram
    redis_errors: Counter
    breaker_state: Gauge
    model_version: Gauge
    reloads: Counter


METRICS = ServiceMetrics(
    requests=Counter(
        "recommendations_requests_total",
        "Recommendation requests by the source of the answer and HTTP status",
        ["source", "status"],
    ),
    latency=Histogram(
        "recommendations_request_seconds",
        "Time to answer a recommendation request, in the service",
        ["source"],
        buckets=LATENCY_BUCKETS,
    ),
    redis_errors=Counter(
        "recommendations_redis_errors_total", "Redis calls that failed or timed out"
    ),
    breaker_state=Gauge(
        "recommendations_redis_breaker_state",
        "Redis circuit breaker: 0 closed, 1 open, 2 half-open",
        multiprocess_mode="max",
    ),
    model_version=Gauge(
        "recommendations_model_version",
        "Registry version of the champion being served (0: none)",
        multiprocess_mode="max",
    ),
    reloads=Counter(
        "recommendations_reloads_total",
        "Hot swaps of the model or the batch publication, by what changed",
        ["what"],
    ),
)


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
