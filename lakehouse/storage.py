"""Files beside the tables: a pyarrow filesystem for any URI under the lake root, local
folder or S3, configured from the settings the Delta tables use (model artifacts, the
published batch recommendations)."""

from __future__ import annotations

from typing import Any

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
