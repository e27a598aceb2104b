"""The decision service's Redis calls: one pipelined read before deciding, one atomic
write after, both within a tight timeout and behind a circuit breaker.

The read fetches, in one round trip, whether the transaction was already decided, the
holder's published profile, and the holder's and the device's week of earlier
transactions (newest first, at most `fraud_history_limit` each). The write (`record.lua`)
stores the decision and adds the transaction to both windows, or, when the id was decided
meanwhile, changes nothing and hands back that decision. With Redis down or slow a request
costs at most one timeout until the breaker opens, and nothing while it is open; the
service then decides without state and says so.

The client is the synchronous one, called on the event loop, for the reason given in
`streaming.recommendations.sessions`: a local round trip costs less than a hop to a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis

from lakehouse.online.fraud_state import (
    CATEGORY_RISK_KEY,
    WINDOW_MS,
    decision_key,
    device_key,
    holder_key,
    profile_key,
)
from lakehouse.settings import Settings
from streaming.fraud.metrics import METRICS
from streaming.service.breaker import CircuitBreaker

_SCRIPT = resources.files(__package__).joinpath("record.lua").read_text()
SET_TTL_SECONDS = 8 * 86_400
"""A holder's or device's window outlives its week by a day, then Redis drops it."""


@dataclass(frozen=True)
class StateRead:
    """What Redis said before a decision; `answered` is False when it could not be asked
    (down, slow, or skipped by the open breaker)."""

    answered: bool
    decided: bytes | None = None
    profile: bytes | None = None
    history: tuple[bytes, ...] = ()


class FraudState:
    """The shared state of every service process."""

    def __init__(self, settings: Settings) -> None:
        seconds = settings.redis_timeout_ms / 1000
        self.client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=None,  # no retries: a failed call degrades at once
        )
        self.breaker = CircuitBreaker(
            settings.redis_breaker_failures, settings.redis_breaker_reset_seconds
        )
        self.history_limit = settings.fraud_history_limit
        self.decision_ttl = settings.fraud_decision_ttl_days * 86_400
        self._record = self.client.register_script(_SCRIPT)

    def read(self, transaction_id: str, user_id: int, device_id: str, event_ms: int
             ) -> StateRead:
        """Everything a decision needs from Redis, in one round trip."""
        if not self._allowed():
            return StateRead(answered=False)
        oldest = event_ms - WINDOW_MS
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.get(decision_key(transaction_id))
            pipeline.get(profile_key(user_id))
            # Up to and including this instant: the features keep only strictly earlier
            # seconds themselves, and the newest are the ones that matter when capped.
            pipeline.zrevrangebyscore(holder_key(user_id), event_ms, oldest,
                                      start=0, num=self.history_limit)
            pipeline.zrevrangebyscore(device_key(device_id), event_ms, oldest,
                                      start=0, num=self.history_limit)
            decided, profile, holder, device = pipeline.execute()
        except (redis.RedisError, OSError):
            self._failed()
            return StateRead(answered=False)
        self._succeeded()
        return StateRead(True, decided, profile, (*holder, *device))

    def record(self, transaction_id: str, user_id: int, device_id: str, event_ms: int,
               member: bytes, decision: bytes) -> bytes | bool | None:
        """Store a decision and count its transaction, once. Returns None when this call
        recorded it, the earlier decision when the id was already decided, and False when
        Redis could not be written (the decision stands; the state misses it)."""
        if not self._allowed():
            return False
        keys = [decision_key(transaction_id), holder_key(user_id), device_key(device_id)]
        try:
            earlier = self._record(keys=keys, args=[
                decision, self.decision_ttl, event_ms, member, WINDOW_MS, SET_TTL_SECONDS])
        except (redis.RedisError, OSError):
            self._failed()
            return False
        self._succeeded()
        return earlier

    def category_risk(self) -> bytes | None:
        """The published risk table (raises on Redis errors: the caller keeps its copy)."""
        return self.client.get(CATEGORY_RISK_KEY)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def _allowed(self) -> bool:
        if self.breaker.allow():
            return True
        METRICS.breaker_state.set(self.breaker.state)
        return False

    def _failed(self) -> None:
        self.breaker.record_failure()
        METRICS.redis_errors.inc()
        METRICS.breaker_state.set(self.breaker.state)

    def _succeeded(self) -> None:
        self.breaker.record_success()
        METRICS.breaker_state.set(self.breaker.state)
