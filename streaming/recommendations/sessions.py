"""Reading a shopper's session features from Redis, within a tight budget.

One pipelined round trip (HGETALL of the features, the purchased set newest first) per
request, with a socket timeout of `redis_timeout_ms`, behind the circuit breaker
(`streaming.service.guarded_redis`): with Redis down or slow a request costs at most one
timeout until the breaker opens, and nothing at all while it is open. The client is the
synchronous one, called on the event loop: one round trip to a local Redis is a fraction
of a millisecond, less than a hop to a thread pool would cost, and the timeout bounds
the worst case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

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
from streaming.service.guarded_redis import GuardedRedis


@dataclass(frozen=True)
class SessionRead:
    """What a request learnt from Redis: the features (None without a session), and
    whether Redis answered at all (False: down, slow or skipped by the open breaker)."""

    features: SessionFeatures | None
    answered: bool


class SessionReader:
    """The service's window on `lakehouse stream session-features`' Redis keys."""

    def __init__(self, settings: Settings) -> None:
        self.redis = GuardedRedis(settings, METRICS.redis_errors, METRICS.breaker_state)

    def read(self, user_id: int) -> SessionRead:
        """The user's session features, or why there are none."""
        replies = self.redis.call(partial(_session, user_id))
        if replies is None:
            return SessionRead(None, answered=False)
        features, purchased = replies
        return SessionRead(parse_features(user_id, features, purchased), answered=True)

    def close(self) -> None:
        """Close the connection pool."""
        self.redis.close()


def _session(user_id: int, client: redis.Redis) -> list:
    pipeline = client.pipeline(transaction=False)
    pipeline.hgetall(features_key(user_id))
    pipeline.zrevrange(purchased_key(user_id), 0, RECENT_PURCHASES - 1)
    return pipeline.execute()
