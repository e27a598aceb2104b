"""Materialize through Dagster from outside the UI: what `lakehouse materialize` and the
demo call, recorded in the profile's instance so the runs show in the UI afterwards.

Runs execute in this process (no daemon or code server needed), as the same `medallion`,
`observe_bronze` and model-training jobs the schedules and the sensor launch, with the
code location's own resources: the lake, S3 and Kafka settings come from the
environment, exactly as they do for `dagster dev` and the daemon.

Each run is recorded as a run of the code location's job, so that the UI offers a plain
"Re-execute" for it. The UI does so only when the run's job snapshot id and its
repository origin (code location and repository names) both match the loaded job; else
it warns that the job "may be a different version". `JobDefinition.execute_in_process`
fails both: it runs a copy of the job whose executor is swapped for the in-process one
(the executor's config schema is part of the job snapshot, so the id differs) and
records no origin. `dagster.execute_job` keeps the snapshot but records no origin either.
So the run is created here with the code location's origin and executed with Dagster's
own `execute_run`, with the job's own executor (`multi_or_in_process`) told by run
config to run in this process, which leaves the job, and its snapshot, as declared: runs
launched from the UI still use the multiprocess default.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

# Not re-exported by `dagster`: what execute_job does, plus the origin it leaves out.
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.repository_definition.valid_definitions import (
    SINGLETON_REPOSITORY_NAME,
)
from dagster._core.execution.api import execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_shared.error import SerializableErrorInfo

from assets.partitions import DAILY, range_tags
from lakehouse.settings import get_settings
from orchestration.instance import dagster_instance
from orchestration.jobs import REAL_DATA_HEADLINES, WEEKLY_MODELS_CONFIG, real_data_evaluations_job

# The code location as `dagster dev` and the daemon load it: pyproject.toml's
# [tool.dagster] (module_name, code_location_name), from the repository root.
DEFINITIONS_MODULE = "orchestration.definitions"
CODE_LOCATION = "lakehouse"
_ROOT = str(Path(__file__).resolve().parent.parent)

# The CLI prints its own progress; Dagster's per-event console lines stay in the run's log.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Where the CLI prints every failed step's error itself, Dagster's console says nothing.
_SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# The jobs' executor is `multi_or_in_process` (Dagster's default); the CLI picks its
# in-process mode by run config, without changing the job.
_IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@dataclass(frozen=True)
class RunSummary:
    """One finished Dagster run: its id and job, and the assets it materialized or observed."""

    run_id: str
    job: str
    success: bool
    assets: tuple[str, ...]
    checks_run: int = 0
    failed_checks: tuple[str, ...] = ()  # `asset:check (severity)` of every check that failed
    failures: tuple[str, ...] = ()  # `step: error` of every step that failed


def observe_bronze(instance: dg.DagsterInstance | None = None) -> RunSummary:
    """Record every bronze table's Delta version (the observations the sensor compares)."""
    result = run_job("observe_bronze", run_config=_QUIET, instance=instance)
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
    # The summary carries every failed step's error (a blocked write's says which checks
    # and that downstream assets will not run), which the CLI prints: Dagster's console
    # would add its stack traces on top, about 90 lines for one blocked day.
    result = run_job(
        "medallion", run_config=_SILENT, instance=instance, tags=range_tags(first, last)
    )
    materialized = sorted(
        {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    )
    evaluations = _check_evaluations(result)
    return RunSummary(
        result.run_id,
        "medallion",
        result.success,
        tuple(materialized),
        len(evaluations),
        _failed_checks(evaluations),
        _step_failures(result),
    )


def _check_evaluations(result: dg.JobExecutionResult) -> list[Any]:
    """Every asset check evaluation of a finished run."""
    return [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def _failed_checks(evaluations: list[Any]) -> tuple[str, ...]:
    """`asset:check (severity)` of each evaluation that failed."""
    return tuple(
        f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value.lower()})"
        for e in evaluations
        if not e.passed
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
    # A run config given here replaces the job's own, so the weekly one is repeated. The
    # summary carries every failed step's error, which the CLI prints: Dagster's console
    # would add a traceback per failed step on top.
    result = run_job(
        job,
        run_config={**_SILENT, **(WEEKLY_MODELS_CONFIG if weekly else {})},
        instance=instance,
        partition_key=day.isoformat(),
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
    failures = _step_failures(result)
    return TrainingSummary(result.run_id, job, result.success, models, failures)


@dataclass(frozen=True)
class MaintenanceSummary:
    """One finished maintenance run: per compaction asset its files before and after, the
    tables it compacted and its rows_preserved verdict."""

    run_id: str
    job: str
    success: bool
    compactions: tuple[dict[str, object], ...]
    failed_checks: tuple[str, ...]


def maintain_day(
    day: date, *, weekly: bool = False, instance: dg.DagsterInstance | None = None
) -> MaintenanceSummary:
    """Run the nightly (or weekly) maintenance job for `day`, as its schedule does."""
    job = "weekly_maintenance" if weekly else "nightly_maintenance"
    result = run_job(job, run_config=_QUIET, instance=instance, partition_key=day.isoformat())
    compactions = tuple(
        {
            "asset": event.asset_key.to_user_string(),
            **{
                name: event.materialization.metadata[name].value
                for name in (
                    "files_before",
                    "files_after",
                    "bytes_before",
                    "bytes_after",
                    "tables_compacted",
                    "seconds",
                )
            },
        }
        for event in result.get_asset_materialization_events()
        if "files_before" in event.materialization.metadata
    )
    return MaintenanceSummary(
        result.run_id, job, result.success, compactions, _failed_checks(_check_evaluations(result))
    )


@dataclass(frozen=True)
class Figure:
    """One headline figure an evaluation asset recorded in its materialization."""

    asset: str
    name: str
    label: str
    value: object


@dataclass(frozen=True)
class EvaluationSummary:
    """One finished `real_data_evaluations` run: the headline figures of every asset it
    materialized, as recorded, and the error of every step that failed."""

    run_id: str
    job: str
    success: bool
    figures: tuple[Figure, ...]
    failures: tuple[str, ...]


def evaluation_names() -> dict[str, dg.AssetKey]:
    """Each evaluation of the `real_data_evaluations` job by the last part of its asset
    key (`cmapss_rul`, `nab_machine_temperature`, ...): what `--only` accepts."""
    return {key.path[-1]: key for key in REAL_DATA_HEADLINES}


def evaluate_real_data(
    only: Set[dg.AssetKey] | None = None, instance: dg.DagsterInstance | None = None
) -> EvaluationSummary:
    """Run the on-demand `real_data_evaluations` job (or only the evaluations in `only`)
    and read each asset's headline figures back from the run's materialization events,
    so what is printed is what the run recorded, not a recomputation."""
    unknown = set(only or ()) - set(REAL_DATA_HEADLINES)
    if unknown:
        raise ValueError(f"not an evaluation of {real_data_evaluations_job.name}: {unknown}")
    result = run_job(
        real_data_evaluations_job.name,
        run_config=_SILENT,
        instance=instance,
        asset_selection=only or None,
    )
    failures = _step_failures(result)
    return EvaluationSummary(
        result.run_id,
        real_data_evaluations_job.name,
        result.success,
        headline_figures(result.get_asset_materialization_events()),
        failures,
    )


def headline_figures(events: list[dg.DagsterEvent]) -> tuple[Figure, ...]:
    """The `REAL_DATA_HEADLINES` figures of materialization events, per asset in the
    headline order; a figure an asset did not record (NAB's platform alerts before a
    replay) is left out."""
    figures = []
    for event in events:
        headlines = REAL_DATA_HEADLINES.get(event.asset_key, {})
        metadata = event.materialization.metadata
        figures += [
            Figure(event.asset_key.to_user_string(), name, label, metadata[name].value)
            for name, label in headlines.items()
            if name in metadata
        ]
    return tuple(figures)


def run_job(
    name: str,
    *,
    run_config: Mapping[str, Any],
    instance: dg.DagsterInstance | None = None,
    tags: Mapping[str, str] | None = None,
    partition_key: str | None = None,
    asset_selection: Set[dg.AssetKey] | None = None,
) -> dg.JobExecutionResult:
    """Run the code location's job `name` in this process, recorded in `instance` (the
    profile's by default) as a run of that code location's job, only `asset_selection`'s
    assets of it when given; failures are in the result's events, not raised."""
    instance = instance or dagster_instance(get_settings())
    job = ReconstructableRepository.for_module(
        DEFINITIONS_MODULE, "defs", working_directory=_ROOT
    ).get_reconstructable_job(name)
    job_def = job.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config={**run_config, **_IN_PROCESS},
        tags=merge_run_tags(job_def, partition_key, tags, None, instance, run_config),
        remote_job_origin=code_location_origin(name),
        job_code_origin=job.get_python_origin(),
        asset_selection=frozenset(asset_selection) if asset_selection else None,
    )
    return execute_run(job, run, instance, raise_on_error=False)


def code_location_origin(job: str) -> RemoteJobOrigin:
    """Where the UI finds `job`: its code location and (single) repository, by name."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=DEFINITIONS_MODULE,
            working_directory=_ROOT,
        ),
        location_name=CODE_LOCATION,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job)


def _step_failures(result: dg.JobExecutionResult) -> tuple[str, ...]:
    """`step: error` of every step of a finished run that failed."""
    return tuple(
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )


def _root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error's message: the asset's own words, not Dagster's wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
