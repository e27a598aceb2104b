"""The maintenance assets, jobs and `lakehouse maintain` over a real lake: a day of small
bronze files is compacted with its rows kept and checked, and the weekly run lists
(locally) what retention would delete and vacuums. The schedules and what each job
selects are pinned beside the other schedules' in test_orchestration.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets.tables import maintenance_key
from lakehouse.catalog import BRONZE_SENSOR_READINGS, table_uri
from lakehouse.settings import Settings
from orchestration.definitions import defs
from tests.test_cli import lakehouse
from tests.test_silver import DAY, NOON, land, reading

BRONZE = maintenance_key("bronze_compaction")


@pytest.fixture
def lake(make_settings: Callable[..., Settings], activate: Callable[[Settings], None]) -> Settings:
    """A local lake with a bronze day of eight one-reading files (eight ingest flushes),
    made the settings Dagster's resources read."""
    settings = make_settings()
    activate(settings)
    for minute in range(8):
        land(settings, reading(f"r{minute}", offset=minute, when=NOON + timedelta(minutes=minute)))
    return settings


def day_files(settings: Settings) -> tuple[int, int]:
    """(live files, rows) of the bronze readings' day."""
    table = DeltaTable(table_uri(BRONZE_SENSOR_READINGS, settings))
    files = [uri for uri in table.file_uris() if f"event_date={DAY}" in uri]
    return len(files), table.to_pyarrow_table().num_rows


def materializations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {
        event.asset_key: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def test_the_nightly_maintenance_compacts_the_day_keeps_its_rows_and_says_so(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    assert day_files(lake) == (8, 8)

    result = defs.resolve_job_def("nightly_maintenance").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance
    )

    assert result.success
    assert day_files(lake) == (1, 8)
    bronze = materializations(result)[BRONZE]
    assert (bronze["files_before"].value, bronze["files_after"].value) == (8, 1)
    assert bronze["tables_compacted"].value == 1
    assert "bronze.sensor_readings" in bronze["tables"].value
    (check,) = [e for e in result.get_asset_check_evaluations() if e.asset_key == BRONZE]
    assert check.check_name == "rows_preserved" and check.passed
    costs = materializations(result)[maintenance_key("storage_costs")]
    assert costs["bytes"].value > 0
    lifecycle = materializations(result)[maintenance_key("s3_lifecycle")]
    assert lifecycle["bucket"].value == "none (local lake)"

    again = defs.resolve_job_def("nightly_maintenance").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance
    )
    assert again.success
    assert materializations(again)[BRONZE]["tables_compacted"].value == 0  # nothing to redo


def test_the_weekly_maintenance_lists_expired_days_locally_and_vacuums(
    lake: Settings, instance: dg.DagsterInstance
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=BRONZE_SENSOR_READINGS.retention_days + 30)
    land(lake, reading("ancient", when=long_ago))
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()

    result = defs.resolve_job_def("weekly_maintenance").execute_in_process(
        partition_key=yesterday, instance=instance
    )

    assert result.success
    retention = materializations(result)[maintenance_key("retention")]
    assert retention["dry_run"].value is True  # the local profile only lists
    assert retention["partitions_expired"].value == 1
    assert long_ago.date().isoformat() in retention["expired"].value
    ids = DeltaTable(table_uri(BRONZE_SENSOR_READINGS, lake)).to_pyarrow_table()["event_id"]
    assert "ancient" in ids.to_pylist()
    vacuum = materializations(result)[maintenance_key("vacuum")]
    assert vacuum["retention_hours"].value == lake.maintenance_vacuum_retention_hours
    assert "bronze.sensor_readings" in vacuum["tables"].value


def test_maintenance_never_joins_the_medallion_the_sensor_requests() -> None:
    medallion = defs.resolve_job_def("medallion").asset_layer.executable_asset_keys
    assert not [key for key in medallion if key.path[0] == "maintenance"]


def test_maintain_compacts_from_the_command_line_and_a_dry_run_changes_nothing(
    lake: Settings,
) -> None:
    args = ("maintain", "--table", BRONZE_SENSOR_READINGS.key, "--day", DAY.isoformat())

    dry = lakehouse(lake, *args, "--dry-run")
    assert "would compact" in dry.stdout and "8 → 8" in dry.stdout
    assert day_files(lake) == (8, 8)

    done = lakehouse(lake, *args)
    assert "compacted" in done.stdout and "8 → 1" in done.stdout
    assert day_files(lake) == (1, 8)


def test_maintain_refuses_an_unknown_table_clearly(lake: Settings) -> None:
    refused = lakehouse(lake, "maintain", "--table", "silver.nope", check=False)
    assert refused.returncode == 2
    assert "unknown table 'silver.nope'" in refused.stderr
