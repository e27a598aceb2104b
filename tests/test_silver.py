"""Silver: one row per event id, rule breakers set aside with their reasons, partitions
replaced exactly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.catalog import CATALOG, REJECTED_ROWS, SILVER_SENSOR_READINGS, table_uri
from lakehouse.delta import ensure_table
from lakehouse.schemas import SENSOR_READINGS, VOCABULARIES, bronze_schema
from lakehouse.settings import Settings
from lakehouse.transforms.engine import to_arrow
from lakehouse.transforms.iot import sensor_hourly
from lakehouse.transforms.silver import build_silver_partition, to_silver
from streaming.generators.iot import SENSOR_TYPES

DAY = date(2026, 11, 23)
NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


def reading(
    event_id: str,
    *,
    value: float = 50.0,
    sensor_type: str = "temperature",
    landed_after: float = 1.0,
    offset: int = 0,
    when: datetime = NOON,
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_time": when,
        "device_id": "machine-0001",
        "sensor_id": f"machine-0001/{sensor_type}",
        "sensor_type": sensor_type,
        "plant": "plant-a",
        "sequence": offset,
        "value": value,
        "unit": "degC",
        "label_anomaly": None,
        "label_failure_at": None,
        "_kafka_partition": 0,
        "_kafka_offset": offset,
        "_ingested_at": when + timedelta(seconds=landed_after),
        "event_date": when.date(),
    }


def bronze(*rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=bronze_schema(SENSOR_READINGS))


def test_duplicates_keep_their_first_landed_copy() -> None:
    result = to_silver(
        bronze(
            reading("r1", value=50.0, landed_after=5, offset=7),
            reading("r1", value=50.0, landed_after=1, offset=3),
            reading("r2", value=51.5, offset=4),
        ),
        "sensor_readings",
    )
    assert result.duplicates == 1
    rows = result.rows.sort_by("event_id")
    assert rows.column("event_id").to_pylist() == ["r1", "r2"]
    assert rows.column("sequence").to_pylist() == [3, 4]  # the copy landed first
    assert "_kafka_offset" not in result.rows.column_names


def test_rows_breaking_rules_are_set_aside_with_the_rules_named() -> None:
    result = to_silver(
        bronze(
            reading("ok"),
            reading("nan", value=float("nan")),
            reading("humid", sensor_type="humidity", value=float("inf")),
        ),
        "sensor_readings",
    )
    assert result.rows.column("event_id").to_pylist() == ["ok"]
    rejected = {row["event_id"]: row["broken_rules"] for row in result.rejected.to_pylist()}
    assert rejected == {"nan": ["value_finite"], "humid": ["sensor_type_known", "value_finite"]}
    assert '"sensor_type":"humidity"' in result.rejected.column("row")[0].as_py()


def test_the_generators_draw_from_the_contract_vocabularies() -> None:
    assert SENSOR_TYPES.values == VOCABULARIES["sensor_readings"]["sensor_type"]


def land(settings: Settings, *rows: dict[str, object]) -> None:
    spec = CATALOG.bronze_for_topic("sensor_readings")
    write_deltalake(ensure_table(spec, settings), bronze(*rows), mode="append")


def silver_ids(settings: Settings) -> list[tuple[date, str]]:
    table = DeltaTable(table_uri(SILVER_SENSOR_READINGS, settings))
    rows = table.to_pyarrow_table(columns=["event_date", "event_id"]).to_pylist()
    return sorted((row["event_date"], row["event_id"]) for row in rows)


def test_rebuilding_a_partition_is_idempotent_and_touches_no_other_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    yesterday = NOON - timedelta(days=1)
    land(settings, reading("a"), reading("b"), reading("old", when=yesterday))
    build_silver_partition(settings, "sensor_readings", yesterday.date())
    build_silver_partition(settings, "sensor_readings", DAY)
    first = silver_ids(settings)
    build_silver_partition(settings, "sensor_readings", DAY)
    assert (
        silver_ids(settings)
        == first
        == [
            (yesterday.date(), "old"),
            (DAY, "a"),
            (DAY, "b"),
        ]
    )


@pytest.mark.parametrize("redelivered", [False, True], ids=["clean day", "with a redelivery"])
def test_a_nan_reading_in_bronze_files_is_rejected_not_written(
    make_settings: Callable[..., Settings], redelivered: bool
) -> None:
    """Bronze's Parquet statistics leave NaN out of a column's min and max; silver must
    judge the row itself (DuckDB 2.0.1 decided `NOT isnan(value)` from those statistics
    and let the NaN through when the day was read straight from the files)."""
    settings = make_settings()
    rows = [reading("a", value=50.0), reading("x", value=float("nan")), reading("b", value=54.0)]
    if redelivered:
        rows.append(reading("a", value=50.0, landed_after=60))
    land(settings, *rows)
    result = build_silver_partition(settings, "sensor_readings", DAY)
    assert silver_ids(settings) == [(DAY, "a"), (DAY, "b")]
    assert to_arrow(result.rejected).column("event_id").to_pylist() == ["x"]


def test_a_late_duplicate_in_a_later_bronze_commit_does_not_reach_silver_twice(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land(settings, reading("a", offset=1), reading("bad", value=float("nan"), offset=2))
    build_silver_partition(settings, "sensor_readings", DAY)
    # The gateway redelivers "a" hours later; it lands in a new bronze commit.
    land(settings, reading("a", landed_after=7200, offset=9), reading("c", offset=10))
    result = build_silver_partition(settings, "sensor_readings", DAY)
    assert result.duplicates == 1
    assert silver_ids(settings) == [(DAY, "a"), (DAY, "c")]
    rejected = DeltaTable(table_uri(REJECTED_ROWS, settings))
    assert rejected.to_pyarrow_table().column("event_id").to_pylist() == ["bad"]


def test_hourly_aggregates_per_sensor_match_a_hand_computation() -> None:
    ten = NOON.replace(hour=10)
    readings = to_silver(
        bronze(
            reading("a", value=50.0, when=ten, offset=1),
            reading("b", value=52.0, when=ten + timedelta(minutes=20), offset=2),
            reading("c", value=57.0, when=ten + timedelta(minutes=59), offset=3),
            reading("d", value=60.0, when=ten + timedelta(hours=1), offset=4),
            reading("v", value=2.5, sensor_type="vibration", when=ten, offset=5),
        ),
        "sensor_readings",
    ).rows
    rows = sensor_hourly(readings).to_pylist()
    summary = [
        (
            r["sensor_type"],
            r["hour"].hour,
            r["readings"],
            r["avg_value"],
            r["min_value"],
            r["max_value"],
            None if r["stddev_value"] is None else round(r["stddev_value"], 6),
        )
        for r in rows
    ]
    # 50, 52, 57: mean 53, sample variance ((9 + 1 + 16) / 2) = 13.
    assert summary == [
        ("temperature", 10, 3, 53.0, 50.0, 57.0, round(13**0.5, 6)),
        ("vibration", 10, 1, 2.5, 2.5, 2.5, None),
        ("temperature", 11, 1, 60.0, 60.0, 60.0, None),
    ]
    assert {r["event_date"] for r in rows} == {DAY}
