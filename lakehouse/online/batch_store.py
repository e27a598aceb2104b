"""The contract between the Dagster assets that publish the nightly batch recommendations
and the recommendation service that falls back on them.

The fallback exists for when Redis fails, so no store here touches Redis: the local
profile reads a memory-mapped Arrow file published under the lake root
(`lakehouse.online.file_store`), the production-like profile DynamoDB, as the case study
has it (`lakehouse.online.dynamo_store`). `open_store` picks one by `settings.batch_store`.

A publication is immutable: the assets write a new one and then move a pointer to it, so a
service holding the previous one keeps answering from it until it has opened the next
(`latest_publication` is cheap, the service polls it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

Ranked = list[tuple[int, float]]
"""(product_id, score) pairs, best first."""


class NothingPublished(LookupError):
    """No batch results have been published to the configured store yet."""


class StoreUnavailable(RuntimeError):
    """The store could not be read (DynamoDB unreachable or too slow)."""


@dataclass(frozen=True)
class Publication:
    """One published set of batch results: every user's top 10 and the popularity list."""

    publication_id: str
    """Unique per publish; the service swaps stores when it changes."""
    model_name: str
    model_version: int
    """The champion version whose batch top 10 this holds."""
    as_of: date
    """The `models/user_recommendations` partition published."""
    published_at: datetime
    users: int
    popular_products: int


class BatchStore(Protocol):
    """A published set of batch results, opened for reading."""

    publication: Publication

    def top(self, user_id: int, k: int) -> Ranked | None:
        """The user's best `k` batch recommendations; None for a user without any."""
        ...

    def popular(self, k: int) -> Ranked:
        """The `k` most popular products (distinct buyers), best first."""
        ...

    def close(self) -> None:
        """Release what the store holds (memory maps, connections)."""
        ...
