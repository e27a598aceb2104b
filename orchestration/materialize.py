"""Materialize through Dagster from outside the UI: what `lakehouse materialize` and the
demo call, recorded in the profile's instance so the runs show in the UI afterwards.

Runs execute in this process (no daemon or code server needed), as the same `medallion`
and `observe_bronze` jobs the schedules and the sensor launch, with the code location's
own resources: the lake, S3 and Kafka settings come from the environment, exactly as they
do for `dagster dev` and the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from assets.partitions import DAILY, range_tags
from lakehouse.settings import get_settings
from orchestration.definitions import defs
from orchestration.instance import dagster_instance

# The CLI prints its own progress; Dagster's per-event console lines stay in the run's log.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class RunSummary:
    """One finished Dagster run: its id and job, and the assets it materialized or observed."""

    run_id: str
    job: str
    success: bool
    assets: tuple[str, ...]
    checks_run: int = 0
    failed_checks: tuple[str, ...] = ()  # `asset:check (severity)` of every check that failed


def observe_bronze(instance: dg.DagsterInstance | None = None) -> RunSummary:
    """Record every bronze table's Delta version (the observations the sensor compares)."""
    result = defs.resolve_job_def("observe_bronze").execute_in_process(
        run_config=_QUIET, instance=instance or dagster_instance(get_settings())
    )
    observed = sorted(
        {
            event.asset_observation_data.asset_observation.asset_key.to_user_string()
            for event in result.all_events
            if event.event_type_value == "ASSET_OBSERVATION"
        }
    )
    return RunSummary(result.run_id, "observe_bronze", result.success, tuple(observed))


def rebuild_days(
    first: date, last: date | None = None, instance: dg.DagsterInstance | None = None
) -> RunSummary:
    """Rebuild silver and gold for the days `first`..`last` in one `medallion` run."""
    last = last or first
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    for day in (first, last):
        if not DAILY.has_partition_key(day.isoformat()):
            raise ValueError(
                f"{day} is outside the daily partitions ({DAILY.start:%Y-%m-%d} to today)"
            )
    result = defs.resolve_job_def("medallion").execute_in_process(
        run_config=_QUIET,
        instance=instance or dagster_instance(get_settings()),
        tags=range_tags(first, last),
        raise_on_error=False,
    )
    materialized = sorted(
        {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    )
    evaluations = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = tuple(
        f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value.lower()})"
        for e in evaluations
        if not e.passed
    )
    return RunSummary(
        result.run_id, "medallion", result.success, tuple(materialized), len(evaluations), failed
    )
