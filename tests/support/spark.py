"""One local Spark session for a test process: Spark takes about 10 s to start, so every
Spark test of a worker shares it. It is the platform's own session (`spark_session`,
from the settings), with what small test data wants on top."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Few shuffle partitions (the test data is small), no UI, Arrow transfers for the
# equality tests' DataFrames in and out.
TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The settings the process's session is built from (`local[2]`, UTC, microsecond
    Parquet timestamps, plus TEST_CONF); the session is stopped when the process ends."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    yield Settings(lakehouse_root=str(tmp_path_factory.mktemp("spark")), spark_conf=TEST_CONF)
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture
def spark(spark_settings: Settings) -> SparkSession:
    """The process's running session (started by the first test that asks)."""
    from lakehouse.spark.session import spark_session

    session = spark_session(spark_settings)
    session.sparkContext.setLogLevel("ERROR")
    return session
