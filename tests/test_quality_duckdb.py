"""Quality checks on DuckDB: where a build stages the day in DuckDB the gate gets the
staged table (`duck.Staged`), and the same suites, run by GX's SQL execution engine over
the builder's DuckDB database, give the outcomes the pandas engine gives on the same rows
as Arrow: the same verdicts, observed values, unexpected counts and failing ids.
`tests/test_quality.py` proves the checks themselves catch what they should.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.catalog import (
    CATALOG,
    GOLD_AB_TEST_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_TRENDING,
    GOLD_SESSION_FUNNEL_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    GOLD_USER_FEATURES,
    SILVER_TRANSACTIONS,
    USER_RECOMMENDATIONS,
    TableSpec,
)
from lakehouse.settings import Settings
from lakehouse.transforms import ecommerce
from lakehouse.transforms.duck import Staged
from quality import relation
from quality.checks import Check, Expect, Suite
from quality.gate import BlockedWrite, QualityGate
from quality.suites import fresh_bronze, present, suite_for, unique
from quality.validate import validate
from quality.value_sets import LARGE_VALUE_SET, in_large_set
from streaming.generators import Faults
from tests.support.broken_rows import broken, every_rule_broken
from tests.support.fraud_audit import decisions_bronze
from tests.support.iot_alerts import alerts_bronze
from tests.support.large_value_set import (
    KNOWN,
    MOSTLY,
    PLAIN,
    WHERE,
    assert_large_sets_judged_as_pandas,
)
from tests.support.quality_outcomes import assert_same_outcomes
from tests.test_quality import DAY, bronze_rows, land_bronze, silver_day
from tests.test_silver import reading

ALL_FAULTS = Faults(nulls=0.2, out_of_range=0.05, duplicates=0.05, schema_drift=0.3)
SILVER_TOPICS = [
    "clickstream",
    "cart_events",
    "search",
    "purchases",
    "transactions",
    "fraud_decisions",
    "sensor_readings",
    "iot_alerts",
]
GOLD_ECOMMERCE = [
    GOLD_USER_ACTIVITY_DAILY,
    GOLD_USER_FEATURES,
    GOLD_PRODUCT_DAILY,
    GOLD_SESSION_FUNNEL_DAILY,
    GOLD_PRODUCT_TRENDING,
    GOLD_AB_TEST_DAILY,
]


@pytest.fixture(scope="module")
def bronze() -> dict[tuple[str, bool], pa.Table]:
    """A bronze day of every topic, clean and with every generator fault (the services'
    topics, decisions and alerts, only clean: their faults come from `broken`)."""
    days: dict[tuple[str, bool], pa.Table] = {}
    for domain in ("ecommerce", "fraud", "iot"):
        for faulty in (False, True):
            for topic, rows in bronze_rows(domain, ALL_FAULTS if faulty else None).items():
                days[topic, faulty] = rows
    days["fraud_decisions", False] = decisions_bronze(days["transactions", False])
    days["iot_alerts", False] = alerts_bronze(days["sensor_readings", False])
    return days


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, bronze: dict[tuple[str, bool], pa.Table]
) -> Settings:
    """A lake whose bronze holds the clean day (products_known reads bronze clickstream);
    no silver or gold history, so the volume checks ask for one row."""
    root = tmp_path_factory.mktemp("quality-duckdb")
    settings = Settings(lakehouse_root=str(root / "lake"), lakehouse_home=root / "home")
    land_bronze(settings, {topic: rows for (topic, faulty), rows in bronze.items() if not faulty})
    return settings


@pytest.fixture(scope="module")
def silver(bronze: dict[tuple[str, bool], pa.Table]) -> dict[tuple[str, bool], pa.Table]:
    return {(topic, faulty): silver_day(rows, topic) for (topic, faulty), rows in bronze.items()}


@pytest.fixture(scope="module")
def connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """A builder's connection as the out-of-core builds open it: little memory, a spill
    folder, so a day larger than the limit goes to disk."""
    spill = tmp_path_factory.mktemp("spill")
    with duckdb.connect(config={"memory_limit": "64MB", "temp_directory": str(spill)}) as con:
        yield con


def staged(connection: duckdb.DuckDBPyConnection, rows: pa.Table) -> Staged:
    """`rows` staged in a table of `connection`, as the builds stage a day: what the
    gate gets."""
    connection.register("incoming", rows)
    connection.execute("CREATE OR REPLACE TABLE staged AS SELECT * FROM incoming")
    connection.unregister("incoming")
    return Staged(connection, "staged")


def gold_rows(table: TableSpec, silver: dict[tuple[str, bool], pa.Table]) -> pa.Table:
    """A clean day of an e-commerce gold table, from the clean silver days."""
    click, cart, search, buys = (
        silver[topic, False] for topic in ("clickstream", "cart_events", "search", "purchases")
    )
    if table is GOLD_USER_ACTIVITY_DAILY:
        return ecommerce.user_activity_daily(click, cart, search, buys)
    if table is GOLD_USER_FEATURES:
        activity = ecommerce.user_activity_daily(click, cart, search, buys)
        return ecommerce.user_features(activity, DAY)
    if table is GOLD_PRODUCT_DAILY:
        return ecommerce.product_daily(click, cart, buys)
    if table is GOLD_SESSION_FUNNEL_DAILY:
        return ecommerce.session_funnel_daily(click, cart, buys)
    if table is GOLD_PRODUCT_TRENDING:
        return ecommerce.product_trending(ecommerce.product_daily(click, cart, buys), DAY)
    return ecommerce.ab_test_daily(click, cart, buys)


@pytest.mark.parametrize("topic", SILVER_TOPICS)
def test_silver_checks_on_duckdb_equal_the_pandas_engine_on_clean_rows(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
    topic: str,
) -> None:
    spec = CATALOG.silver_for_topic(topic)
    outcomes = assert_same_outcomes(
        spec, silver[topic, False], partial(staged, connection), DAY, settings
    )
    assert [o.check.name for o in outcomes if not o.passed] == []


@pytest.mark.parametrize("topic", SILVER_TOPICS)
def test_silver_checks_on_duckdb_equal_the_pandas_engine_on_faulty_rows(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
    topic: str,
) -> None:
    spec = CATALOG.silver_for_topic(topic)
    if (topic, True) in silver:  # the generators' faults
        outcomes = assert_same_outcomes(
            spec, silver[topic, True], partial(staged, connection), DAY, settings
        )
        assert "natural_key_unique" in {o.check.name for o in outcomes if not o.passed}
    # and every value rule broken once
    faulty = every_rule_broken(spec, silver[topic, False], settings, DAY)
    outcomes = assert_same_outcomes(spec, faulty, partial(staged, connection), DAY, settings)
    assert "categories_known" not in {o.check.name for o in outcomes if o.passed}
    assert any(not o.passed for o in outcomes)


@pytest.mark.parametrize("table", GOLD_ECOMMERCE, ids=lambda t: t.key)
def test_gold_ecommerce_checks_on_duckdb_equal_the_pandas_engine(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
    table: TableSpec,
) -> None:
    clean = gold_rows(table, silver)
    assert clean.num_rows > 0
    assert all(
        o.passed
        for o in assert_same_outcomes(table, clean, partial(staged, connection), DAY, settings)
    )
    faulty = every_rule_broken(table, clean, settings, DAY)
    outcomes = assert_same_outcomes(table, faulty, partial(staged, connection), DAY, settings)
    assert {o.check.name for o in outcomes if not o.passed} == {
        check.name for check in suite_for(table).checks
    } - {"schema_matches", "volume_as_usual"}


def test_a_missing_column_fails_the_schema_check_on_duckdb(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
) -> None:
    spec = CATALOG.silver_for_topic("transactions")
    rows = silver["transactions", False]
    drifted = rows.drop_columns([rows.schema.names[-1]])
    suite = Suite(spec, (suite_for(spec).check("schema_matches"),), ("event_id",))
    (outcome,) = assert_same_outcomes(
        spec, drifted, partial(staged, connection), DAY, settings, suite
    )
    assert not outcome.passed


def test_bronze_freshness_on_duckdb_compares_utc_instants(
    connection: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    spec = CATALOG.bronze_for_topic("sensor_readings")
    fresh_now = fresh_bronze()  # its bound moves with the clock: fixed once for both engines
    check = Check(fresh_now.name, "", fresh_now.expectations_for(settings, DAY))
    suite = Suite(spec, (check,), ("event_id",))
    now = datetime.now(UTC)
    for landed, fresh in ((now - timedelta(minutes=5), True), (now - timedelta(hours=3), False)):
        rows = pa.Table.from_pylist(
            [reading("r", when=landed - timedelta(seconds=1))], schema=spec.schema
        )
        (outcome,) = assert_same_outcomes(
            spec, rows, partial(staged, connection), DAY, settings, suite
        )
        assert outcome.passed is fresh
        observed = outcome.expectations[1].observed
        assert observed == rows["_ingested_at"][0].as_py() and observed.tzinfo is not None


def test_an_empty_day_counts_no_unexpected_rows_on_duckdb(
    connection: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    outcomes = assert_same_outcomes(
        USER_RECOMMENDATIONS,
        USER_RECOMMENDATIONS.schema.empty_table(),
        partial(staged, connection),
        DAY,
        settings,
    )
    assert all(o.passed for o in outcomes)


def test_a_failing_row_without_an_id_is_sampled_on_duckdb(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
) -> None:
    rows = silver["transactions", False].slice(0, 50)
    event_ids = rows["event_id"].to_pylist()
    rows = rows.set_column(0, rows.schema.field(0), pa.array([None, *event_ids[1:]], pa.string()))
    suite = Suite(SILVER_TRANSACTIONS, (present("event_id", "amount"),), ("event_id",))
    (outcome,) = assert_same_outcomes(
        SILVER_TRANSACTIONS, rows, partial(staged, connection), DAY, settings, suite
    )
    assert outcome.expectations[0].failing_ids == [{"event_id": None}]
    assert outcome.sample is not None and outcome.sample["event_id"].to_pylist() == [None]


def test_a_day_larger_than_the_memory_limit_spills_and_validates(
    tmp_path: Path, settings: Settings, silver: dict[tuple[str, bool], pa.Table]
) -> None:
    """The builder's connection, which GX's queries run on too, holds less than the day
    (about 100 MB as Arrow): it spills to its folder, and the outcomes are those of the
    day in memory."""
    spec = CATALOG.silver_for_topic("clickstream")
    day = silver["clickstream", False]

    def copy(number: int) -> pa.Table:  # new events and sessions, the same values
        rows = day
        for name in ("event_id", "session_id"):
            suffixed = pc.binary_join_element_wise(rows[name], pa.scalar(f"-{number}"), "")
            rows = rows.set_column(rows.schema.get_field_index(name), name, suffixed)
        return rows

    many = pa.concat_tables([copy(number) for number in range(20)])
    many = every_rule_broken(spec, many, settings, DAY)
    bounds = {"memory_limit": "64MB", "temp_directory": str(tmp_path)}
    with duckdb.connect(config=bounds) as builder:
        outcomes = assert_same_outcomes(spec, many, partial(staged, builder), DAY, settings)
    assert {o.check.name for o in outcomes if not o.passed} >= {"price_in_range"}


def test_the_gate_blocks_a_staged_day_that_fails_a_blocking_check(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    silver: dict[tuple[str, bool], pa.Table],
) -> None:
    rows = gold_rows(GOLD_PRODUCT_DAILY, silver)
    check = suite_for(GOLD_PRODUCT_DAILY).check("conversion_is_a_share")
    bad = broken(rows, check.expectations[0])
    gate = QualityGate(settings)
    gate(GOLD_PRODUCT_DAILY, DAY, staged(connection, rows))
    with pytest.raises(BlockedWrite) as blocked:
        gate(GOLD_PRODUCT_DAILY, DAY, staged(connection, bad))
    assert blocked.value.failed == ["conversion_is_a_share"]
    (failed,) = [o for o in gate.outcomes(GOLD_PRODUCT_DAILY) if not o.passed]
    assert failed.sample is not None
    assert failed.sample["product_id"].to_pylist() == [bad["product_id"][0].as_py()]


def test_a_table_is_not_mistaken_for_a_staged_day(connection: duckdb.DuckDBPyConnection) -> None:
    from quality.relation import is_staged

    assert is_staged(Staged(connection, "staged"))
    assert not is_staged(pa.table({"a": [1]})) and not is_staged(connection.sql("SELECT 1"))


@pytest.mark.parametrize(
    "key_hash_bytes", [0, 1 << 30], ids=["hashes-counted-by-duckdb", "hashes-counted-by-polars"]
)
def test_uniqueness_counts_every_row_of_a_repeated_key_as_pandas_does(
    connection: duckdb.DuckDBPyConnection, settings: Settings, key_hash_bytes: int
) -> None:
    """DuckDB counts a uniqueness expectation's failing rows by one aggregate (over the
    keys' hashes first, whose repeats Polars looks for where they fit the budget, DuckDB
    past it): a column's nulls are not judged, a compound key's nulls are alike and a key
    of nulls only is not judged, as GX's pandas engine has it."""
    settings = settings.model_copy(update={"quality_key_hash_bytes": key_hash_bytes})
    rows = pa.table(
        {
            "event_id": ["a", "b", "b", None, None, "c"],
            "user_id": [1, 1, 1, None, None, 2],
            "amount": [1.0, 1.0, 1.0, None, None, 3.0],
        }
    )
    suite = Suite(
        SILVER_TRANSACTIONS,
        (unique("event_id", name="id"), unique("user_id", "amount", name="pair")),
        ("event_id",),
    )
    by_id, by_pair = assert_same_outcomes(
        SILVER_TRANSACTIONS, rows, partial(staged, connection), DAY, settings, suite
    )
    assert (by_id.expectations[0].unexpected_count, by_pair.expectations[0].unexpected_count) == (
        2,
        3,
    )


@pytest.mark.parametrize(
    "key_hash_bytes", [0, 1 << 30], ids=["hashes-counted-by-duckdb", "hashes-counted-by-polars"]
)
@pytest.mark.parametrize(
    ("user_ids", "amounts"),
    [([1, 1, None], [1.0, 2.0, None]), ([None, None, None], [None, None, None])],
    ids=["a-key-of-nulls-only", "no-key-judged"],
)
def test_a_unique_compound_key_reports_its_percent_of_judged_rows_as_pandas_does(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    key_hash_bytes: int,
    user_ids: list[int | None],
    amounts: list[float | None],
) -> None:
    """A compound key's judged rows, the percent's denominator, come on DuckDB from the
    scan that hashes the key: 0% of the rows holding a value in a key column, and no
    percent (None) where no row does, as GX's pandas engine has it."""
    settings = settings.model_copy(update={"quality_key_hash_bytes": key_hash_bytes})
    rows = pa.table({"event_id": ["a", "b", "c"], "user_id": user_ids, "amount": amounts})
    suite = Suite(SILVER_TRANSACTIONS, (unique("user_id", "amount", name="pair"),), ("event_id",))
    [by_pair] = assert_same_outcomes(
        SILVER_TRANSACTIONS, rows, partial(staged, connection), DAY, settings, suite
    )
    [outcome] = by_pair.expectations
    assert outcome.success and outcome.unexpected_count == 0
    assert outcome.unexpected_percent == (0.0 if user_ids[0] is not None else None)


def test_a_passing_expectation_with_failing_rows_still_names_them(
    connection: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    """Every expectation is counted first without its failing values, and those that found
    failing rows are asked again for them: one that passes by its `mostly` with a failing
    row still names it, on DuckDB as on pandas."""
    rows = pa.table({"event_id": ["a", "b", "c", "d"], "user_id": [1, None, 3, 4]})
    suite = Suite(
        SILVER_TRANSACTIONS, (present("user_id", name="mostly", mostly=0.5),), ("event_id",)
    )
    [mostly] = assert_same_outcomes(
        SILVER_TRANSACTIONS, rows, partial(staged, connection), DAY, settings, suite
    )
    [outcome] = mostly.expectations
    assert outcome.success and outcome.unexpected_count == 1
    assert outcome.failing_ids == [{"event_id": "b"}]


def test_a_check_duckdb_could_not_compute_is_an_error_not_a_failed_check(
    tmp_path: Path, settings: Settings, silver: dict[tuple[str, bool], pa.Table]
) -> None:
    """GX reports a metric's error (here DuckDB out of memory) as the expectation's
    `success: false` with no counts; the gate must not refuse a good day for it."""
    spec = CATALOG.silver_for_topic("clickstream")
    with duckdb.connect(config={"temp_directory": str(tmp_path)}) as builder:
        day = staged(builder, silver["clickstream", False])
        builder.execute("SET memory_limit = '1MB'")
        with pytest.raises(RuntimeError, match=r"could not run: .*Out of Memory"):
            validate(suite_for(spec), day, DAY, settings)


def test_a_large_value_set_is_judged_as_a_query_with_the_in_set_outcome(
    connection: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    """On DuckDB an in-set expectation over more than LARGE_VALUE_SET values runs as a
    query of the rows outside the set (GX re-serialised a 5,000-value set for seconds);
    one with a row condition or `mostly` stays GX's own. Either way the outcome is the
    pandas engine's: count, percent of non-null values, failing ids."""
    small = Expect(PLAIN.type, {"column": "user_id", "value_set": KNOWN[:LARGE_VALUE_SET]})
    assert in_large_set(PLAIN) == KNOWN
    assert in_large_set(WHERE) is in_large_set(MOSTLY) is in_large_set(small) is None
    assert_large_sets_judged_as_pandas(relation, partial(staged, connection), DAY, settings)
