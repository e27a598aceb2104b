"""Schedules: the nightly rebuild of yesterday and the weekly full reprocessing, then the
model training that learns from them, then the table maintenance.

All run in UTC, the lake's calendar. The weekly run is one ranged run over every day that
has bronze data (the assets' single-run backfill policy walks the days in order), so a
changed rule or transform reaches all history within a week. The model schedules start
after the tables they learn from are due: daily models at 02:00 (the medallion runs at
00:30), weekly models on Sundays at 06:00 (the full reprocessing starts at 03:00). The
maintenance comes last, when yesterday's partitions are written: nightly at 04:00, and
the weekly run with retention and VACUUM on Sundays at 09:00.

The three "yesterday" schedules are not `dg.build_schedule_from_partitioned_job`: that
runs the job's last partition as of the tick, and the daily partitions end at today
(`end_offset=1`, so the bronze sensor can rebuild the day in progress); built that way,
the 00:30 tick would run the day that has just begun instead of the one that just ended.
"""

from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg

from assets.partitions import range_tags
from assets.resources import LakehouseResource
from lakehouse.bronze import landed_days
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


@dg.schedule(
    job=medallion_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays at 03:00 UTC, reprocess every day that has bronze data.",
)
def weekly_full_reprocessing(
    context: dg.ScheduleEvaluationContext, lakehouse: LakehouseResource
) -> dg.RunRequest | dg.SkipReason:
    """One ranged run from the first bronze day to yesterday."""
    days = landed_days(lakehouse.settings())
    yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
    days = [day for day in days if day <= yesterday]
    if not days:
        return dg.SkipReason("no bronze data yet")
    return dg.RunRequest(
        run_key=f"weekly-{days[0].isoformat()}-{yesterday.isoformat()}",
        tags=range_tags(days[0], yesterday),
    )
