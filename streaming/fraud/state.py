"""The decision service's Redis calls: one pipelined read before deciding, one atomic
write after, both within a tight timeout and behind a circuit breaker.

The read fetches, in one round trip for a whole batch of payments, whether each was
already decided, the holder's published profile, and the holder's and the device's week
of earlier transactions (newest first, at most `fraud_history_limit` each). The write
(`record.lua`, one pipelined round trip per batch) stores each decision and adds the
transaction to both windows, or, when the id was decided meanwhile, changes nothing and
hands back that decision. With Redis down or slow a request
costs at most one timeout until the breaker opens, and nothing while it is open; the
service then decides without state and says so.

The client is the synchronous one, called on the event loop, for the reason given in
`streaming.recommendations.sessions`: a local round trip costs less than a hop to a thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import redis

from lakehouse.online.fraud_state import (
    CATEGORY_RISK_KEY,
    WINDOW_MS,
    WINDOW_TTL_SECONDS,
    decision_key,
    device_key,
    holder_key,
    profile_key,
)
from lakehouse.settings import Settings
from streaming.fraud.metrics import METRICS
from streaming.service.breaker import CircuitBreaker

_SCRIPT = resources.files(__package__).joinpath("record.lua").read_text()


@dataclass(frozen=True)
class Lookup:
    """The keys one transaction's decision reads and writes."""

    transaction_id: str
    user_id: int
    device_id: str
    event_ms: int


@dataclass(frozen=True)
class StateRead:
    """What Redis said about one transaction before deciding it."""

    decided: bytes | None
    profile: bytes | None
    history: tuple[bytes, ...]


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
        # EVALSHA by the script's digest, loaded on the first NOSCRIPT (a new or restarted
        # Redis). Not redis-py's Script object: in a pipeline it asks SCRIPT EXISTS on every
        # execute, a second round trip per batch.
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()

    def read(self, lookups: list[Lookup]) -> list[StateRead] | None:
        """Everything the decisions of a batch need from Redis, in one round trip; None
        when Redis could not be asked (down, slow, or skipped by the open breaker)."""
        if not self._allowed():
            return None
        try:
            pipeline = self.client.pipeline(transaction=False)
            for lookup in lookups:
                oldest = lookup.event_ms - WINDOW_MS
                pipeline.get(decision_key(lookup.transaction_id))
                pipeline.get(profile_key(lookup.user_id))
                # Up to and including this instant: the features keep only strictly earlier
                # seconds themselves, and the newest are the ones that matter when capped.
                pipeline.zrevrangebyscore(holder_key(lookup.user_id), lookup.event_ms, oldest,
                                          start=0, num=self.history_limit)
                pipeline.zrevrangebyscore(device_key(lookup.device_id), lookup.event_ms,
                                          oldest, start=0, num=self.history_limit)
            replies = pipeline.execute()
        except (redis.RedisError, OSError):
            self._failed()
            return None
        self._succeeded()
        return [StateRead(replies[k], replies[k + 1], (*replies[k + 2], *replies[k + 3]))
                for k in range(0, len(replies), 4)]

    def record(self, items: list[tuple[Lookup, bytes, bytes]]) -> list[bytes | None] | None:
        """Store each (lookup, transaction member, decision) and count the transaction,
        once, in one round trip. Per item: None when this call recorded it, or the
        earlier decision when the id was already decided. None overall when Redis could
        not be written (the decisions stand; the state misses them)."""
        if not items or not self._allowed():
            return None if items else []
        try:
            try:
                earlier = self._record_once(items)
            except redis.exceptions.NoScriptError:
                self.client.script_load(_SCRIPT)
                earlier = self._record_once(items)
        except (redis.RedisError, OSError):
            self._failed()
            return None
        self._succeeded()
        return [value or None for value in earlier]

    def _record_once(self, items: list[tuple[Lookup, bytes, bytes]]) -> list[bytes | None]:
        pipeline = self.client.pipeline(transaction=False)
        for lookup, member, decision in items:
            pipeline.evalsha(
                self._sha, 3, decision_key(lookup.transaction_id), holder_key(lookup.user_id),
                device_key(lookup.device_id), decision, self.decision_ttl, lookup.event_ms,
                member, WINDOW_MS, WINDOW_TTL_SECONDS)
        return pipeline.execute()

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
