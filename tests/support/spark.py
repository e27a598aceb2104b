"""One local Spark session for a test process: Spark takes about 10 s to start, so every
Spark test of a worker shares it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark_builder() -> Iterator[SparkSession.Builder]:
    """A `local[2]` session's settings, in UTC, its UI off, few shuffle partitions (test data
    is small), Arrow transfers on and Parquet timestamps in microseconds, as the lake stores
    them; the session it made is stopped when the test process ends."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("lakehouse-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    yield builder
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture
def spark(spark_builder: SparkSession.Builder) -> SparkSession:
    """The running session, or a new one if another module's fixture stopped it."""
    session = spark_builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
