"""The online services' Redis: a tight timeout, no retries, and a circuit breaker, with
its errors and state in the service's own metrics.

A call runs only while the breaker lets it; a failure or a timeout is counted and fed to
the breaker, and the caller gets None and falls back. With Redis down or slow a request
costs at most one timeout until the breaker opens, and nothing while it is open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis
from prometheus_client import Counter, Gauge

from lakehouse.settings import Settings
from streaming.service.breaker import CircuitBreaker

Result = TypeVar("Result")


class GuardedRedis:
    """A Redis client behind `redis_timeout_ms` and the circuit breaker."""

    def __init__(self, settings: Settings, errors: Counter, breaker_state: Gauge) -> None:
        seconds = settings.redis_timeout_ms / 1000
        self.client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=None,  # no retries: a failed call falls back at once
        )
        self.breaker = CircuitBreaker(
            settings.redis_breaker_failures, settings.redis_breaker_reset_seconds
        )
        self.errors = errors
        self.breaker_state = breaker_state

    def call(self, work: Callable[[redis.Redis], Result]) -> Result | None:
        """`work(client)`, or None when the breaker skipped it or Redis failed."""
        if not self.breaker.allow():
            self.breaker_state.set(self.breaker.state)
            return None
        try:
            result = work(self.client)
        except (redis.RedisError, OSError):
            self.breaker.record_failure()
            self.errors.inc()
            self.breaker_state.set(self.breaker.state)
            return None
        self.breaker.record_success()
        self.breaker_state.set(self.breaker.state)
        return result

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
