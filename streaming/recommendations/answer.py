"""The fallback chain of one recommendation request: realtime, else batch, else popular.

- `realtime`: the shopper has session features in Redis and the champion knows at least
  one of their products (or the shopper): their trained factor, folded in with the
  session's weighted products (`Recommender.recommend_with_session`), minus what they
  just bought and what they already interacted with.
- `batch`: no usable session (none, Redis down or slow, breaker open), but the nightly
  publication holds a list for them.
- `popular`: neither: the products with the most distinct buyers (the publication's list,
  else the model's own popularity), minus what they just bought.

Every step is synchronous and in memory except the one Redis round trip, so an answer
never waits on anything but that, and that for at most `redis_timeout_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np

from lakehouse.online.batch_store import Ranked, StoreUnavailable
from lakehouse.online.session_keys import SessionFeatures
from streaming.recommendations.serving import Snapshot
from streaming.recommendations.sessions import SessionReader


class Source(StrEnum):
    """Where an answer came from."""

    REALTIME = "realtime"
    BATCH = "batch"
    POPULAR = "popular"


@dataclass(frozen=True)
class Answer:
    """One response body's content."""

    user_id: int
    products: Ranked
    source: Source
    model_version: int | None
    generated_at: datetime

    def body(self) -> dict[str, object]:
        """The JSON document the API returns."""
        return {
            "user_id": self.user_id,
            "products": [
                {"product_id": product, "score": round(score, 6)}
                for product, score in self.products
            ],
            "source": self.source.value,
            "model_version": self.model_version,
            "generated_at": self.generated_at.isoformat(),
        }


def recommend(snapshot: Snapshot, sessions: SessionReader, user_id: int, k: int) -> Answer:
    """The best answer the snapshot and Redis allow for `user_id` (never raises for a
    missing part: each failure moves one step down the chain)."""
    session = sessions.read(user_id).features
    just_bought = session.purchased if session is not None else ()
    if session is not None and snapshot.model is not None and session.products:
        products = np.fromiter(session.products, dtype=np.int64, count=len(session.products))
        weights = np.fromiter(session.products.values(), dtype=np.float64, count=products.size)
        ranked = snapshot.model.recommend_with_session(user_id, products, weights, k, just_bought)
        if ranked:
            return Answer(user_id, ranked, Source.REALTIME, snapshot.model_version, _now())
    batch = _batch(snapshot, user_id, k, session)
    if batch:
        publication = snapshot.publication
        assert publication is not None
        return Answer(
            user_id, batch, Source.BATCH, publication.model_version, publication.published_at
        )
    return _popular(snapshot, user_id, k, just_bought)


def _batch(snapshot: Snapshot, user_id: int, k: int, session: SessionFeatures | None) -> Ranked:
    if snapshot.store is None:
        return []
    try:
        ranked = snapshot.store.top(user_id, k + len(session.purchased) if session else k)
    except StoreUnavailable:
        return []
    if not ranked:
        return []
    if session is not None and session.purchased:
        bought = set(session.purchased)
        ranked = [pair for pair in ranked if pair[0] not in bought]
    return ranked[:k]


def _popular(snapshot: Snapshot, user_id: int, k: int, just_bought: tuple[int, ...]) -> Answer:
    bought = set(just_bought)
    if snapshot.store is not None:
        ranked = [pair for pair in snapshot.store.popular(k + len(bought)) if pair[0] not in bought]
        publication = snapshot.publication
        assert publication is not None
        return Answer(
            user_id, ranked[:k], Source.POPULAR, publication.model_version, publication.published_at
        )
    assert snapshot.model is not None
    ranked = snapshot.model.popular(k, bought)
    return Answer(user_id, ranked, Source.POPULAR, snapshot.model_version, _now())


def _now() -> datetime:
    return datetime.now(UTC)
