"""Schedules, the bronze sensor and ranged runs, evaluated against real Delta tables and a
real Dagster instance (the in-process equivalents of what the daemon does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime
from deltalake import DeltaTable

from assets.bronze import bronze_tables
from assets.iot.silver import silver_sensor_readings
from assets.partitions import DAILY, first_partition_day
from assets.resources import platform_resources
from assets.tables import asset_key
from lakehouse.catalog import (
    BRONZE_SENSOR_READINGS,
    SILVER_SENSOR_READINGS,
    SILVER_TRANSACTIONS,
    TableSpec,
    table_uri,
)
from lakehouse.maintenance.compaction import compact_day
from lakehouse.settings import Settings
from orchestration.definitions import defs
from orchestration.materialize import observe_bronze, rebuild_days
from orchestration.schedules import REBUILD_REACH_DAYS, reprocessing_stretches
from tests.conftest import REPO, another_hash_seed
from tests.test_silver import DAY, NOON, land, reading, silver_ids

# The default resource reads the environment, which the `lake` fixture points at a temp lake.
RESOURCES = platform_resources()
def _downstream_in_lake(source: dg.AssetKey) -> set[dg.AssetKey]:
    """The silver and gold assets built, directly or not, from `source`."""
    downstream = dg.AssetSelection.assets(source).downstream(include_self=False)
    return {key for key in downstream.resolve(defs.resolve_asset_graph())
            if key.path[0] in ("silver", "gold")}


IOT_DOWNSTREAM = _downstream_in_lake(asset_key(BRONZE_SENSOR_READINGS))


@pytest.fixture
def lake(make_settings: Callable[..., Settings], activate: Callable[[Settings], None]) -> Settings:
    """A local lake, made the settings Dagster's resources read."""
    settings = make_settings()
    activate(settings)
    return settings


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    # As a context manager: the context builds its resources inside an instance scope, and
    # only leaving it resets Dagster's process-wide state for the next test.
    with dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=cursor, resources=RESOURCES
    ) as context:
        return defs.resolve_sensor_def("bronze_advanced")(context)


def test_the_sensor_requests_the_touched_days_once_and_only_downstream_of_what_moved(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    baseline = tick(instance, None)  # before any bronze table exists
    assert baseline.run_requests == []
    assert json.loads(baseline.cursor) == {}

    land(lake, reading("a", offset=1), reading("b", offset=2))
    first = tick(instance, baseline.cursor)  # a table that appeared is new in full
    (request,) = first.run_requests
    assert request.partition_key == DAY.isoformat()
    assert set(request.asset_selection) == IOT_DOWNSTREAM
    assert json.loads(first.cursor)["bronze.sensor_readings"] == 1
    (observation,) = first.asset_events  # the table that moved is observed, no run needed
    assert observation.asset_key == asset_key(BRONZE_SENSOR_READINGS)
    assert observation.tags["dagster/data_version"] == "1"
    assert observation.metadata["dagster/row_count"].value == 2

    assert tick(instance, first.cursor).run_requests == []  # nothing new: nothing requested

    two_days_ago = NOON - timedelta(days=2)
    land(lake, reading("late", offset=3, when=two_days_ago))
    later = tick(instance, first.cursor)
    assert [r.partition_key for r in later.run_requests] == [two_days_ago.date().isoformat()]
    assert later.run_requests[0].run_key != request.run_key


def test_the_sensor_first_tick_takes_a_baseline_and_leaves_history_to_backfills(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    land(lake, reading("history", offset=1))
    baseline = tick(instance, None)
    assert baseline.run_requests == []
    assert json.loads(baseline.cursor) == {"bronze.sensor_readings": 1}
    land(lake, reading("new", offset=2, when=NOON - timedelta(days=1)))
    (request,) = tick(instance, baseline.cursor).run_requests
    assert request.partition_key == (DAY - timedelta(days=1)).isoformat()


def test_the_sensor_skips_days_outside_the_partitions(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    baseline = tick(instance, None)
    land(lake, reading("old", offset=1, when=datetime(2024, 6, 1, 12, tzinfo=UTC)))
    assert tick(instance, baseline.cursor).run_requests == []


def test_the_nightly_schedule_rebuilds_the_day_that_just_ended(
    instance: dg.DagsterInstance,
) -> None:
    with dg.build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=datetime(2026, 11, 24, 0, 30, tzinfo=UTC),
    ) as context:
        tick = defs.resolve_schedule_def("nightly_medallion").evaluate_tick(context)
    (request,) = tick.run_requests
    assert request.partition_key == "2026-11-23"
    assert request.run_key == "nightly-2026-11-23"


COMPACTIONS = {
    f"maintenance/{layer}_compaction" for layer in ("bronze", "silver", "gold", "models")
}
NIGHTLY_MAINTENANCE = COMPACTIONS | {"maintenance/s3_lifecycle", "maintenance/storage_costs"}


@pytest.mark.parametrize(
    ("schedule", "when", "job", "assets"),
    [
        ("nightly_models", datetime(2026, 11, 24, 2, tzinfo=UTC), "train_daily_models",
         {"models/recommender_als", "models/user_recommendations", "online/recommendations",
          "online/popular_products", "models/fraud_xgboost", "online/fraud_user_profiles",
          "online/fraud_category_risk"}),
        ("weekly_models", datetime(2026, 11, 29, 6, tzinfo=UTC), "train_weekly_models",
         {"models/fraud_xgboost", "models/iot_failure"}),
        ("nightly_maintenance", datetime(2026, 11, 24, 4, tzinfo=UTC), "nightly_maintenance",
         NIGHTLY_MAINTENANCE),
        # Only the weekly run deletes: retention and VACUUM.
        ("weekly_maintenance", datetime(2026, 11, 29, 9, tzinfo=UTC), "weekly_maintenance",
         NIGHTLY_MAINTENANCE | {"maintenance/retention", "maintenance/vacuum"}),
    ],
)
def test_the_model_and_maintenance_schedules_run_their_jobs_as_of_yesterday(
    instance: dg.DagsterInstance, schedule: str, when: datetime, job: str, assets: set[str]
) -> None:
    with dg.build_schedule_context(
        instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=when
    ) as context:
        tick = defs.resolve_schedule_def(schedule).evaluate_tick(context)
    (request,) = tick.run_requests
    assert request.partition_key == (when - timedelta(days=1)).date().isoformat()
    definition = defs.resolve_job_def(job)
    assert definition.name == defs.resolve_schedule_def(schedule).job_name
    selected = {key.to_user_string() for key in definition.asset_layer.executable_asset_keys}
    assert selected == assets


def test_only_the_weekly_run_trains_the_fraud_model_on_all_history() -> None:
    def full_history(job: str) -> bool:
        config = defs.resolve_job_def(job).get_run_config_for_partition_key("2026-11-23")
        ops = config.get("ops", {})
        return ops.get("models__fraud_xgboost", {}).get("config", {}).get("full_history", False)

    assert full_history("train_weekly_models")
    assert not full_history("train_daily_models")


def test_the_weekly_schedule_reprocesses_every_landed_day_in_one_ranged_run(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    schedule = defs.resolve_schedule_def("weekly_full_reprocessing")

    def evaluate(when: datetime) -> dg.ScheduleExecutionData:
        with dg.build_schedule_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            scheduled_execution_time=when,
            resources=RESOURCES,
        ) as context:
            return schedule.evaluate_tick(context)

    sunday = datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert evaluate(sunday).skip_message == "no bronze data yet"

    land(lake, reading("a", offset=1, when=NOON - timedelta(days=3)), reading("b", offset=2))
    (request,) = evaluate(sunday).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-20"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-28"

    # An old data set beside it (an import's 2025 days): its own run, not the year between.
    land(lake, reading("c", offset=3, when=datetime(2025, 6, 1, 12, tzinfo=UTC)))
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in evaluate(sunday).run_requests
    ]
    assert ranges == [("2025-06-01", "2025-07-01"), ("2026-11-20", "2026-11-28")]


def test_reprocessing_splits_only_where_no_window_reaches_the_next_landed_day() -> None:
    last = date(2026, 11, 28)
    reach = REBUILD_REACH_DAYS
    assert reprocessing_stretches([date(2026, 11, 1)], last) == [(date(2026, 11, 1), last)]
    near = date(2026, 1, 1) + timedelta(days=reach + 1)  # the day after the window's end
    assert reprocessing_stretches([date(2026, 1, 1), near], last) == [(date(2026, 1, 1), last)]
    far = near + timedelta(days=1)
    assert reprocessing_stretches([date(2026, 1, 1), far], last) == [
        (date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=reach)),
        (far, last),
    ]


def test_a_ranged_run_rebuilds_every_day_of_the_range(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    earlier = NOON - timedelta(days=2)
    land(lake, reading("a", offset=1, when=earlier), reading("b", offset=2))
    run = rebuild_days(earlier.date(), DAY, instance=instance)
    assert run.success
    assert {"silver/sensor_readings", "gold/sensor_hourly"} <= set(run.assets)
    assert silver_ids(lake) == [(earlier.date(), "a"), (DAY, "b")]
    (recorded,) = instance.get_runs()
    assert recorded.job_name == "medallion"
    assert recorded.tags["dagster/asset_partition_range_start"] == earlier.date().isoformat()


def _skipped(instance: dg.DagsterInstance, table: TableSpec) -> int:
    event = instance.get_latest_materialization_event(asset_key(table))
    assert event is not None and event.asset_materialization is not None
    return event.asset_materialization.metadata["empty_days_skipped"].value


def test_a_ranged_run_leaves_empty_days_alone_but_empties_a_day_that_held_rows(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    """Days without input cost no check and no commit; every check still reports (one
    verdict on the last day's empty rows where a table had no input at all); a day whose
    input is gone since is still replaced by an empty day."""
    first, earlier = DAY - timedelta(days=3), NOON - timedelta(days=2)
    land(lake, reading("a", offset=1, when=earlier), reading("b", offset=2))
    run = rebuild_days(first, DAY, instance=instance)
    assert run.success and all(check.endswith("(warn)") for check in run.failed_checks)
    assert silver_ids(lake) == [(earlier.date(), "a"), (DAY, "b")]
    silver = DeltaTable(table_uri(SILVER_SENSOR_READINGS, lake))
    assert silver.version() == 2  # created, then the two days with rows
    assert _skipped(instance, SILVER_SENSOR_READINGS) == 2
    assert _skipped(instance, SILVER_TRANSACTIONS) == 4  # no transactions at all
    checks = defs.resolve_asset_graph().asset_check_keys
    assert run.checks_run == sum(key.asset_key.to_user_string() in run.assets for key in checks)

    bronze = DeltaTable(table_uri(BRONZE_SENSOR_READINGS, lake))
    bronze.delete(f"event_date = '{DAY.isoformat()}'")
    assert rebuild_days(first, DAY, instance=instance).success
    assert silver_ids(lake) == [(earlier.date(), "a")]
    assert _skipped(instance, SILVER_SENSOR_READINGS) == 2


def test_the_partitions_start_at_the_first_landed_day_unless_configured(
    make_settings: Callable[..., Settings],
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    empty = make_settings(lakehouse_first_day=None)
    assert first_partition_day(empty) == yesterday  # the demo's day: nothing to show yet

    next_day = NOON + timedelta(days=1)
    land(empty, reading("a", offset=1, when=NOON), reading("b", offset=2, when=next_day))
    assert first_partition_day(empty) == DAY

    configured = make_settings(lakehouse_first_day=DAY - timedelta(days=30))
    assert first_partition_day(configured) == DAY - timedelta(days=30)
    # The session's code location was loaded with LAKEHOUSE_FIRST_DAY (tests/conftest.py).
    assert DAILY.start.date().isoformat() == os.environ["LAKEHOUSE_FIRST_DAY"]


def test_an_unreadable_lake_does_not_stop_the_code_location_from_loading(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    broken = tmp_path / "lake" / "bronze" / "sensor_readings" / "_delta_log"
    broken.mkdir(parents=True)
    (broken / "00000000000000000000.json").write_text("not a delta log")
    settings = make_settings(lakehouse_first_day=None)
    assert first_partition_day(settings) == datetime.now(UTC).date() - timedelta(days=1)


def test_a_range_outside_the_partitions_is_refused_before_any_run(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    with pytest.raises(ValueError, match="outside the daily partitions"):
        rebuild_days(datetime(2024, 12, 31).date(), DAY, instance=instance)
    with pytest.raises(ValueError, match="before it starts"):
        rebuild_days(DAY, DAY - timedelta(days=1), instance=instance)
    assert instance.get_runs() == []


# What `dagster dev` and the daemon load: pyproject.toml's code location, in their own
# process. Prints the location's name and the snapshot id of each of its jobs.
LOADED_CODE_LOCATION = """
import importlib, json, tomllib
import dagster as dg
with open("pyproject.toml", "rb") as file:
    declared = tomllib.load(file)["tool"]["dagster"]
module = importlib.import_module(declared["module_name"])
(definitions,) = [v for v in vars(module).values() if isinstance(v, dg.Definitions)]
jobs = {job.name: job.get_job_snapshot_id() for job in definitions.resolve_all_job_defs()}
print(json.dumps({"location": declared["code_location_name"], "jobs": jobs}))
"""


def test_runs_made_by_the_cli_are_runs_of_the_code_locations_own_jobs(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    """The UI offers a plain Re-execute only when a run's job snapshot id and origin match
    the loaded job (else: "may be a different version"); `execute_in_process` matched
    neither, as it runs a copy of the job with another executor and records no origin."""
    land(lake, reading("a", offset=1))
    runs = [observe_bronze(instance), rebuild_days(DAY, instance=instance)]
    assert all(run.success for run in runs)

    loaded = subprocess.run(
        [sys.executable, "-c", LOADED_CODE_LOCATION],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": another_hash_seed()},
        capture_output=True,
        text=True,
        check=True,
    )
    location = json.loads(loaded.stdout)
    for summary in runs:
        run = instance.get_run_by_id(summary.run_id)
        assert run is not None
        assert run.job_snapshot_id == location["jobs"][run.job_name], run.job_name
        origin = run.remote_job_origin
        assert origin is not None, f"{run.job_name} run records no code location"
        assert (origin.location_name, origin.repository_origin.repository_name) == (
            location["location"],
            "__repository__",
        )
        assert origin.job_name == run.job_name
        assert run.tags["dagster/code_location"] == location["location"]
        # The CLI runs in this process; the job keeps its declared (multiprocess) default.
        assert run.run_config["execution"] == {"config": {"in_process": {}}}


# --- compaction commits change no data -----------------------------------------------------


def test_the_sensor_ignores_a_compaction_but_not_an_append_beside_one(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    baseline = tick(instance, None)
    land(lake, reading("a", offset=1))
    land(lake, reading("b", offset=2))
    first = tick(instance, baseline.cursor)
    assert [r.partition_key for r in first.run_requests] == [DAY.isoformat()]

    assert compact_day(BRONZE_SENSOR_READINGS, lake, DAY).compacted
    compacted = tick(instance, first.cursor)
    assert compacted.run_requests == []
    assert json.loads(compacted.cursor)["bronze.sensor_readings"] == 3  # seen, not requested
    (observation,) = compacted.asset_events  # new files, same data version
    assert observation.tags["dagster/data_version"] == "2"
    assert observation.metadata["delta_version"].value == 3

    # A compaction and an append of the same day in one interval: the day is requested.
    land(lake, reading("c", offset=3))
    assert compact_day(BRONZE_SENSOR_READINGS, lake, DAY).compacted
    land(lake, reading("d", offset=4, when=NOON - timedelta(days=1)))
    later = tick(instance, compacted.cursor)
    requested = [r.partition_key for r in later.run_requests]
    assert requested == [(DAY - timedelta(days=1)).isoformat(), DAY.isoformat()]
    assert later.asset_events[0].tags["dagster/data_version"] == "6"


def _status(instance: dg.DagsterInstance, key: dg.AssetKey) -> StaleStatus:
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance, graph, loading_context=view)
    return resolver.get_status(key, partition_key=DAY.isoformat())


def test_a_compaction_of_bronze_leaves_what_was_built_from_it_up_to_date(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    def observe() -> None:
        assert observe_bronze(instance).success

    land(lake, reading("a", offset=1))
    land(lake, reading("b", offset=2))
    observe()
    built = dg.materialize(
        [bronze_tables, silver_sensor_readings],
        selection=[silver_sensor_readings],
        partition_key=DAY.isoformat(),
        instance=instance,
        resources=RESOURCES,
    )
    assert built.success
    silver = asset_key(SILVER_SENSOR_READINGS)
    assert _status(instance, silver) is StaleStatus.FRESH

    assert compact_day(BRONZE_SENSOR_READINGS, lake, DAY).compacted
    observe()
    assert _status(instance, silver) is StaleStatus.FRESH

    land(lake, reading("c", offset=3))  # new data does make it stale
    observe()
    assert _status(instance, silver) is StaleStatus.STALE
