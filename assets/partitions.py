"""The partitioning shared by the silver and gold assets: one partition per UTC day."""

from __future__ import annotations

from datetime import date

import dagster as dg

# end_offset=1 includes today's partition, which the bronze sensor keeps up to date.
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def partition_day(context: dg.AssetExecutionContext) -> date:
    """The UTC day of the partition being materialized."""
    return date.fromisoformat(context.partition_key)
