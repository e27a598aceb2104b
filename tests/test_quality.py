"""Data quality: every check passes on clean generated data, each injected fault is caught
by the check named for it, and a blocking failure stops the data in a real Dagster run.

Bronze rows here come from the generators through the ingest sidecar's own decoder (the
Kafka leg is covered elsewhere), so the faults reach silver exactly as they would in
production: past ingest's validation and past silver's row rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from assets.tables import MAINTENANCE_LAYER, asset_key
from lakehouse.catalog import (
    CATALOG,
    GOLD_DEVICE_HEALTH_DAILY,
    GOLD_SENSOR_HOURLY,
    SILVER_SENSOR_READINGS,
    table_uri,
)
from lakehouse.delta import ensure_table
from lakehouse.schemas import TIMESTAMP
from lakehouse.settings import Settings, get_settings
from lakehouse.transforms.silver import to_silver
from lakehouse.transforms.tables import read_days
from orchestration.definitions import defs
from quality.checks import Suite
from quality.suites import SUITES, suite_for
from quality.validate import validate
from streaming.generators import Faults, make_generator
from streaming.ingest.decode import BatchDecoder
from tests.support.broken_rows import broken
from tests.support.fraud_audit import decisions_bronze
from tests.support.importing import engine_cycles_bronze
from tests.support.iot_alerts import alerts_bronze
from tests.test_silver import land, reading

DAY = date(2026, 11, 22)
START = datetime(2026, 11, 22, tzinfo=UTC)
EVENTS = {"ecommerce": 20_000, "fraud": 4_000, "iot": 4_000}
DOMAIN_OF = {topic.name: topic.domain.value for topic in CATALOG.topics.values()}

# The check each fault must trip, per topic (the range check is named per table).
RANGE_CHECK = {
    "clickstream": "price_in_range",
    "cart_events": "quantity_in_range",
    "search": "results_count_in_range",
    "purchases": "amounts_in_range",
    "transactions": "amount_in_range",
    "fraud_decisions": "values_in_range",
    "sensor_readings": "value_physically_possible",
}


def bronze_rows(
    domain: str, faults: Faults | None = None, events: int | None = None
) -> dict[str, pa.Table]:
    """A day of one domain's traffic as bronze rows, decoded by the ingest decoder
    (`events` generated, EVENTS[domain] by default)."""
    generator = make_generator(domain, seed=5, start=START, faults=faults)
    parts: dict[str, list[pa.Table]] = {}
    offsets: dict[str, int] = {}
    for batch in generator.batches(events or EVENTS[domain], 5_000):
        event = CATALOG.topic(batch.topic).event
        decoded = BatchDecoder(event, 1 << 20).decode(batch.values)
        assert not decoded.rejects, "faults must get past ingest"
        table = decoded.table
        first = offsets.get(batch.topic, 0)
        offsets[batch.topic] = first + len(batch.values)
        table = (
            table.append_column("_kafka_partition", pa.array(np.zeros(table.num_rows, np.int32)))
            .append_column("_kafka_offset", pa.array(first + decoded.indices.astype(np.int64)))
            .append_column("_ingested_at", pa.repeat(pa.scalar(START, TIMESTAMP), table.num_rows))
            .append_column("event_date", pc.cast(table["event_time"], pa.date32()))
        )
        parts.setdefault(batch.topic, []).append(table)
    return {
        topic: pa.concat_tables(tables).cast(CATALOG.bronze_for_topic(topic).schema)
        for topic, tables in parts.items()
    }


def land_bronze(settings: Settings, tables: dict[str, pa.Table]) -> None:
    for topic, rows in tables.items():
        spec = CATALOG.bronze_for_topic(topic)
        write_deltalake(
            ensure_table(spec, settings), rows, mode="append", partition_by=["event_date"]
        )


def silver_day(bronze: pa.Table, topic: str) -> pa.Table:
    return to_silver(bronze, topic).rows.filter(pc.field("event_date") == DAY)


def failed_checks(settings: Settings, topic: str, rows: pa.Table) -> set[str]:
    return {
        o.check.name
        for o in validate(suite_for(CATALOG.silver_for_topic(topic)), rows, DAY, settings)
        if not o.passed
    }


@pytest.fixture(scope="module")
def clean() -> dict[str, pa.Table]:
    """Clean bronze rows of every topic; the decision service's, one decision per
    generated transaction; the alert processor's, one alert per labelled spike; two real
    C-MAPSS engines' first day of cycles, moved to the day."""
    rows = {topic: rows for domain in EVENTS for topic, rows in bronze_rows(domain).items()}
    return {
        **rows,
        "fraud_decisions": decisions_bronze(rows["transactions"]),
        "iot_alerts": alerts_bronze(rows["sensor_readings"]),
        "engine_cycles": engine_cycles_bronze(DAY),
    }


@pytest.fixture
def lake(make_settings: Callable[..., Settings], clean: dict[str, pa.Table]) -> Settings:
    """A lake whose bronze holds the clean day (the reference data some checks read)."""
    settings = make_settings()
    land_bronze(settings, clean)
    return settings


@pytest.mark.parametrize("topic", list(RANGE_CHECK))
def test_every_silver_check_passes_on_clean_generated_data(
    lake: Settings, clean: dict[str, pa.Table], topic: str
) -> None:
    suite = suite_for(CATALOG.silver_for_topic(topic))
    outcomes = validate(suite, silver_day(clean[topic], topic), DAY, lake)
    assert len(outcomes) == len(suite.checks)
    assert [o.check.name for o in outcomes if not o.passed] == []


FAULTS = {
    "nulls": (Faults(nulls=0.2), lambda topic: {"expected_fields_present"}),
    "out_of_range": (Faults(out_of_range=0.05), lambda topic: {RANGE_CHECK[topic]}),
    "duplicates": (Faults(duplicates=0.05), lambda topic: {"natural_key_unique"}),
    "schema_drift": (
        Faults(schema_drift=0.3),
        # Clickstream's drifted field is the price, which product views must carry.
        lambda topic: (
            {"price_on_product_views"} if topic == "clickstream" else {"expected_fields_present"}
        ),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("domain", list(EVENTS))
def test_each_injected_fault_is_caught_by_the_check_named_for_it(
    lake: Settings, domain: str, fault: str
) -> None:
    faults, expected = FAULTS[fault]
    for topic, bronze in bronze_rows(domain, faults).items():
        rows = silver_day(bronze, topic)
        failed = failed_checks(lake, topic, rows) - {"volume_as_usual"}
        assert failed == expected(topic), (topic, fault)


def test_a_failed_check_reports_the_expectation_and_failing_rows(lake: Settings) -> None:
    bronze = bronze_rows("iot", Faults(out_of_range=0.05))["sensor_readings"]
    outcomes = validate(
        suite_for(SILVER_SENSOR_READINGS), silver_day(bronze, "sensor_readings"), DAY, lake
    )
    (failed,) = [o for o in outcomes if not o.passed]
    assert failed.check.name == "value_physically_possible" and failed.check.blocking
    broken = [e for e in failed.expectations if not e.success]
    assert broken and all(e.unexpected_count > 0 for e in broken)
    assert failed.sample is not None and 0 < failed.sample.num_rows <= 5
    assert all(value > 200 for value in failed.sample["value"].to_pylist())


def test_volume_is_judged_against_the_previous_days(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    history = pa.table(
        {
            "device_id": ["d"] * 300,
            "event_date": [DAY - timedelta(days=1 + i // 100) for i in range(300)],
        }
    )
    spec = GOLD_DEVICE_HEALTH_DAILY
    write_deltalake(
        ensure_table(spec, settings),
        pa.Table.from_pylist(
            [
                {
                    **dict.fromkeys(spec.schema.names),
                    "device_id": f"d{i}",
                    "event_date": row["event_date"],
                }
                for i, row in enumerate(history.to_pylist())
            ],
            schema=spec.schema,
        ),
        mode="append",
        partition_by=["event_date"],
    )
    volume = suite_for(GOLD_DEVICE_HEALTH_DAILY).check("volume_as_usual")
    (expect,) = volume.expectations_for(settings, DAY)
    assert expect.kwargs == {"min_value": 50, "max_value": 200}  # 0.5x and 2x the median 100
    (first_day,) = volume.expectations_for(settings, DAY - timedelta(days=3))
    assert first_day.kwargs == {"min_value": 1}  # no history yet: only "not empty"


def test_purchases_of_products_nobody_viewed_break_the_reference(
    lake: Settings, clean: dict[str, pa.Table]
) -> None:
    rows = silver_day(clean["purchases"], "purchases")
    unknown = rows.set_column(
        rows.schema.get_field_index("product_id"),
        "product_id",
        pa.array([10_000_000 + i for i in range(rows.num_rows)], pa.int64()),
    )
    assert failed_checks(lake, "purchases", rows) == set()
    assert failed_checks(lake, "purchases", unknown) == {"products_known"}


def test_every_table_with_a_check_has_them_in_the_asset_graph() -> None:
    graph = defs.resolve_asset_graph()
    declared = {
        (key.asset_key.to_user_string(), key.name)
        for key in graph.asset_check_keys
        if key.asset_key.path[0] != MAINTENANCE_LAYER  # checks of the maintenance, not a table
    }
    expected = {
        (table.replace(".", "/"), check.name)
        for table, suite in SUITES.items()
        for check in suite.checks
    }
    assert declared == expected


def seed_bronze(settings: Settings, readings: pa.Table) -> None:
    land_bronze(settings, {"sensor_readings": readings})


def silver_readings(settings: Settings) -> pa.Table:
    return DeltaTable(table_uri(SILVER_SENSOR_READINGS, settings)).to_pyarrow_table()


def run_iot_day(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    keys = [asset_key(SILVER_SENSOR_READINGS), asset_key(GOLD_SENSOR_HOURLY)]
    return defs.resolve_job_def("medallion").execute_in_process(
        partition_key=DAY.isoformat(), asset_selection=keys, instance=instance, raise_on_error=False
    )


def test_a_blocking_failure_stops_the_data_in_a_real_run(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    settings = make_settings()
    activate(settings)
    clean_readings = bronze_rows("iot")["sensor_readings"]
    seed_bronze(settings, clean_readings)
    with dg.instance_for_test() as instance:
        assert run_iot_day(instance).success
        good = silver_readings(settings)

        # A broken batch lands in bronze (values x100,000): ingest and silver's rules pass it.
        broken = bronze_rows("iot", Faults(out_of_range=0.05))["sensor_readings"]
        seed_bronze(
            settings,
            broken.set_column(
                broken.schema.get_field_index("event_id"),
                "event_id",
                pc.binary_join_element_wise("late-", broken["event_id"], ""),
            ),
        )
        result = run_iot_day(instance)
        assert not result.success

        checks = {
            evaluation.check_name: evaluation
            for evaluation in (
                event.event_specific_data
                for event in result.all_events
                if event.event_type_value == "ASSET_CHECK_EVALUATION"
            )
        }
        assert not checks["value_physically_possible"].passed
        assert "Failing rows" in checks["value_physically_possible"].metadata["report"].value
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialized == set()  # neither silver nor gold downstream of it
        # The day keeps its previous, good rows: a bad batch costs freshness, not correctness.
        assert silver_readings(settings).num_rows == good.num_rows


def test_a_warning_reports_but_lets_the_data_through(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    settings = make_settings()
    activate(settings)
    seed_bronze(settings, bronze_rows("iot", Faults(nulls=0.2))["sensor_readings"])
    with dg.instance_for_test() as instance:
        result = run_iot_day(instance)
    assert result.success
    evaluations = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    (present,) = [e for e in evaluations if e.check_name == "expected_fields_present"]
    assert not present.passed and present.severity == dg.AssetCheckSeverity.WARN
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "silver/sensor_readings",
        "gold/sensor_hourly",
    }


def test_bronze_freshness_warns_when_ingest_stops(
    make_settings: Callable[..., Settings],
    activate: Callable[[Settings], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings()
    activate(settings)
    now = datetime.now(UTC)
    land(settings, reading("fresh", when=now, landed_after=0))
    land(settings, reading("earlier", when=now - timedelta(hours=3), landed_after=0, offset=1))

    def freshness() -> dict[str, bool]:
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("observe_bronze").execute_in_process(instance=instance)
        return {
            event.event_specific_data.asset_key.to_user_string(): event.event_specific_data.passed
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        }

    verdicts = freshness()
    assert verdicts["bronze/sensor_readings"] is True
    assert verdicts["bronze/clickstream"] is False  # nothing landed at all

    monkeypatch.setenv("BRONZE_FRESHNESS_MINUTES", "0")  # now everything is too old
    get_settings.cache_clear()
    assert freshness()["bronze/sensor_readings"] is False


def test_faults_are_seeded_and_their_switch_explains_mistakes() -> None:
    def values() -> list[bytes]:
        faulty = make_generator(
            "iot", seed=1, start=START, faults=Faults(nulls=0.1, duplicates=0.1)
        )
        return [value for batch in faulty.batches(2_000, 1_000) for value in batch.values]

    first = values()
    assert first == values()  # same seed, same faults on the same messages
    assert len(first) > 2_000  # duplicates add messages
    assert Faults.parse("nulls=0.05, duplicates=0.01") == Faults(nulls=0.05, duplicates=0.01)
    with pytest.raises(ValueError, match="unknown fault 'typos'"):
        Faults.parse("typos=0.1")
    with pytest.raises(ValueError, match="needs a rate"):
        Faults.parse("nulls=lots")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        Faults.parse("nulls=1.5")


@pytest.fixture(scope="module")
def every_table(tmp_path_factory: pytest.TempPathFactory, clean: dict[str, pa.Table]) -> Settings:
    """A lake with a clean day in every silver and gold table, built by the real job."""
    root = tmp_path_factory.mktemp("quality-lake")
    settings = Settings(lakehouse_root=str(root / "lake"), lakehouse_home=root / "home")
    land_bronze(settings, clean)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_ROOT", settings.lakehouse_root)
        get_settings.cache_clear()
        with dg.instance_for_test() as instance:
            run = defs.resolve_job_def("medallion").execute_in_process(
                partition_key=DAY.isoformat(), instance=instance
            )
        get_settings.cache_clear()
    assert run.success
    return settings


CHECKED = [
    (table, check.name)
    for table, suite in SUITES.items()
    if table.split(".")[0] in ("silver", "gold")  # the medallion's; models' in their tests
    for check in suite.checks
    if check.name not in ("volume_as_usual", "products_known")  # tested on their own above
]


@pytest.mark.parametrize(("table", "check_name"), CHECKED)
def test_every_check_passes_the_clean_day_and_fails_when_its_rule_is_broken(
    every_table: Settings, table: str, check_name: str
) -> None:
    spec = CATALOG.table(table)
    suite = suite_for(spec)
    check = suite.check(check_name)
    rows = read_days(every_table, spec, None, DAY)
    assert rows.num_rows > 0

    def verdict(candidate: pa.Table) -> bool:
        one = Suite(spec, (check,), suite.id_columns)
        (outcome,) = validate(one, candidate, DAY, every_table)
        return outcome.passed

    assert verdict(rows), f"{table}:{check_name} fails on clean data"
    for expect in check.expectations_for(every_table, DAY):
        assert not verdict(broken(rows, expect)), f"{table}:{check_name} missed {expect.describe()}"


@pytest.mark.parametrize(
    ("fault", "check_name", "blocks"),
    [
        ("nulls", "expected_fields_present", False),
        ("out_of_range", "value_physically_possible", True),
        ("duplicates", "natural_key_unique", True),
        ("schema_drift", "expected_fields_present", False),
    ],
)
def test_each_fault_is_caught_by_its_check_in_a_real_run(
    make_settings: Callable[..., Settings],
    activate: Callable[[Settings], None],
    fault: str,
    check_name: str,
    blocks: bool,
) -> None:
    settings = make_settings()
    activate(settings)
    faults = FAULTS[fault][0]
    seed_bronze(settings, bronze_rows("iot", faults)["sensor_readings"])
    with dg.instance_for_test() as instance:
        result = run_iot_day(instance)
    failed = {
        event.event_specific_data.check_name
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and not event.event_specific_data.passed
    }
    assert failed == {check_name}
    assert result.success is not blocks
    gold_built = asset_key(GOLD_SENSOR_HOURLY) in {
        event.asset_key for event in result.get_asset_materialization_events()
    }
    assert gold_built is not blocks
