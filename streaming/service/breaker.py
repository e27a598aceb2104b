"""A circuit breaker for the service's Redis calls: after a few consecutive failures the
service stops calling Redis for a while and answers from the fallback at once, then lets
one trial call through to see whether Redis is back.

Hand-written because it is twenty lines: the libraries (pybreaker, aiobreaker) add
listeners, storage backends and their own exception wrapping this service does not need,
and its state has to be readable as a metric anyway.
"""

from __future__ import annotations

import time
from enum import IntEnum


class BreakerState(IntEnum):
    """The states, numbered as the `breaker_state` gauge reports them."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker: `failures` in a row open it for `reset_seconds`;
    then one call is let through (half-open): success closes it, failure reopens it."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        """Where the breaker stands now."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if time.monotonic() - self._opened_at < self.reset_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go to Redis now (at most one trial while half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._consecutive = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        """A call failed or timed out: count it, and open (or reopen) when due."""
        self._consecutive += 1
        self._trial_running = False
        if self._opened_at is not None or self._consecutive >= self.failures:
            self._opened_at = time.monotonic()
