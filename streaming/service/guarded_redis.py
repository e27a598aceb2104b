"""The online services' Redis: a tight timeout, no retries, and a circuit breaker, with
its errors and state in the service's own metrics.

A call runs only while the breaker lets it; a failure or a timeout is counted and fed to
the breaker, and the caller gets None and falls back. With Redis down or slow a request
costs at most one timeout until the breaker opens, and nothing while it is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
        # The asyncio connection's calls are timed as a whole by `acall`: redis-py's own
        # socket timeout wraps every send in `asyncio.wait_for`, a task per command.
        self._url, self._seconds = settings.redis_url, seconds
        self._options = {**options, "socket_timeout": None}
        self._async: _LoopConnection | None = None
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
        self, work: Callable[[redis.asyncio.Connection], Awaitable[Result]]
    ) -> Result | None:
        """`await work(connection)`, or None when the breaker skipped it or Redis failed:
        `call` for a caller that lets the event loop run while Redis answers.

        The calls share one asyncio connection, one at a time (a lock queues them): the
        fraud service makes at most one call at a time, and redis-py's asyncio pool
        (a lock, a readiness probe and release events per call) cost more CPU than the
        round trip itself. The call as a whole gets `redis_timeout_ms` (the timeout
        cancels `work`, which must then close the connection: a late reply must never
        answer the next command). A connection that failed is reopened by the next
        call."""
        if not self._allowed():
            return None
        own = self._loop_connection()
        try:
            async with own.lock, asyncio.timeout(self._seconds):
                result = await work(own.connection)
        except (redis.RedisError, OSError):  # OSError includes the timeout's TimeoutError
            self._failed()
            return None
        self._succeeded()
        return result

    def close(self) -> None:
        """Close the synchronous connection pool."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the synchronous pool and the asyncio connection (if it belongs to this
        loop)."""
        self.client.close()
        own, self._async = self._async, None
        if own is not None and own.loop is asyncio.get_running_loop():
            await own.connection.disconnect()

    def _loop_connection(self) -> _LoopConnection:
        """The asyncio connection of the running event loop. A service has one loop; a
        test client or a fuzzer may run each request in a new one, and an asyncio
        connection belongs to the loop that opened it, so another loop gets its own (the
        previous one is dropped)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async.loop is not loop:
            pool = redis.asyncio.ConnectionPool.from_url(self._url, **self._options)
            self._async = _LoopConnection(loop, pool.make_connection(), asyncio.Lock())
        return self._async

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


@dataclass(frozen=True)
class _LoopConnection:
    loop: asyncio.AbstractEventLoop
    connection: redis.asyncio.Connection
    lock: asyncio.Lock
