"""Prometheus metrics of the recommendation service, served on its own `/metrics`
(multiprocess-aware: `streaming.service.exposition`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

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
