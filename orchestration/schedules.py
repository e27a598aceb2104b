"""Schedules: the nightly rebuild of yesterday and the weekly full reprocessing, then the
model training that learns from them, then the table maintenance.

All run in UTC, the lake's calendar. The weekly run is a ranged run over every day that
has bronze data (the assets' single-run backfill policy walks the days in order), so a
changed rule or transform reaches all history within a week; a lake that also holds an
old data set (C-MAPSS at 2008, Online Retail at 2010) gets one ranged run per stretch of
landed days instead of one over the empty years between (`reprocessing_stretches`). The
model schedules start after the tables they learn from are due: daily models at 02:00
(the medallion runs at 00:30), weekly models on Sundays at 06:00 (the full reprocessing
starts at 03:00). The maintenance comes last, when yesterday's partitions are written:
nightly at 04:00, and the weekly run with retention and VACUUM on Sundays at 09:00.

The three "yesterday" schedules are not `dg.build_schedule_from_partitioned_job`: that
runs the job's last partition as of the tick, and the daily partitions end at today
(`end_offset=1`, so the bronze sensor can rebuild the day in progress); built that way,
the 00:30 tick would run the day that has just begun instead of the one that just ended.
"""

from datetime import date, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from assets.partitions import range_tags
from assets.resources import LakehouseResource
from lakehouse.bronze import landed_days
from lakehouse.features.fraud import RISK_DAYS
from lakehouse.transforms.ecommerce import FEATURE_WINDOW_DAYS, TRENDING_BASELINE_DAYS
from orchestration.jobs import (
    daily_models_job,
    medallion_job,
    nightly_maintenance_job,
    weekly_maintenance_job,
    weekly_models_job,
)

if TYPE_CHECKING:  # what `dg.define_asset_job` returns; Dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def yesterday_schedule(
    name: str, job: "UnresolvedAssetJobDefinition", cron: str, run_key: str, description: str
) -> dg.ScheduleDefinition:
    """A schedule that runs `job` for the UTC day before each tick, once per day: the run
    key (`<run_key>-<day>`) keeps a re-evaluated tick from running it twice."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _yesterday(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        yesterday = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=f"{run_key}-{yesterday}", partition_key=yesterday)

    return _yesterday


nightly_medallion = yesterday_schedule(
    "nightly_medallion",
    medallion_job,
    "30 0 * * *",
    "nightly",
    "At 00:30 UTC, rebuild silver and gold for the day that just ended.",
)
nightly_models = yesterday_schedule(
    "nightly_models",
    daily_models_job,
    "0 2 * * *",
    "models",
    "At 02:00 UTC, retrain the recommender and the fraud model as of yesterday.",
)
# The weekly job's own config asks the fraud model for all history.
weekly_models = yesterday_schedule(
    "weekly_models",
    weekly_models_job,
    "0 6 * * 0",
    "weekly-models",
    "Sundays at 06:00 UTC, retrain the fraud model on all history and the failure model, "
    "as of yesterday.",
)

nightly_maintenance = yesterday_schedule(
    "nightly_maintenance",
    nightly_maintenance_job,
    "0 4 * * *",
    "maintenance",
    "At 04:00 UTC, compact yesterday's partitions, apply the lifecycle rules, report costs.",
)
weekly_maintenance = yesterday_schedule(
    "weekly_maintenance",
    weekly_maintenance_job,
    "0 9 * * 0",
    "weekly-maintenance",
    "Sundays at 09:00 UTC, the nightly maintenance plus retention and VACUUM.",
)


REBUILD_REACH_DAYS = max(FEATURE_WINDOW_DAYS, TRENDING_BASELINE_DAYS, RISK_DAYS)
"""How many days after a landed day a daily table still reads that day's data (the longest
window: user features and category risk look 30 days back). Past it, a day without bronze
data rebuilds to the same nothing whatever came before, so it need not be reprocessed."""


def reprocessing_stretches(
    days: list[date], last: date, reach: int = REBUILD_REACH_DAYS
) -> list[tuple[date, date]]:
    """The ranges that rebuild every landed day of `days` (sorted, none after `last`) and
    every day that reads one: a new range where `reach` days after a landed day still come
    before the next landed day, each ending `reach` days past its last landed day, the final
    one at `last`. A lake whose days are contiguous gets one range, as it always did."""
    stretches = []
    start = previous = days[0]
    for day in days[1:]:
        if (day - previous).days > reach + 1:
            stretches.append((start, previous + timedelta(days=reach)))
            start = day
        previous = day
    stretches.append((start, last))
    return stretches


@dg.schedule(
    job=medallion_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays at 03:00 UTC, reprocess every day that has bronze data.",
)
def weekly_full_reprocessing(
    context: dg.ScheduleEvaluationContext, lakehouse: LakehouseResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """A ranged run per stretch of bronze days, the last one to yesterday: one run from
    the first bronze day to yesterday, unless years without data lie between."""
    days = landed_days(lakehouse.settings())
    yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
    days = [day for day in days if day <= yesterday]
    if not days:
        return dg.SkipReason("no bronze data yet")
    return [
        dg.RunRequest(
            run_key=f"weekly-{first.isoformat()}-{last.isoformat()}", tags=range_tags(first, last)
        )
        for first, last in reprocessing_stretches(days, yesterday)
    ]
