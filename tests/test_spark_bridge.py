"""Spark reads and writes Delta tables through the delta-rs bridge (no delta-spark jars):
the same rows and types as delta-rs, the log's figures right, and a replaced day replaced
exactly, however often; an empty day left alone where the day holds no rows, as locally."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from assets.resources import spark_resource
from lakehouse.catalog import SILVER_CLICKSTREAM, TableSpec, table_uri
from lakehouse.delta import partition_rows, replace_partition, snapshot_stats
from lakehouse.query import run_query
from lakehouse.settings import Settings
from lakehouse.spark.delta_bridge import STAGING_FOLDER, read_table
from lakehouse.spark.delta_bridge import replace_partition as spark_replace
from lakehouse.spark.session import delta_jars_available, spark_config
from lakehouse.transforms import tables_spark

SPEC = SILVER_CLICKSTREAM
DAYS = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]


def clicks(day: date, count: int, prefix: str = "e") -> pa.Table:
    """`count` clickstream rows of one day, every column filled (nulls in `referrer`)."""
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    columns = {
        "event_id": [f"{prefix}-{day}-{n}" for n in range(count)],
        "event_time": [start + timedelta(seconds=n, microseconds=123_457) for n in range(count)],
        "user_id": [n % 5 for n in range(count)],
        "session_id": [f"s{n % 3}" for n in range(count)],
        "event_type": ["view"] * count,
        "page": ["/p"] * count,
        "product_id": [100 + n for n in range(count)],
        "category": ["shoes"] * count,
        "price": [9.5 + n for n in range(count)],
        "device": ["web"] * count,
        "referrer": [None if n % 2 else "ads" for n in range(count)],
        "experiment_id": ["exp"] * count,
        "variant": ["a"] * count,
        "_ingested_at": [start] * count,
        "event_date": [day] * count,
    }
    return pa.Table.from_pydict(columns, schema=SPEC.schema)


def as_spark(spark, rows: pa.Table):
    """An Arrow table as a Spark DataFrame (Spark 4 takes Arrow directly, no pandas)."""
    return spark.createDataFrame(rows)


def where(settings: Settings, condition: str) -> pa.Table:
    """The silver clickstream rows matching `condition`, through DuckDB over delta-rs's
    snapshot: what every other reader of the lake sees."""
    return run_query(settings, f"SELECT * FROM silver.clickstream WHERE {condition}")


def seeded(make_settings: Callable[..., Settings]) -> Settings:
    """A lake whose silver clickstream holds 3, 4 and 5 rows on three days (delta-rs)."""
    settings = make_settings()
    for count, day in enumerate(DAYS, start=3):
        replace_partition(SPEC, settings, clicks(day, count), f"event_date = '{day}'")
    return settings


def test_spark_reads_only_the_requested_days_with_their_partition_values_and_types(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)

    frame = read_table(spark, SPEC, settings, days=DAYS[1:])

    assert frame.columns == SPEC.schema.names
    assert dict(frame.dtypes)["event_date"] == "date"
    assert dict(frame.dtypes)["event_time"] == "timestamp"
    got = frame.toArrow().cast(SPEC.schema)
    expected = DeltaTable(table_uri(SPEC, settings)).to_pyarrow_table(
        filters=[("event_date", "in", DAYS[1:])]
    )
    assert got.sort_by("event_id").equals(expected.select(SPEC.schema.names).sort_by("event_id"))


def test_spark_reads_an_absent_table_as_an_empty_typed_frame(
    spark, make_settings: Callable[..., Settings]
) -> None:
    frame = read_table(spark, SPEC, make_settings(), columns=["event_id", "event_date"])

    assert frame.dtypes == [("event_id", "string"), ("event_date", "date")]
    assert frame.count() == 0


def test_a_day_written_by_spark_reads_back_the_same_and_the_log_counts_it(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)
    new_day = clicks(DAYS[1], 7, prefix="spark")

    spark_replace(as_spark(spark, new_day), SPEC, settings, [DAYS[1]])

    back = where(settings, "event_date = DATE '2026-11-21'")
    assert back.select(SPEC.schema.names).sort_by("event_id").equals(new_day)
    assert partition_rows(SPEC, settings) == {DAYS[0]: 3, DAYS[1]: 7, DAYS[2]: 5}
    assert not delta_jars_available(spark)


def test_the_bridge_writes_statistics_delta_rs_can_skip_files_with(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)
    frame = read_table(spark, SPEC, settings, days=[DAYS[0]])

    spark_replace(frame.coalesce(1), SPEC, settings, [DAYS[0]])

    table = DeltaTable(table_uri(SPEC, settings))
    actions = pa.table(table.get_add_actions(flatten=True))
    ours = actions.filter(pa.compute.equal(actions["partition.event_date"], DAYS[0]))
    assert ours.num_rows == 1
    assert ours["num_records"].to_pylist() == [3]
    assert ours["min.event_id"].to_pylist() == [f"e-{DAYS[0]}-0"]
    assert ours["max.product_id"].to_pylist() == [102]
    assert ours["null_count.referrer"].to_pylist() == [1]
    # The maximum is rounded up to the millisecond, never below the true value.
    assert ours["max.event_time"].to_pylist()[0] >= clicks(DAYS[0], 3)["event_time"][-1].as_py()
    assert snapshot_stats(SPEC, table).rows == 12


def test_rerunning_a_spark_day_replaces_it_exactly_and_leaves_the_other_days(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)
    before = where(settings, "event_date <> DATE '2026-11-22'")
    frame = as_spark(spark, clicks(DAYS[2], 6, prefix="rerun")).repartition(3)

    first = spark_replace(frame, SPEC, settings, [DAYS[2]])
    second = spark_replace(frame, SPEC, settings, [DAYS[2]])

    assert second == first + 1
    ids = run_query(
        settings,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM silver.clickstream "
        "WHERE event_date = DATE '2026-11-22'",
    ).to_pylist()
    assert ids == [{"n": 6, "ids": 6}]
    after = where(settings, "event_date <> DATE '2026-11-22'")
    assert after.sort_by("event_id").equals(before.sort_by("event_id"))
    assert partition_rows(SPEC, settings)[DAYS[2]] == 6


def test_a_day_replaced_with_no_rows_is_emptied_as_the_local_overwrite_does(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)
    empty = read_table(spark, SPEC, settings, days=[])

    spark_replace(empty, SPEC, settings, [DAYS[0]])

    assert partition_rows(SPEC, settings) == {DAYS[1]: 4, DAYS[2]: 5}


class Guard:
    """A guard that records the (day, row count) of each day it is asked about."""

    def __init__(self) -> None:
        self.asked: list[tuple[date, int]] = []

    def __call__(self, spec: TableSpec, day: date, rows) -> None:
        self.asked.append((day, rows.count()))


def test_an_empty_day_on_spark_is_left_alone_and_an_absent_table_still_created(
    spark, make_settings: Callable[..., Settings]
) -> None:
    """As `tables.replace_day`: no rows for a day that holds none, no check and no commit;
    the table, absent before, exists (empty) after."""
    settings, guard = make_settings(), Guard()
    empty = as_spark(spark, SPEC.schema.empty_table())

    written = tables_spark.replace_day(settings, SPEC, empty, DAYS[0], guard)
    tables_spark.replace_day(settings, SPEC, empty, DAYS[0], guard)

    table = DeltaTable(table_uri(SPEC, settings))
    assert (table.version(), table.get_add_actions().num_rows) == (0, 0)
    assert (guard.asked, written.count()) == ([], 0)


def test_an_empty_day_on_spark_still_empties_a_day_that_held_rows(
    spark, make_settings: Callable[..., Settings]
) -> None:
    """A day that held rows is checked and replaced by no rows (one commit); a day beside
    it that holds none is left alone."""
    settings, guard = seeded(make_settings), Guard()
    version = DeltaTable(table_uri(SPEC, settings)).version()
    empty = as_spark(spark, SPEC.schema.empty_table())

    tables_spark.replace_day(settings, SPEC, empty, DAYS[0], guard)
    tables_spark.replace_day(settings, SPEC, empty, DAYS[2] + timedelta(days=1), guard)

    assert DeltaTable(table_uri(SPEC, settings)).version() == version + 1
    assert guard.asked == [(DAYS[0], 0)]
    assert partition_rows(SPEC, settings) == {DAYS[1]: 4, DAYS[2]: 5}


def test_rows_outside_the_replaced_days_commit_nothing_and_leave_no_files(
    spark, make_settings: Callable[..., Settings]
) -> None:
    settings = seeded(make_settings)
    version = DeltaTable(table_uri(SPEC, settings)).version()
    files_before = sorted(p.name for p in (settings.home.parent / "lake").rglob("*.parquet"))
    frame = as_spark(spark, clicks(DAYS[0], 2))

    with pytest.raises(ValueError, match="outside the replaced days"):
        spark_replace(frame, SPEC, settings, [DAYS[1]])

    assert DeltaTable(table_uri(SPEC, settings)).version() == version
    lake = settings.home.parent / "lake"
    assert sorted(p.name for p in lake.rglob("*.parquet")) == files_before
    assert not any((lake / "silver" / "clickstream" / STAGING_FOLDER).iterdir())


def test_spark_config_carries_the_lake_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        lakehouse_root="s3://bucket/lake",
        aws_endpoint_url="http://127.0.0.1:9000",
        aws_access_key_id="key",
        aws_secret_access_key="secret",
        aws_allow_http=True,
        spark_extra_jars=["/jars/hadoop-aws.jar", "/jars/delta-spark.jar"],
        spark_conf={"spark.driver.memory": "8g"},
    )

    config = spark_config(settings)

    assert config["spark.master"] == "local[2]"
    assert config["spark.driver.memory"] == "8g"  # SPARK_CONF overrides
    assert config["spark.sql.session.timeZone"] == "UTC"
    assert config["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert config["spark.hadoop.fs.s3a.access.key"] == "key"
    assert config["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert config["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert config["spark.jars"] == "/jars/hadoop-aws.jar,/jars/delta-spark.jar"
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in spark_config(make_settings()))


def test_the_dagster_spark_resource_hands_assets_the_configured_session(
    spark, make_settings: Callable[..., Settings]
) -> None:
    @dg.asset
    def spark_answer(pyspark: dg.ResourceParam) -> tuple[str, str, int]:
        conf = pyspark.spark_session.conf
        rows = pyspark.spark_session.range(5).count()
        return conf.get("spark.sql.session.timeZone"), conf.get("spark.lakehouse.probe"), rows

    settings = make_settings(spark_conf={"spark.lakehouse.probe": "from-settings"})
    result = dg.materialize([spark_answer], resources={"pyspark": spark_resource(settings)})

    assert result.output_for_node("spark_answer") == ("UTC", "from-settings", 5)
