"""Files beside the tables: a pyarrow filesystem for any URI under the lake root, local
folder or S3, configured from the settings the Delta tables use (model artifacts, the
published batch recommendations), and a boto3 S3 client for what neither delta-rs nor
pyarrow does (lifecycle rules, object tags)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.client import BaseClient
from pyarrow import fs

from lakehouse.settings import Settings


def filesystem(settings: Settings, uri: str) -> tuple[fs.FileSystem, str]:
    """pyarrow's filesystem for a lake URI and the path to hand it (local folder or S3
    with the lake's endpoint, region and credentials)."""
    if not uri.startswith("s3://"):
        return fs.LocalFileSystem(), uri
    options: dict[str, Any] = {"region": settings.aws_region}
    if settings.aws_endpoint_url:
        scheme, _, endpoint = settings.aws_endpoint_url.partition("://")
        options.update(endpoint_override=endpoint, scheme=scheme)
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options.update(
            access_key=settings.aws_access_key_id.get_secret_value(),
            secret_key=settings.aws_secret_access_key.get_secret_value(),
        )
    return fs.S3FileSystem(**options), uri.removeprefix("s3://")


def s3_client(settings: Settings) -> BaseClient:
    """A boto3 S3 client with the lake's endpoint, region and credentials, for what
    delta-rs does not do: lifecycle rules and object tags (lakehouse.maintenance)."""
    options: dict[str, Any] = {"region_name": settings.aws_region}
    if settings.aws_endpoint_url:
        options["endpoint_url"] = settings.aws_endpoint_url
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options.update(
            aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
            aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
        )
    return boto3.client("s3", **options)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` as (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
