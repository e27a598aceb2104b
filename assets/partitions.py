"""The partitioning shared by the silver, gold and model assets: one partition per UTC day.

Every table asset materializes a run's whole partition range in one go
(`BackfillPolicy.single_run()`): a UI backfill of a year is one run that walks the days
in order, so windowed gold tables see the days before them, and the weekly full
reprocessing is a single ranged run rather than hundreds of queued ones.

The partitions start at `LAKEHOUSE_FIRST_DAY`, or, unset, at the first event day bronze
holds when the code location loads (yesterday, the demo's day, for an empty lake): a new
user's UI shows the days there are, not "0% filled, 701 missing" since some fixed date.
Data landed for an earlier day later shows up after the code location reloads (the UI's
"Reload definitions", or a restart of `dagster dev`).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from lakehouse.bronze import landed_days
from lakehouse.settings import Settings, get_settings

log = logging.getLogger(__name__)


def first_partition_day(settings: Settings) -> date:
    """The configured first day, else the first landed event day, else yesterday.

    A lake that cannot be read (S3 unreachable while the code location loads) must not
    stop Dagster from starting: the partitions then begin yesterday, and the error is
    logged.
    """
    if settings.lakehouse_first_day is not None:
        return settings.lakehouse_first_day
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    try:
        days = landed_days(settings)
    except Exception as error:  # any storage error: the lake is optional at load time
        log.warning("cannot read bronze to place the first partition (%s); using %s",
                    error, yesterday)
        return yesterday
    return min(days[0], yesterday) if days else yesterday


# end_offset=1 includes today's partition, which the bronze sensor keeps up to date.
DAILY = dg.DailyPartitionsDefinition(
    start_date=first_partition_day(get_settings()).isoformat(), end_offset=1
)
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
