"""Prometheus exposition for the online services, one process or several.

With several workers (`--workers N`) each is a process of its own, so the metrics use
prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by
`lakehouse serve` before the workers start): `/metrics` on any worker then sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
