"""What every daily table asset shares: its decorator settings and the walk over the days.

A silver or gold asset rebuilds each day of its run in order (one day, or a backfill's
range under the single-run policy), logs each, and reports the table's metadata; the
last day's rows are kept for previews and charts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.metadata import table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.settings import Settings


def daily_table(key: str, owner: str, **extra: Any) -> dict[str, Any]:
    """`@dg.asset` arguments for the catalogued table `key` (`layer.name`)."""
    spec = CATALOG.table(key)
    return {
        "key": [spec.layer.value, spec.name],
        "description": spec.description,
        "partitions_def": DAILY,
        "backfill_policy": SINGLE_RUN,
        "group_name": spec.domain.value,
        "kinds": {"deltalake", "duckdb"},
        "owners": [owner],
        "tags": {"layer": spec.layer.value},
        "retry_policy": dg.RetryPolicy(max_retries=2, delay=10),
        **extra,
    }


def build_each_day(
    context: dg.AssetExecutionContext,
    settings: Settings,
    key: str,
    build: Callable[[Settings, date], pa.Table],
) -> tuple[dict[str, object], pa.Table]:
    """Build every day of the run in order; the table's metadata, and the last day's rows."""
    days = partition_days(context)
    written = 0
    rows = pa.table({})
    for day in days:
        rows = build(settings, day)
        written += rows.num_rows
        context.log.info(f"{key} {day}: {rows.num_rows:,} rows")
    return table_metadata(CATALOG.table(key), settings, written, partition_label(days)), rows
