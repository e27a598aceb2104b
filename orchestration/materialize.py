"""Materialize through Dagster from outside the UI: what `lakehouse materialize` and the
demo call, recorded in the profile's instance so the runs show in the UI afterwards.

Runs execute in this process (no daemon or code server needed), as the same `medallion`,
`observe_bronze` and model-training jobs the schedules and the sensor launch, with the
code location's own resources: the lake, S3 and Kafka settings come from the
environment, exactly as they do for `dagster dev` and the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from assets.partitions import DAILY, range_tags
from lakehouse.settings import get_settings
from orchestration.definitions import defs
from orchestration.instance import dagster_instance
from orchestration.jobs import WEEKLY_MODELS_CONFIG

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


@dataclass(frozen=True)
class TrainingSummary:
    """One finished model-training run: per model asset its registry version and decision,
    and the error of every step that failed."""

    run_id: str
    job: str
    success: bool
    models: tuple[dict[str, object], ...]
    failures: tuple[str, ...]


def train_models(
    day: date, *, weekly: bool = False, instance: dg.DagsterInstance | None = None
) -> TrainingSummary:
    """Run the daily (or weekly) model job as of `day`, as the model schedules do."""
    if not DAILY.has_partition_key(day.isoformat()):
        raise ValueError(f"{day} is outside the daily partitions ({DAILY.start:%Y-%m-%d} to today)")
    job = "train_weekly_models" if weekly else "train_daily_models"
    # A run config given here replaces the job's own, so the weekly one is repeated.
    result = defs.resolve_job_def(job).execute_in_process(
        run_config={**_QUIET, **(WEEKLY_MODELS_CONFIG if weekly else {})},
        instance=instance or dagster_instance(get_settings()),
        partition_key=day.isoformat(),
        raise_on_error=False,
    )
    models = tuple(
        {
            "asset": event.asset_key.to_user_string(),
            **{
                name: event.materialization.metadata[name].value
                for name in ("model_version", "promoted", "decision")
                if name in event.materialization.metadata
            },
        }
        for event in result.get_asset_materialization_events()
    )
    failures = tuple(
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )
    return TrainingSummary(result.run_id, job, result.success, models, failures)


def _root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error's message: the asset's own words, not Dagster's wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
