"""Schedules: the nightly rebuild of yesterday and the weekly full reprocessing, then the
model training that learns from them.

All run in UTC, the lake's calendar. The weekly run is one ranged run over every day that
has bronze data (the assets' single-run backfill policy walks the days in order), so a
changed rule or transform reaches all history within a week. The model schedules start
after the tables they learn from are due: daily models at 02:00 (the medallion runs at
00:30), weekly models on Sundays at 06:00 (the full reprocessing starts at 03:00).
"""

from datetime import timedelta

import dagster as dg

from assets.partitions import range_tags
from lakehouse.runtime import landed_days
from orchestration.jobs import daily_models_job, medallion_job, weekly_models_job
from orchestration.resources import LakehouseResource


@dg.schedule(
    job=medallion_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:30 UTC, rebuild silver and gold for the day that just ended.",
)
def nightly_medallion(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday's partition, run key'd by day so a re-evaluated tick never runs it twice."""
    yesterday = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"nightly-{yesterday}", partition_key=yesterday)


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


@dg.schedule(
    job=daily_models_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 02:00 UTC, retrain the recommender and the fraud model as of yesterday.",
)
def nightly_models(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday's models, once per day."""
    yesterday = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"models-{yesterday}", partition_key=yesterday)


@dg.schedule(
    job=weekly_models_job,
    cron_schedule="0 6 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays at 06:00 UTC, retrain the fraud model on all history and the "
    "failure model, as of yesterday.",
)
def weekly_models(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The weekly models as of yesterday (the job's config asks for full history)."""
    yesterday = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"weekly-models-{yesterday}", partition_key=yesterday)
