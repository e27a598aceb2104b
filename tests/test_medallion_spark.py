"""The whole medallion, run by Dagster with the Spark engine, passes its checks and writes
the rows the local engine writes: every silver and gold table of the day, row for row."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from assets.resources import platform_resources
from lakehouse.catalog import (
    CATALOG,
    GOLD_DEVICE_ALERTS_DAILY,
    GOLD_FRAUD_DECISION_QUALITY,
    GOLD_IOT_ALERT_HISTORY,
    TableSpec,
    table_uri,
)
from lakehouse.settings import Settings
from orchestration.definitions import defs
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

DAY = datetime(2026, 11, 24, tzinfo=UTC)
TRAFFIC = {"ecommerce": 4_000, "fraud": 2_000, "iot": 3_000}
REL_TOL = 1e-9
CHARTS = {"events_by_hour", "top_products_by_views", "devices_by_status"}
"""Metadata charts compared across the engines (silver's, and two gold tables')."""


RUN_LOCALLY_ON_EITHER_ENGINE = {
    GOLD_IOT_ALERT_HISTORY,
    GOLD_DEVICE_ALERTS_DAILY,
    GOLD_FRAUD_DECISION_QUALITY,
}
"""The light gold tables (a few rows a day from a few thousand): no Spark twin."""


def run_medallion(
    settings: Settings, engine: Literal["local", "spark"]
) -> dg.ExecuteInProcessResult:
    """The code location's own `medallion` job for DAY, in process, on `engine`."""
    job = defs.resolve_job_def("medallion")
    return job.execute_in_process(
        partition_key=DAY.date().isoformat(),
        resources=platform_resources(settings.lakehouse_root, engine),
        raise_on_error=False,
    )


def written_tables(result: dg.ExecuteInProcessResult) -> list[TableSpec]:
    """The catalogued tables the run materialized."""
    keys = {event.asset_key for event in result.get_asset_materialization_events()}
    return [table for table in CATALOG.tables.values() if dg.AssetKey(list(table.path)) in keys]


def day_rows(settings: Settings, table: TableSpec) -> pa.Table:
    """The table's rows of DAY, in a stable order (every column sorted ascending)."""
    rows = DeltaTable(table_uri(table, settings)).to_pyarrow_table()
    rows = rows.filter(pa.compute.equal(rows["event_date"], pa.scalar(DAY.date())))
    sortable = [
        field.name
        for field in rows.schema
        if not pa.types.is_nested(field.type) and not pa.types.is_floating(field.type)
    ]
    return rows.sort_by([(name, "ascending") for name in sortable])


def verdicts(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    """Whether each asset check of the run passed, by (asset, check)."""
    evaluations = result.get_asset_check_evaluations()
    assert evaluations
    return {
        (check.asset_key.to_user_string(), check.check_name): check.passed for check in evaluations
    }


def charts(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], str]:
    """Every chart the run's materializations carry (Markdown bar charts), by (asset, name)."""
    return {
        (event.asset_key.to_user_string(), name): str(value.value)
        for event in result.get_asset_materialization_events()
        for name, value in event.materialization.metadata.items()
        if name in CHARTS
    }


def skipped(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """`empty_days_skipped` of each materialized asset that reports it."""
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    name = "empty_days_skipped"
    return {key: data[name].value for key, data in metadata.items() if name in data}


def last_commit_engine(settings: Settings, table: TableSpec) -> str | None:
    """`spark` when the table's last commit came from the Spark bridge."""
    return DeltaTable(table_uri(table, settings)).history(1)[0].get("engine")


def assert_same(table: TableSpec, local: pa.Table, spark: pa.Table) -> None:
    assert spark.schema == local.schema, table.key
    assert spark.num_rows == local.num_rows, table.key
    for want, got in zip(local.to_pylist(), spark.to_pylist(), strict=True):
        for name, value in want.items():
            if isinstance(value, float) and got[name] is not None and not math.isnan(value):
                assert math.isclose(got[name], value, rel_tol=REL_TOL), (table.key, name)
            else:
                assert got[name] == value, (table.key, name, want, got)


def test_the_medallion_on_spark_passes_its_checks_and_equals_the_local_run(
    make_settings: Callable[..., Settings], spark: SparkSession
) -> None:
    settings = make_settings()
    for domain, events in TRAFFIC.items():
        land_in_bronze(settings, make_generator(domain, seed=11, start=DAY), events)

    local = run_medallion(settings, "local")
    assert local.success
    tables = written_tables(local)
    assert {table.layer.value for table in tables} == {"silver", "gold"}
    expected = {table.key: day_rows(settings, table) for table in tables}

    on_spark = run_medallion(settings, "spark")  # replaces the same days in the same lake
    assert on_spark.success
    assert written_tables(on_spark) == tables
    assert verdicts(on_spark) == verdicts(local)  # every check, blocking or not
    assert {name for _, name in charts(local)} == CHARTS
    assert charts(on_spark) == charts(local)  # the metadata charts, silver's counted by Spark

    for table in tables:
        assert_same(table, expected[table.key], day_rows(settings, table))
    # A table with a Spark twin is written by Spark, unless its day has no rows and held
    # none: then both engines leave the day alone, and report it alike.
    with_rows = {table for table in tables if expected[table.key].num_rows}
    assert {table for table in tables if last_commit_engine(settings, table) == "spark"} == (
        with_rows - RUN_LOCALLY_ON_EITHER_ENGINE
    )
    assert skipped(on_spark) == skipped(local) and any(skipped(local).values())
