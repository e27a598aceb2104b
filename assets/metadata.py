"""Materialization metadata every table asset reports: rows, Delta version, files, bytes."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from lakehouse.catalog import TableSpec
from lakehouse.delta import table_stats
from lakehouse.settings import Settings


def table_metadata(spec: TableSpec, settings: Settings, written: pa.Table) -> dict[str, object]:
    """What a person wants to see after a materialization, in Dagster's metadata types."""
    stats = table_stats(spec, settings)
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(written.num_rows),
        "table": dg.MetadataValue.text(spec.key),
    }
    if stats is not None:
        metadata.update(
            {
                "delta_version": dg.MetadataValue.int(stats.version),
                "table_rows": dg.MetadataValue.int(stats.rows),
                "table_files": dg.MetadataValue.int(stats.files),
                "table_bytes": dg.MetadataValue.int(stats.bytes),
            }
        )
    return metadata
