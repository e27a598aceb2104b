"""Reading a shopper's session features from Redis, within a tight budget.

One pipelined round trip (HGETALL of the features, the purchased set newest first) per
request, with a socket timeout of `redis_timeout_ms`, behind the circuit breaker: with
Redis down or slow a request costs at most one timeout until the breaker opens, and
nothing at all while it is open. The client is the synchronous one, called on the event
loop: one round trip to a local Redis is a fraction of a millisecond, less than a hop to
a thread pool would cost, and the timeout bounds the worst case.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from lakehouse.online.session_keys import (
    RECENT_PURCHASES,
    SessionFeatures,
    features_key,
    parse_features,
    purchased_key,
)
from lakehouse.settings import Settings
from streaming.recommendations.metrics import METRICS
from streaming.service.breaker import CircuitBreaker


@dataclass(frozen=True)
class SessionRead:
    """What a request learnt from Redis: the features (None without a session), and
    whether Redis answered at all (False: down, slow or skipped by the open breaker)."""

    features: SessionFeatures | None
    answered: bool


class SessionReader:
    """The service's window on `lakehouse stream session-features`' Redis keys."""

    def __init__(self, settings: Settings) -> None:
        seconds = settings.redis_timeout_ms / 1000
        self.client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=None,  # no retries: a failed read falls back at once
        )
        self.breaker = CircuitBreaker(
            settings.redis_breaker_failures, settings.redis_breaker_reset_seconds
        )

    def read(self, user_id: int) -> SessionRead:
        """The user's session features, or why there are none."""
        if not self.breaker.allow():
            METRICS.breaker_state.set(self.breaker.state)
            return SessionRead(None, answered=False)
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.hgetall(features_key(user_id))
            pipeline.zrevrange(purchased_key(user_id), 0, RECENT_PURCHASES - 1)
            features, purchased = pipeline.execute()
        except (redis.RedisError, OSError):
            self.breaker.record_failure()
            METRICS.redis_errors.inc()
            METRICS.breaker_state.set(self.breaker.state)
            return SessionRead(None, answered=False)
        self.breaker.record_success()
        METRICS.breaker_state.set(self.breaker.state)
        return SessionRead(parse_features(user_id, features, purchased), answered=True)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
