"""LAKEHOUSE_ENGINE picks each transform's same-named twin, and a day rebuilt on Spark is
replaced exactly, however often, with the rows the local engine writes."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lakehouse.catalog import GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS, table_uri
from lakehouse.delta import replace_partition
from lakehouse.models import recommender, recommender_spark
from lakehouse.schemas import silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms import alerts, iot, iot_spark, silver, silver_spark
from lakehouse.transforms.engine import has_spark_twin, on_engine, row_count, to_arrow
from tests.test_gold_spark import D3, generated_readings

LOCAL = Settings(lakehouse_engine="local")
SPARK = Settings(lakehouse_engine="spark")


@pytest.mark.parametrize(
    ("transform", "twin"),
    [
        (iot.build_sensor_hourly_partition, iot_spark.build_sensor_hourly_partition),
        (iot.sensor_hourly, iot_spark.sensor_hourly),
        (silver.build_silver_partition, silver_spark.build_silver_partition),
        (recommender.train_recommender, recommender_spark.train_recommender),
    ],
)
def test_the_spark_engine_takes_the_same_named_twin(
    transform: Callable[..., object], twin: Callable[..., object]
) -> None:
    assert on_engine(transform, LOCAL) is transform
    assert on_engine(transform, SPARK) is twin
    assert has_spark_twin(transform)


def test_a_light_transform_without_a_twin_runs_locally_on_either_engine() -> None:
    light = alerts.build_alert_history_partition
    assert not has_spark_twin(light)
    assert on_engine(light, SPARK) is light


def test_rows_are_counted_and_collected_on_either_engine(spark: SparkSession) -> None:
    rows = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert row_count(rows) == row_count(spark.createDataFrame(rows)) == 3
    assert to_arrow(spark.createDataFrame(rows)) == rows
    assert to_arrow(rows) is rows


def test_a_day_rebuilt_on_spark_twice_holds_the_local_engines_rows_once(
    make_settings: Callable[..., Settings], spark: SparkSession
) -> None:
    settings = make_settings()
    readings = generated_readings()
    schema = silver_schema(SILVER_SENSOR_READINGS.source_topic or "")
    silver_rows = readings.filter(pa.compute.equal(readings["event_date"], pa.scalar(D3)))
    if "_ingested_at" not in silver_rows.column_names:
        silver_rows = silver_rows.append_column("_ingested_at", silver_rows["event_time"])
    silver_rows = silver_rows.select(schema.names).cast(schema)
    replace_partition(SILVER_SENSOR_READINGS, settings, silver_rows, f"event_date = '{D3}'")

    by_sensor_hour = [("sensor_id", "ascending"), ("hour", "ascending")]
    exact = ["sensor_id", "hour", "readings", "min_value", "max_value"]
    local = iot.build_sensor_hourly_partition(settings, D3).sort_by(by_sensor_hour)
    for _ in range(2):
        written = iot_spark.build_sensor_hourly_partition(settings, D3)
        assert row_count(written) == local.num_rows
    table = DeltaTable(table_uri(GOLD_SENSOR_HOURLY, settings))
    assert table.history(1)[0]["engine"] == "spark"
    rebuilt = table.to_pyarrow_table().sort_by(by_sensor_hour)
    assert rebuilt.select(exact) == local.select(exact)
