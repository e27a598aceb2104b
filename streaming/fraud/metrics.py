"""Prometheus metrics of the fraud decision service, served on its own `/metrics`
(multiprocess-aware: `streaming.service.exposition`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5)
"""Seconds: fine below the 10 ms target, coarse above."""
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05)


@dataclass(frozen=True)
class FraudMetrics:
    """Every metric the service records."""

    decisions: Counter
    latency: Histogram
    stages: Histogram
    batch_size: Histogram
    degraded: Counter
    replays: Counter
    redis_errors: Counter
    breaker_state: Gauge
    model_version: Gauge
    reloads: Counter
    reload_errors: Counter


METRICS = FraudMetrics(
    decisions=Counter(
        "fraud_decisions_total", "Answered requests by decision and HTTP status",
        ["decision", "status"],
    ),
    latency=Histogram(
        "fraud_decision_seconds", "Time to decide one payment, in the service",
        buckets=LATENCY_BUCKETS,
    ),
    stages=Histogram(
        "fraud_stage_seconds", "Time of each decision stage", ["stage"], buckets=STAGE_BUCKETS,
    ),
    batch_size=Histogram(
        "fraud_batch_size", "Payments decided together in one pass",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    ),
    degraded=Counter(
        "fraud_degraded_total", "Decisions made without something, by what was missing",
        ["missing"],
    ),
    replays=Counter(
        "fraud_idempotent_replays_total",
        "Requests for a transaction already decided, answered with the stored decision",
    ),
    redis_errors=Counter("fraud_redis_errors_total", "Redis calls that failed or timed out"),
    breaker_state=Gauge(
        "fraud_redis_breaker_state", "Redis circuit breaker: 0 closed, 1 open, 2 half-open",
        multiprocess_mode="max",
    ),
    model_version=Gauge(
        "fraud_model_version", "Registry version of the champion being served (0: none)",
        multiprocess_mode="max",
    ),
    reloads=Counter(
        "fraud_reloads_total", "Hot swaps of the model, the rules or the risk table", ["what"],
    ),
    reload_errors=Counter(
        "fraud_reload_errors_total",
        "Rules files refused (the previous rules stay) or reloads that failed", ["what"],
    ),
)
