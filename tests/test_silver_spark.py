"""Silver on Spark gives exactly what silver on DuckDB gives: for every topic, generated
bronze with redeliveries and rule breakers goes through both twins and the clean rows, the
rejected rows (ids, broken rules, row values) and the duplicate count must be the same."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lakehouse.catalog import (
    BRONZE_SENSOR_READINGS,
    CART_EVENTS,
    CLICKSTREAM,
    ENGINE_CYCLES,
    FRAUD_DECISIONS,
    IOT_ALERTS,
    PURCHASES,
    REJECTED_ROWS,
    SEARCH,
    SENSOR_READINGS,
    TRANSACTIONS,
    Domain,
    table_uri,
)
from lakehouse.delta import replace_partition
from lakehouse.schemas import silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms.silver import RULES, to_silver
from lakehouse.transforms.silver_spark import build_silver_partition, to_silver_spark
from streaming.generators import make_generator
from tests.support.fraud_audit import decisions_bronze
from tests.support.importing import engine_cycles_bronze
from tests.support.iot_alerts import alerts_for
from tests.support.landing import bronze_messages
from tests.test_silver import bronze, reading

START = datetime(2026, 11, 23, tzinfo=UTC)

# One row edit per rule (and a few NULLs, which count as broken): every rule of every
# topic must show up among the rejected rows, so each predicate is checked on both engines.
BREAKERS: dict[str, tuple[dict[str, Any], ...]] = {
    CLICKSTREAM.name: (
        {"user_id": 0},
        {"user_id": None},
        {"event_type": "hover"},
        {"page": "nowhere"},
        {"device": "fax"},
        {"variant": "z"},
        {"price": -1.0},
        {"event_type": "product_view", "product_id": None},
        {"price": float("nan")},  # NaN >= 0 holds in both engines: a clean row
    ),
    CART_EVENTS.name: (
        {"user_id": -5},
        {"action": "steal"},
        {"variant": "x"},
        {"quantity": 0},
        {"price": -0.5},
        {"price": None},
    ),
    SEARCH.name: (
        {"user_id": 0},
        {"query": "   "},
        {"query": None},
        {"results_count": -1},
        {"query": "\t"},  # both engines trim spaces only: a clean row
    ),
    PURCHASES.name: (
        {"user_id": 0},
        {"variant": "q"},
        {"quantity": 0},
        {"unit_price": -1.0},
        {"total_amount": 1e6},
        {"currency": "usd"},
        {"currency": "US"},
        {"currency": ""},
        {"currency": "US1"},
        {"currency": None},
    ),
    TRANSACTIONS.name: (
        {"user_id": 0},
        {"channel": "fax"},
        {"amount": 0.0},
        {"currency": "EURO"},
        {"latitude": 91.0},
        {"longitude": -181.0},
        {"latitude": float("nan")},
        {"amount": float("inf")},  # positive: a clean row
    ),
    FRAUD_DECISIONS.name: (
        {"user_id": 0},
        {"decision": "MAYBE"},
        {"transaction_id": "someone-else"},
        {"fraud_probability": 1.5},
        {"latency_ms": -1.0},
        {"fraud_probability": None},  # not scored (degraded): a clean row
    ),
    SENSOR_READINGS.name: (
        {"sensor_type": "smell"},
        {"value": float("nan")},
        {"value": float("inf")},
        {"value": float("-inf")},
        {"value": None},
        {"sequence": -1},
    ),
    IOT_ALERTS.name: (
        {"state": "stuck"},
        {"rule": "psychic"},
        {"severity": "meh"},
        {"alert_id": "another-alert"},
        {"sensor_id": None},
        {"readings": 0},
        {"closed_at": START - timedelta(days=1)},
    ),
    ENGINE_CYCLES.name: (
        {"split": "validation"},
        {"split": None},
        {"unit": 0},
        {"cycle": 0},
        {"label_failure_cycle": 0},
        {"label_failure_cycle": None},  # ground truth not known: a clean row
    ),
}


@cache
def generated(domain: Domain) -> dict[str, pa.Table]:
    """An hour of a domain's generated traffic, as ingest lands it in bronze, per topic."""
    generator = make_generator(domain, seed=11, start=START, span=timedelta(hours=1))
    values: dict[str, list[bytes]] = {}
    for batch in generator.batches(8_000, 8_000):
        values.setdefault(batch.topic, []).extend(batch.values)
    return {topic: bronze_messages(topic, messages) for topic, messages in values.items()}


def clean_bronze(topic: str) -> pa.Table:
    """Bronze rows of `topic`: generated, or made by the services' own event builders from
    generated payments and readings."""
    if topic == FRAUD_DECISIONS.name:
        return decisions_bronze(generated(Domain.FRAUD)[TRANSACTIONS.name].slice(0, 300))
    if topic == ENGINE_CYCLES.name:
        return engine_cycles_bronze(START.date())
    if topic == IOT_ALERTS.name:
        readings = generated(Domain.IOT)[SENSOR_READINGS.name].slice(0, 15).to_pylist()
        spikes = [{**row, "label_anomaly": "spike"} for row in readings]
        return bronze_messages(IOT_ALERTS.name, alerts_for(spikes))
    domain = next(d for d in (Domain.ECOMMERCE, Domain.FRAUD, Domain.IOT) if topic in generated(d))
    return generated(domain)[topic].slice(0, 2_000)  # enough of every case, and quick


def dirty_bronze(topic: str) -> tuple[pa.Table, int]:
    """Bronze rows of `topic` with rule breakers and redeliveries (landed later, earlier, or
    at the same moment on another partition), shuffled; and how many duplicates it holds
    (the added copies and the generator's own redeliveries)."""
    table = clean_bronze(topic)
    rows = table.to_pylist()
    for number, edit in enumerate(BREAKERS[topic]):
        rows[1 + 3 * number].update(edit)
    late = [
        {
            **row,
            "_ingested_at": row["_ingested_at"] + timedelta(hours=1),
            "_kafka_offset": row["_kafka_offset"] + 1_000_000,
        }
        for row in rows[::10]
    ]
    early = [
        {
            **row,
            "_ingested_at": row["_ingested_at"] - timedelta(minutes=1),
            "_kafka_offset": row["_kafka_offset"] + 2_000_000,
        }
        for row in rows[5::10]
    ]
    tied = [{**row, "_kafka_partition": 1} for row in rows[3::25]]
    landed = [*rows, *late, *early, *tied]
    random.Random(topic).shuffle(landed)
    duplicates = len(landed) - len({row["event_id"] for row in landed})
    return pa.Table.from_pylist(landed, schema=table.schema), duplicates


def plain(value: Any) -> Any:
    """`value` with NaN spelt as a string, so that equal rows compare equal."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of `table`, NaN made comparable."""
    return [{name: plain(value) for name, value in row.items()} for row in table.to_pylist()]


def parsed_row(text: str, schema: pa.Schema) -> dict[str, Any]:
    """A rejected row's JSON as values: the two engines spell timestamps and non-finite
    floats differently (see `silver_spark`), so the test compares what they mean."""
    fields = json.loads(text)
    assert list(fields) == schema.names
    for field in schema:
        value = fields[field.name]
        if value is None:
            continue
        if pa.types.is_timestamp(field.type):
            fields[field.name] = datetime.fromisoformat(value)
        elif pa.types.is_floating(field.type):
            fields[field.name] = float(value)
    return {name: plain(value) for name, value in fields.items()}


def rejected_by_id(table: pa.Table, topic: str) -> dict[str, tuple[Any, ...]]:
    """Each rejected row by event id: its table, day, broken rules and row values (the
    moment of rejection differs by run, so only its presence is checked)."""
    schema = silver_schema(topic)
    assert table.column("rejected_at").null_count == 0
    return {
        row["event_id"]: (
            row["table"],
            row["event_date"],
            row["broken_rules"],
            parsed_row(row["row"], schema),
        )
        for row in table.to_pylist()
    }


@pytest.mark.parametrize("topic", list(RULES))
def test_spark_silver_matches_the_local_twin(spark: SparkSession, topic: str) -> None:
    bronze_rows, duplicates = dirty_bronze(topic)
    local = to_silver(bronze_rows, topic)
    remote = to_silver_spark(spark.createDataFrame(bronze_rows), topic)

    assert remote.duplicates == local.duplicates == duplicates
    spark_rows = remote.rows.toArrow().cast(silver_schema(topic))
    # Neither twin sorts (rows stay in landing order); event ids are unique, so by id the
    # two compare row for row.
    by_id = [("event_id", "ascending")]
    assert plain_rows(spark_rows.sort_by(by_id)) == plain_rows(local.rows.sort_by(by_id))
    assert spark_rows.num_rows > 0

    spark_rejected = remote.rejected.toArrow().cast(REJECTED_ROWS.schema)
    assert spark_rejected.column("event_id").to_pylist() == sorted(
        local.rejected.column("event_id").to_pylist()
    )
    assert rejected_by_id(spark_rejected, topic) == rejected_by_id(local.rejected, topic)
    broken = {name for names in spark_rejected.column("broken_rules").to_pylist() for name in names}
    assert broken == {rule.name for rule in RULES[topic]}


def test_a_hand_built_day_keeps_first_copies_and_names_broken_rules(
    spark: SparkSession,
) -> None:
    result = to_silver_spark(
        spark.createDataFrame(
            bronze(
                reading("r1", value=50.0, landed_after=5, offset=7),
                reading("r1", value=50.0, landed_after=1, offset=3),
                reading("r2", value=51.5, offset=4),
                reading("nan", value=float("nan"), offset=5),
                reading("humid", sensor_type="humidity", value=float("inf"), offset=6),
            )
        ),
        SENSOR_READINGS.name,
    )
    assert result.duplicates == 1
    rows = result.rows.select("event_id", "sequence").collect()
    assert [tuple(row) for row in rows] == [("r1", 3), ("r2", 4)]  # the copy landed first
    rejected = {row.event_id: row.broken_rules for row in result.rejected.collect()}
    assert rejected == {"humid": ["sensor_type_known", "value_finite"], "nan": ["value_finite"]}


def test_a_day_without_rule_breakers_commits_no_rejected_rows_on_spark(
    spark: SparkSession, make_settings: Callable[..., Settings]
) -> None:
    """As locally: no rule breakers where the day holds none leaves the rejected rows
    alone (created, never committed to); the clean rows are written."""
    settings = make_settings()
    clean = bronze(reading("r1", offset=1), reading("r2", offset=2))
    day = clean["event_date"][0].as_py()
    replace_partition(BRONZE_SENSOR_READINGS, settings, clean, f"event_date = '{day}'")

    result = build_silver_partition(settings, SENSOR_READINGS.name, day)

    assert (result.rows.count(), result.rejected.num_rows) == (2, 0)
    rejected = DeltaTable(table_uri(REJECTED_ROWS, settings))
    assert (rejected.version(), rejected.get_add_actions().num_rows) == (0, 0)


def test_the_core_package_imports_without_pyspark() -> None:
    code = (
        "import sys, lakehouse.catalog, lakehouse.transforms.silver; "
        "assert 'pyspark' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
