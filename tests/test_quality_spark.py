"""Quality checks on Spark: where the engine is Spark the gate gets a Spark DataFrame, and
the same suites, run by GX's Spark execution engine, give the outcomes the pandas engine
gives on the same rows as Arrow: the same verdicts, observed values, unexpected counts and
failing ids. `tests/test_quality.py` proves the checks themselves catch what they should.

Spark validations cost seconds each (a Spark job per expectation), so each case runs once
on faulty rows, whose clean majority keeps the other checks passing.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from lakehouse.catalog import (
    CATALOG,
    GOLD_PRODUCT_DAILY,
    GOLD_SENSOR_HOURLY,
    SILVER_TRANSACTIONS,
    USER_RECOMMENDATIONS,
    TableSpec,
)
from lakehouse.settings import Settings
from lakehouse.transforms.ecommerce import product_daily
from lakehouse.transforms.iot import sensor_hourly
from quality import spark as spark_module
from quality.checks import Check, Suite
from quality.gate import BlockedWrite, QualityGate
from quality.suites import fresh_bronze, present, suite_for
from quality.validate import SAMPLE_ROWS
from quality.value_sets import in_large_set
from streaming.generators import Faults
from tests.support.broken_rows import broken, every_rule_broken
from tests.support.large_value_set import assert_large_sets_judged_as_pandas, translated
from tests.support.quality_outcomes import assert_same_outcomes, ids
from tests.test_quality import DAY, bronze_rows, land_bronze, silver_day
from tests.test_silver import reading

ALL_FAULTS = Faults(nulls=0.2, out_of_range=0.05, duplicates=0.05, schema_drift=0.3)
EVENTS = {"ecommerce": 5_000, "fraud": 4_000}
"""A quarter of test_quality's e-commerce day (20,000 events, ~18,700 clickstream rows):
GX on Spark costs a job per expectation plus time per row, and ~4,600 clickstream rows
still break every rule hundreds of times at these fault rates, many more than the
SAMPLE_ROWS failing ids compared (both branches of `assert_same_outcomes` stay exercised),
while the clean day still passes every check and still makes a product_daily day."""


@pytest.fixture(scope="module")
def bronze() -> dict[tuple[str, bool], pa.Table]:
    """A bronze day of the e-commerce and fraud topics, clean and with every fault."""
    days = {}
    for domain in ("ecommerce", "fraud"):
        for faulty in (False, True):
            rows = bronze_rows(domain, ALL_FAULTS if faulty else None, EVENTS[domain])
            days.update({(topic, faulty): day for topic, day in rows.items()})
    return days


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, bronze: dict[tuple[str, bool], pa.Table]
) -> Settings:
    """A lake whose bronze holds the clean clickstream day (products_known reads it, for
    thousands of known products); no silver or gold history, so the volume checks ask for
    one row."""
    root = tmp_path_factory.mktemp("quality-spark")
    settings = Settings(lakehouse_root=str(root / "lake"), lakehouse_home=root / "home")
    land_bronze(settings, {"clickstream": bronze["clickstream", False]})
    return settings


@pytest.fixture(scope="module")
def silver(bronze: dict[tuple[str, bool], pa.Table]) -> dict[tuple[str, bool], pa.Table]:
    """A silver day of clickstream, cart events, purchases and transactions, clean and
    with every fault."""
    topics = ("clickstream", "cart_events", "purchases", "transactions")
    return {
        (topic, faulty): silver_day(rows, topic)
        for (topic, faulty), rows in bronze.items()
        if topic in topics
    }


def gold_rows(table: TableSpec, silver: dict[tuple[str, bool], pa.Table]) -> pa.Table:
    if table is GOLD_PRODUCT_DAILY:
        clean = [silver[topic, False] for topic in ("clickstream", "cart_events", "purchases")]
        return product_daily(*clean)
    readings = silver_day(bronze_rows("iot")["sensor_readings"], "sensor_readings")
    return sensor_hourly(readings)


@pytest.mark.parametrize("topic", ["clickstream", "transactions"])
def test_silver_checks_on_spark_equal_the_pandas_engine_on_faulty_rows(
    spark: SparkSession, settings: Settings, silver: dict[tuple[str, bool], pa.Table], topic: str
) -> None:
    outcomes = assert_same_outcomes(
        CATALOG.silver_for_topic(topic), silver[topic, True], spark.createDataFrame, DAY, settings
    )
    failed = {o.check.name for o in outcomes if not o.passed}
    assert {"natural_key_unique", "expected_fields_present"} <= failed  # the faults show
    assert "schema_matches" not in failed and "event_id_unique" not in failed


def test_silver_checks_on_spark_pass_clean_rows(
    spark: SparkSession, settings: Settings, silver: dict[tuple[str, bool], pa.Table]
) -> None:
    outcomes = assert_same_outcomes(
        CATALOG.silver_for_topic("clickstream"),
        silver["clickstream", False],
        spark.createDataFrame,
        DAY,
        settings,
    )
    assert [o.check.name for o in outcomes if not o.passed] == []


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "faulty"])
def test_purchases_known_products_on_spark_run_as_a_query_with_the_in_set_outcome(
    spark: SparkSession,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
    faulty: bool,
) -> None:
    """products_known holds every product viewed that day or the day before (thousands on a
    real day, hundreds here): on Spark it runs as a query of the rows outside the set, not
    GX's in-set expectation, and its outcome is the pandas engine's on the clean day (all
    known) and on the faulty day with products unknown to the day's views and some missing
    (nulls, left out of the count and the percent)."""
    spec = CATALOG.silver_for_topic("purchases")
    known = suite_for(spec).check("products_known").expectations_for(settings, DAY)[0]
    assert in_large_set(known) is not None
    rows = unknown_products(silver["purchases", True]) if faulty else silver["purchases", False]
    with translated(spark_module) as queried:
        outcomes = assert_same_outcomes(spec, rows, spark.createDataFrame, DAY, settings)
    assert [expect.kwargs["column"] for expect in queried] == ["product_id"]
    (outcome,) = [o for o in outcomes if o.check.name == "products_known"]
    (found,) = outcome.expectations
    assert (outcome.passed, found.unexpected_count) == ((False, 7) if faulty else (True, 0))
    nonnull = rows.num_rows - rows["product_id"].null_count
    assert found.unexpected_percent == pytest.approx(found.unexpected_count / nonnull * 100)
    if faulty:
        unknown = {frozenset({("event_id", e)}) for e in rows["event_id"][:7].to_pylist()}
        assert len(found.failing_ids) == SAMPLE_ROWS and ids(found) <= unknown


def unknown_products(rows: pa.Table) -> pa.Table:
    """`rows` whose first seven products were never viewed and next two are missing."""
    products = rows["product_id"].to_pylist()
    products[:9] = [*range(-7, 0), None, None]
    field = rows.schema.field("product_id")
    return rows.set_column(
        rows.schema.get_field_index("product_id"), field, pa.array(products, field.type)
    )


def test_a_large_value_set_is_judged_as_a_query_with_the_in_set_outcome_on_spark(
    spark: SparkSession, settings: Settings
) -> None:
    """An in-set expectation over more than LARGE_VALUE_SET values runs on Spark as a
    query of the rows outside the set; one with a row condition or `mostly` stays GX's
    own. Either way the outcome is the pandas engine's: count, percent of non-null values,
    failing ids, on an integer column and with nulls."""
    assert_large_sets_judged_as_pandas(spark_module, spark.createDataFrame, DAY, settings)
    assert not [table for table in spark.catalog.listTables() if table.name.startswith("_gx_")]


@pytest.mark.parametrize("table", [GOLD_SENSOR_HOURLY, GOLD_PRODUCT_DAILY], ids=lambda t: t.key)
def test_gold_checks_on_spark_equal_the_pandas_engine(
    spark: SparkSession,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
    table: TableSpec,
) -> None:
    clean = gold_rows(table, silver)
    assert all(
        o.passed for o in assert_same_outcomes(table, clean, spark.createDataFrame, DAY, settings)
    )
    faulty = assert_same_outcomes(
        table, every_rule_broken(table, clean, settings, DAY), spark.createDataFrame, DAY, settings
    )
    assert {o.check.name for o in faulty if not o.passed} == {
        check.name for check in suite_for(table).checks
    } - {"schema_matches", "volume_as_usual"}


def test_bronze_freshness_on_spark_compares_utc_instants(
    spark: SparkSession, settings: Settings
) -> None:
    """Spark hands GX a column's maximum as a naive local datetime; the check's bound is
    an aware UTC instant. Both engines judge the same instants and report the same one."""
    spec = CATALOG.bronze_for_topic("sensor_readings")
    fresh_now = fresh_bronze()  # its bound moves with the clock: fixed once for both engines
    check = Check(fresh_now.name, "", fresh_now.expectations_for(settings, DAY))
    suite = Suite(spec, (check,), ("event_id",))
    now = datetime.now(UTC)
    for landed, fresh in ((now - timedelta(minutes=5), True), (now - timedelta(hours=3), False)):
        rows = pa.Table.from_pylist(
            [reading("r", when=landed - timedelta(seconds=1))], schema=spec.schema
        )
        (outcome,) = assert_same_outcomes(spec, rows, spark.createDataFrame, DAY, settings, suite)
        assert outcome.passed is fresh
        observed = outcome.expectations[1].observed
        assert observed == rows["_ingested_at"][0].as_py() and observed.tzinfo is not None


def test_an_empty_day_counts_no_unexpected_rows_on_spark(
    spark: SparkSession, settings: Settings
) -> None:
    outcomes = assert_same_outcomes(
        USER_RECOMMENDATIONS,
        USER_RECOMMENDATIONS.schema.empty_table(),
        spark.createDataFrame,
        DAY,
        settings,
    )
    assert all(o.passed for o in outcomes)


def test_a_failing_row_without_an_id_is_sampled_on_spark(
    spark: SparkSession, settings: Settings, silver: dict[tuple[str, bool], pa.Table]
) -> None:
    rows = silver["transactions", False].slice(0, 50)
    ids = rows["event_id"].to_pylist()
    rows = rows.set_column(0, rows.schema.field(0), pa.array([None, *ids[1:]], pa.string()))
    suite = Suite(SILVER_TRANSACTIONS, (present("event_id", "amount"),), ("event_id",))
    (outcome,) = assert_same_outcomes(
        SILVER_TRANSACTIONS, rows, spark.createDataFrame, DAY, settings, suite
    )
    assert outcome.expectations[0].failing_ids == [{"event_id": None}]
    assert outcome.sample is not None and outcome.sample["event_id"].to_pylist() == [None]


def test_the_gate_blocks_a_spark_frame_that_fails_a_blocking_check(
    spark: SparkSession, settings: Settings
) -> None:
    readings = silver_day(bronze_rows("iot")["sensor_readings"], "sensor_readings")
    rows = sensor_hourly(readings)
    bad = broken(rows, suite_for(GOLD_SENSOR_HOURLY).check("readings_positive").expectations[0])
    gate = QualityGate(settings)
    gate(GOLD_SENSOR_HOURLY, DAY, spark.createDataFrame(rows))
    with pytest.raises(BlockedWrite) as blocked:
        gate(GOLD_SENSOR_HOURLY, DAY, spark.createDataFrame(bad))
    assert blocked.value.failed == ["readings_positive"]
    outcomes = gate.outcomes(GOLD_SENSOR_HOURLY)
    assert [o.passed for o in outcomes if o.check.name == "readings_positive"] == [True, False]
    (failed,) = [o for o in outcomes if not o.passed]
    assert failed.sample is not None  # rows of the failing sensor, taken by Spark
    assert set(failed.sample["sensor_id"].to_pylist()) == {bad["sensor_id"][0].as_py()}
    assert failed.expectations[0].failing_ids == [
        {"sensor_id": bad["sensor_id"][0].as_py(), "hour": bad["hour"][0].as_py()}
    ]


def test_the_quality_package_imports_without_pyspark() -> None:
    probe = (
        "import sys, quality.gate, quality.validate, quality.spark; "
        "sys.exit('pyspark' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).parents[1])


def test_a_date_is_not_mistaken_for_a_spark_frame() -> None:
    from quality.spark import is_spark_frame

    assert not is_spark_frame(pa.table({"a": [1]})) and not is_spark_frame(date(2026, 1, 1))
