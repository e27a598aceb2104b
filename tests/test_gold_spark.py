"""Spark twins of the IoT and fraud gold transforms give the rows their local (DuckDB)
twins give on the same input: integers, strings, times and lists exactly, floating-point
aggregates to a relative 1e-9 (the engines add in different orders)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse.schemas import (
    DEVICE_HEALTH_DAILY,
    EVENT_SCHEMAS,
    FRAUD_DAILY_STATS,
    FRAUD_USER_DAILY,
    FRAUD_USER_PROFILES,
    SENSOR_HOURLY,
    silver_schema,
)
from lakehouse.transforms import fraud, fraud_spark, iot, iot_spark
from streaming.generators import make_generator
from streaming.ingest.decode import BatchDecoder
from tests.test_gold_fraud_iot import D1, D2, D3, at, random_transactions, transactions, txn
from tests.test_silver import reading

REL_TOL = 1e-9


def same_rows(local: pa.Table, remote: DataFrame, schema: pa.Schema, keys: list[str]) -> None:
    """Assert the Spark result has the catalog's columns and types and, sorted by `keys`,
    the local result's rows: floats to REL_TOL, everything else exactly."""
    spark_rows = remote.toArrow()
    assert [(f.name, f.type) for f in spark_rows.schema] == [(f.name, f.type) for f in schema]
    ordered = [(key, "ascending") for key in keys]
    expected = local.sort_by(ordered).to_pylist()
    actual = spark_rows.cast(schema).sort_by(ordered).to_pylist()
    assert len(actual) == len(expected) > 0
    for want, got in zip(expected, actual, strict=True):
        for name, value in want.items():
            if isinstance(value, float) and got[name] is not None:
                assert math.isclose(got[name], value, rel_tol=REL_TOL), (name, want, got)
            else:
                assert got[name] == value, (name, want, got)


@pytest.fixture(scope="module")
def readings() -> pa.Table:
    """A day of generated readings (`generated_readings`), once per module."""
    return generated_readings()


def generated_readings() -> pa.Table:
    """The IoT generator's readings for one day as silver columns (no Kafka, no Delta):
    12 machines, about 17 readings per sensor and hour, a quarter of them failing; plus a
    sensor with a single reading in its hour (a NULL sample stddev)."""
    generator = make_generator(
        "iot", seed=7, start=at(D3, 0), span=timedelta(days=1), n_machines=12, failure_rate=0.25
    )
    decoder = BatchDecoder(EVENT_SCHEMAS["sensor_readings"], 1 << 20)
    schema = silver_schema("sensor_readings")
    tables = []
    for batch in generator.batches(20_000):
        table = decoder.decode(batch.values).table
        table = table.append_column("event_date", pc.cast(table["event_time"], pa.date32()))
        tables.append(table.select([name for name in schema.names if name in table.column_names]))
    lonely = reading("lonely", sensor_type="humidity", when=at(D3, 5, 30))
    lonely_table = pa.Table.from_pylist([lonely], schema=schema).select(tables[0].column_names)
    return pa.concat_tables([*tables, lonely_table.cast(tables[0].schema)])


def test_sensor_hourly_on_spark_equals_the_local_twin(
    spark: SparkSession, readings: pa.Table
) -> None:
    local = iot.sensor_hourly(readings)
    assert None in local.column("stddev_value").to_pylist()
    remote = iot_spark.sensor_hourly(spark.createDataFrame(readings))
    same_rows(local, remote, SENSOR_HOURLY, ["sensor_id", "hour"])


def test_device_health_on_spark_equals_the_local_twin(
    spark: SparkSession, readings: pa.Table
) -> None:
    hourly = iot.sensor_hourly(readings)
    labels = readings.select(
        ["device_id", "event_time", "event_date", "label_anomaly", "label_failure_at"]
    )
    local = iot.device_health_daily(hourly, labels, D3)
    assert any(local.column("failed").to_pylist())
    remote = iot_spark.device_health_daily(
        spark.createDataFrame(hourly), spark.createDataFrame(labels), D3
    )
    same_rows(local, remote, DEVICE_HEALTH_DAILY, ["device_id"])


def test_fraud_user_daily_on_spark_equals_the_local_twin(spark: SparkSession) -> None:
    txns = random_transactions(seed=11, days=[D1, D2], users=40, n=3_000)
    local = fraud.fraud_user_daily(txns)
    remote = fraud_spark.fraud_user_daily(spark.createDataFrame(txns))
    same_rows(local, remote, FRAUD_USER_DAILY, ["event_date", "user_id"])


def test_fraud_user_profiles_on_spark_equal_the_local_twin(spark: SparkSession) -> None:
    lone = transactions(txn("lone", at(D1, 3), 999, 5.0))  # a NULL sample stddev
    txns = pa.concat_tables([random_transactions(13, [D1, D2, D3], 40, 3_000), lone])
    daily = fraud.fraud_user_daily(txns)
    local = fraud.fraud_user_profiles(daily, D2)
    assert None in local.column("stddev_amount").to_pylist()
    remote = fraud_spark.fraud_user_profiles(spark.createDataFrame(daily), D2)
    same_rows(local, remote, FRAUD_USER_PROFILES, ["user_id"])


def test_fraud_daily_stats_on_spark_equals_the_local_twin(spark: SparkSession) -> None:
    txns = random_transactions(seed=12, days=[D1, D2], users=40, n=3_000)
    local = fraud.fraud_daily_stats(txns)
    remote = fraud_spark.fraud_daily_stats(spark.createDataFrame(txns))
    same_rows(
        local, remote, FRAUD_DAILY_STATS, ["event_date", "hour", "merchant_category", "channel"]
    )


def test_the_local_twins_import_without_pyspark() -> None:
    """The core runs where pyspark is not installed: only the `*_spark` modules import it."""
    probe = (
        "import sys; import lakehouse.transforms.fraud, lakehouse.transforms.iot, "
        "lakehouse.transforms.ecommerce; "
        "sys.exit('pyspark' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
