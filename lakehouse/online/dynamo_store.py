"""The production-like batch store: DynamoDB, as the case study has it.

One table (`recommendations_dynamodb_table`, key `key`, created on first publish, billed
per request). Items of a publication are keyed `<publication_id>#<user_id>`, holding the
products (int64) and scores (float32) as two binary attributes, plus one
`<publication_id>#popular` item; the `CURRENT` item names the publication to serve and is
written last, so a reader sees the old publication or the new one, never a mix. Every
item but `CURRENT` carries `expires_at`, three days on (enable DynamoDB's TTL on that
attribute): the nightly publish renews the lists long before, superseded publications
clear themselves, and lists more than three days stale stop being served.

Reads have a tight timeout and no retries: the service's fallback must answer in
milliseconds, and a slow DynamoDB becomes `StoreUnavailable` (the service then serves
popularity) rather than a slow answer.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lakehouse.online.batch_store import NothingPublished, Publication, Ranked, StoreUnavailable
from lakehouse.settings import Settings

POINTER_KEY = "CURRENT"
WRITE_THREADS = 8
"""Parallel batch writers: one thread waits on a round trip per 25 items."""
EXPIRE_AFTER_SECONDS = 3 * 24 * 3600
_LOOKUP_CONFIG = Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1})
"""A request's lookup: no retry, half a second at most, then the service answers without."""
_POINTER_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard"})
"""The pointer and the popularity list, read in the background: patient, retried."""
_WRITE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})


def _resource(settings: Settings, config: Config) -> Any:
    options: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
    if settings.aws_endpoint_url:
        options["endpoint_url"] = settings.aws_endpoint_url
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options["aws_access_key_id"] = settings.aws_access_key_id.get_secret_value()
        options["aws_secret_access_key"] = settings.aws_secret_access_key.get_secret_value()
    return boto3.resource("dynamodb", **options)


_POINTER_TABLES: dict[tuple[object, ...], Any] = {}


def _pointer_table(settings: Settings) -> Any:
    """The table for the pointer reads the service makes every few seconds: one boto3
    resource per configuration, built once (building one costs tens of milliseconds of
    CPU, taken from the requests). Polls run one at a time, so sharing it is safe."""
    key = (
        settings.aws_endpoint_url,
        settings.aws_region,
        settings.aws_access_key_id,
        settings.recommendations_dynamodb_table,
    )
    if key not in _POINTER_TABLES:
        _POINTER_TABLES[key] = _resource(settings, _POINTER_CONFIG).Table(
            settings.recommendations_dynamodb_table
        )
    return _POINTER_TABLES[key]


def ensure_table(settings: Settings) -> Any:
    """The recommendations table, created (on-demand billing) if it does not exist."""
    dynamodb = _resource(settings, _WRITE_CONFIG)
    table = dynamodb.Table(settings.recommendations_dynamodb_table)
    try:
        table.load()
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        table = dynamodb.create_table(
            TableName=settings.recommendations_dynamodb_table,
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        table.wait_until_exists()
    return table


def write_publication(
    settings: Settings, publication: Publication, users: pa.Table, popular: pa.Table
) -> int:
    """Write every user's list and the popularity list, then move `CURRENT`; return the
    bytes of list data written."""
    ensure_table(settings)
    expires_at = int(time.time()) + EXPIRE_AFTER_SECONDS
    offsets = users.column("products").combine_chunks().offsets.to_numpy()
    products = users.column("products").combine_chunks().values.to_numpy().astype("<i8")
    scores = users.column("scores").combine_chunks().values.to_numpy().astype("<f4")
    user_ids = users.column("user_id").to_numpy()
    prefix = publication.publication_id
    chunks = np.array_split(np.arange(user_ids.size), max(1, min(WRITE_THREADS, user_ids.size)))

    def write_chunk(rows: np.ndarray) -> None:
        table = _resource(settings, _WRITE_CONFIG).Table(settings.recommendations_dynamodb_table)
        with table.batch_writer() as batch:
            for row in rows.tolist():
                start, end = int(offsets[row]), int(offsets[row + 1])
                batch.put_item(
                    Item={
                        "key": f"{prefix}#{int(user_ids[row])}",
                        "products": products[start:end].tobytes(),
                        "scores": scores[start:end].tobytes(),
                        "expires_at": expires_at,
                    }
                )

    with ThreadPoolExecutor(WRITE_THREADS) as pool:
        list(pool.map(write_chunk, chunks))
    table = _resource(settings, _WRITE_CONFIG).Table(settings.recommendations_dynamodb_table)
    table.put_item(
        Item={
            "key": f"{prefix}#popular",
            "products": popular["product_id"].to_numpy().astype("<i8").tobytes(),
            "scores": popular["buyers"].to_numpy().astype("<f4").tobytes(),
            "expires_at": expires_at,
        }
    )
    table.put_item(Item={"key": POINTER_KEY, **_encode(publication)})
    return int(products.nbytes + scores.nbytes + popular.num_rows * 12)


def latest_publication(settings: Settings) -> Publication | None:
    """The publication `CURRENT` names; None before the first publish (or the table)."""
    table = _pointer_table(settings)
    try:
        item = table.get_item(Key={"key": POINTER_KEY}).get("Item")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise StoreUnavailable(f"DynamoDB: {error}") from error
    except BotoCoreError as error:
        raise StoreUnavailable(f"DynamoDB: {error}") from error
    return None if item is None else _decode(item)


class DynamoStore:
    """A publication in DynamoDB: one GetItem per lookup, the popularity list cached."""

    def __init__(self, settings: Settings, publication: Publication) -> None:
        self.publication = publication
        self._table = _resource(settings, _LOOKUP_CONFIG).Table(
            settings.recommendations_dynamodb_table
        )
        patient = _resource(settings, _POINTER_CONFIG).Table(
            settings.recommendations_dynamodb_table
        )
        try:
            popular = patient.get_item(Key={"key": f"{publication.publication_id}#popular"})
        except (BotoCoreError, ClientError) as error:
            raise StoreUnavailable(f"DynamoDB: {error}") from error
        if "Item" not in popular:
            raise NothingPublished(f"publication {publication.publication_id} has no popularity")
        self._popular = _ranked(popular["Item"], None)

    def top(self, user_id: int, k: int) -> Ranked | None:
        """The user's best `k`; None without an item; `StoreUnavailable` when slow or down."""
        item = self._get(f"{self.publication.publication_id}#{int(user_id)}")
        return None if item is None else _ranked(item, k)

    def popular(self, k: int) -> Ranked:
        """The `k` products with the most distinct buyers (read once, at open)."""
        return self._popular[:k]

    def close(self) -> None:
        """Nothing to release: boto3 pools its own connections."""

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            return self._table.get_item(Key={"key": key}).get("Item")
        except (BotoCoreError, ClientError) as error:
            raise StoreUnavailable(f"DynamoDB: {error}") from error


def open_dynamo_store(settings: Settings, publication: Publication | None = None) -> DynamoStore:
    """The store of `publication` (default: the current one)."""
    publication = publication or latest_publication(settings)
    if publication is None:
        raise NothingPublished(f"nothing published to {settings.recommendations_dynamodb_table}")
    return DynamoStore(settings, publication)


def _ranked(item: dict[str, Any], k: int | None) -> Ranked:
    products = np.frombuffer(bytes(item["products"]), dtype="<i8")
    scores = np.frombuffer(bytes(item["scores"]), dtype="<f4")
    return list(zip(products[:k].tolist(), scores[:k].tolist(), strict=True))


def _encode(publication: Publication) -> dict[str, Any]:
    values = asdict(publication)
    return {
        name: value.isoformat() if isinstance(value, date | datetime) else value
        for name, value in values.items()
    }


def _decode(item: dict[str, Any]) -> Publication:
    return Publication(
        publication_id=str(item["publication_id"]),
        model_name=str(item["model_name"]),
        model_version=int(item["model_version"]),
        as_of=date.fromisoformat(str(item["as_of"])),
        published_at=datetime.fromisoformat(str(item["published_at"])),
        users=int(item["users"]),
        popular_products=int(item["popular_products"]),
    )
