"""The partitioning shared by the silver and gold assets: one partition per UTC day.

Every table asset materializes a run's whole partition range in one go
(`BackfillPolicy.single_run()`): a UI backfill of a year is one run that walks the days
in order, so windowed gold tables see the days before them, and the weekly full
reprocessing is a single ranged run rather than hundreds of queued ones.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

# end_offset=1 includes today's partition, which the bronze sensor keeps up to date.
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
SINGLE_RUN = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """The UTC days of the partition or partition range being materialized, in order."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=offset) for offset in range((end - first).days)]


def partition_label(days: list[date]) -> str:
    """`2026-11-23` for one day, `2026-11-01..2026-11-23` for a range."""
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()}..{days[-1].isoformat()}"


def range_tags(first: date, last: date) -> dict[str, str]:
    """The run tags that make one run cover the days `first`..`last` (single-run backfill):
    what schedules and the CLI put on a ranged `medallion` run."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
