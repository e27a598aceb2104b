"""Publishing the nightly batch results to the configured store, and opening what was
published: the one entry point of the Dagster assets (`publish_recommendations`) and of
the recommendation service (`latest_publication`, `open_store`), whatever the store.

Only the champion is ever published: the rows of `models.user_recommendations` carry the
version that scored them, and a partition scored by anything but the current champion
(a stale partition, or one written before a promotion) is refused rather than served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import USER_RECOMMENDATIONS
from lakehouse.models.recommender import MODEL_NAME
from lakehouse.models.registry import champion
from lakehouse.online import dynamo_store, file_store
from lakehouse.online.batch_store import BatchStore, NothingPublished, Publication
from lakehouse.online.popularity import popular_products
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days


class NotTheChampion(ValueError):
    """The batch recommendations of a day were not scored by the current champion."""


@dataclass(frozen=True)
class Published:
    """What one publish wrote, for the assets' metadata."""

    publication: Publication
    store: str
    keys_written: int
    bytes_written: int
    seconds: float


def publish_recommendations(settings: Settings, as_of: date) -> Published:
    """Publish the champion's batch top 10 of `as_of` and the popularity list to
    `settings.batch_store`, atomically (a reader sees the old publication or this one)."""
    started = time.perf_counter()
    current = champion(settings, MODEL_NAME)
    if current is None:
        raise NotTheChampion(f"no promoted {MODEL_NAME} yet: nothing may be published")
    rows = read_days(
        settings,
        USER_RECOMMENDATIONS,
        ["user_id", "rank", "product_id", "score", "model_version"],
        as_of,
    )
    if rows.num_rows == 0:
        raise NothingPublished(f"{USER_RECOMMENDATIONS.key} holds no rows for {as_of}")
    versions = pc.unique(rows["model_version"]).to_pylist()
    if versions != [current.version]:
        raise NotTheChampion(
            f"{USER_RECOMMENDATIONS.key} for {as_of} was scored by version(s) {versions}, "
            f"the champion is {current.version}: rebuild the day before publishing it"
        )
    users = per_user(rows)
    popular = popular_products(settings, as_of)
    now = datetime.now(UTC)
    publication = Publication(
        publication_id=f"{now:%Y%m%dT%H%M%S%f}-{as_of}-v{current.version}",
        model_name=MODEL_NAME,
        model_version=current.version,
        as_of=as_of,
        published_at=now,
        users=users.num_rows,
        popular_products=popular.num_rows,
    )
    if settings.batch_store == "dynamodb":
        written = dynamo_store.write_publication(settings, publication, users, popular)
        keys = users.num_rows + 2  # the users, the popularity item and the pointer
    else:
        written = file_store.write_publication(settings, publication, users, popular)
        keys = users.num_rows
    return Published(
        publication, settings.batch_store, keys, written, time.perf_counter() - started
    )


def per_user(rows: pa.Table) -> pa.Table:
    """One row per user, sorted by id, with their products and scores as lists by rank."""
    ordered = rows.sort_by([("user_id", "ascending"), ("rank", "ascending")])
    grouped = ordered.group_by("user_id", use_threads=False).aggregate(
        [("product_id", "list"), ("score", "list")]
    )
    return pa.table(
        {
            "user_id": grouped["user_id"],
            "products": grouped["product_id_list"].cast(pa.list_(pa.int64())),
            "scores": grouped["score_list"].cast(pa.list_(pa.float32())),
        }
    ).sort_by("user_id")


def latest_publication(settings: Settings) -> Publication | None:
    """The publication the configured store serves now (cheap: the service polls it)."""
    if settings.batch_store == "dynamodb":
        return dynamo_store.latest_publication(settings)
    return file_store.latest_publication(settings)


def open_store(settings: Settings, publication: Publication | None = None) -> BatchStore:
    """The configured store opened on `publication` (default: the current one); raises
    `NothingPublished` before the first publish."""
    if settings.batch_store == "dynamodb":
        return dynamo_store.open_dynamo_store(settings, publication)
    return file_store.open_file_store(settings, publication)
