"""The online services' Redis: a tight timeout, no retries, and a circuit breaker, with
its errors and state in the service's own metrics.

A call runs only while the breaker lets it; a failure or a timeout is counted and fed to
the breaker, and the caller gets None and falls back. With Redis down or slow a request
costs at most one timeout until the breaker opens, and nothing while it is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
import redis.asyncio
from prometheus_client import Counter, Gauge

from lakehouse.settings import Settings
from streaming.service.breaker import CircuitBreaker

Result = TypeVar("Result")


class GuardedRedis:
    """A Redis client, synchronous and asyncio, behind `redis_timeout_ms` and the circuit
    breaker (one breaker for both: they talk to the same server)."""

    def __init__(self, settings: Settings, errors: Counter, breaker_state: Gauge) -> None:
        seconds = settings.redis_timeout_ms / 1000
        options = {
            "socket_timeout": seconds,
            "socket_connect_timeout": seconds,
            "retry": None,  # no retries: a failed call falls back at once
        }
        self.client = redis.Redis.from_url(settings.redis_url, **options)
        self._url, self._options = settings.redis_url, options
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None
        self.breaker = CircuitBreaker(
            settings.redis_breaker_failures, settings.redis_breaker_reset_seconds
        )
        self.errors = errors
        self.breaker_state = breaker_state

    def call(self, work: Callable[[redis.Redis], Result]) -> Result | None:
        """`work(client)`, or None when the breaker skipped it or Redis failed."""
        if not self._allowed():
            return None
        try:
            result = work(self.client)
        except (redis.RedisError, OSError):
            self._failed()
            return None
        self._succeeded()
        return result

    async def acall(
        self, work: Callable[[redis.asyncio.Redis], Awaitable[Result]]
    ) -> Result | None:
        """`await work(async_client)`, or None when the breaker skipped it or Redis
        failed: `call` for a caller that lets the event loop run while Redis answers."""
        if not self._allowed():
            return None
        try:
            result = await work(self.async_client())
        except (redis.RedisError, OSError):
            self._failed()
            return None
        self._succeeded()
        return result

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop. A service has one loop; a test
        client or a fuzzer may run each request in a new one, and an asyncio connection
        belongs to the loop that opened it, so another loop gets a client of its own (the
        previous one's connections are dropped with it)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, redis.asyncio.Redis.from_url(self._url, **self._options))
        return self._async[1]

    def close(self) -> None:
        """Close the synchronous connection pool."""
        self.client.close()

    async def aclose(self) -> None:
        """Close both connection pools (the asyncio one if it belongs to this loop)."""
        self.client.close()
        if self._async is not None and self._async[0] is asyncio.get_running_loop():
            await self._async[1].aclose()
        self._async = None

    def _allowed(self) -> bool:
        if self.breaker.allow():
            return True
        self.breaker_state.set(self.breaker.state)
        return False

    def _failed(self) -> None:
        self.breaker.record_failure()
        self.errors.inc()
        self.breaker_state.set(self.breaker.state)

    def _succeeded(self) -> None:
        self.breaker.record_success()
        self.breaker_state.set(self.breaker.state)
