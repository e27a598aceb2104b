"""Bronze to silver: deduplicate by event id, enforce row rules, drop ingest plumbing.

Bronze holds every message that decoded, redeliveries included. Silver keeps the first
copy of each event (by landing order), and sets aside rows that break the domain's rules
(with the names of the rules they break) instead of dropping them silently. The rules are
SQL predicates over one row; a NULL verdict counts as broken, so a rule that tolerates a
missing value must say so (`x IS NULL OR ...`).

The rules are written once for both engines: every predicate is SQL that DuckDB and Spark
SQL both accept with the same meaning (`silver_spark` applies them on Spark), so a rule uses
only functions the two share (no `regexp_full_match` or `isfinite`, which Spark lacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import (
    CART_EVENTS,
    CATALOG,
    CLICKSTREAM,
    ENGINE_CYCLES,
    FRAUD_DECISIONS,
    IOT_ALERTS,
    PURCHASES,
    REJECTED_ROWS,
    SEARCH,
    SENSOR_READINGS,
    TRANSACTIONS,
    TopicSpec,
)
from lakehouse.delta import open_table, replace_partition
from lakehouse.schemas import VOCABULARIES, silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms import duck
from lakehouse.transforms.tables import (
    Guard,
    Source,
    changes_nothing,
    register,
    replace_day,
    scan_days,
    stream,
)


@dataclass(frozen=True)
class Rule:
    """A named predicate every silver row must satisfy."""

    name: str
    predicate: str


def _one_of(topic: TopicSpec, column: str, nullable: bool = False) -> Rule:
    allowed = ", ".join(f"'{value}'" for value in VOCABULARIES[topic.name][column])
    test = f"{column} IN ({allowed})"
    return Rule(f"{column}_known", f"{column} IS NULL OR {test}" if nullable else test)


# Three capital letters: no regular-expression full match is spelt alike in both engines,
# so the letters are deleted and nothing may remain.
_CURRENCY_ISO = (
    "length(currency) = 3 AND translate(currency, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '') = ''"
)

_SESSION = (Rule("user_id_positive", "user_id > 0"),)

RULES: dict[str, tuple[Rule, ...]] = {
    CLICKSTREAM.name: (
        *_SESSION,
        _one_of(CLICKSTREAM, "event_type"),
        _one_of(CLICKSTREAM, "page"),
        _one_of(CLICKSTREAM, "device", nullable=True),
        _one_of(CLICKSTREAM, "variant", nullable=True),
        Rule("price_non_negative", "price IS NULL OR price >= 0"),
        Rule("product_view_has_product", "event_type <> 'product_view' OR product_id IS NOT NULL"),
    ),
    CART_EVENTS.name: (
        *_SESSION,
        _one_of(CART_EVENTS, "action"),
        _one_of(CART_EVENTS, "variant", nullable=True),
        Rule("quantity_positive", "quantity > 0"),
        Rule("price_non_negative", "price >= 0"),
    ),
    SEARCH.name: (
        *_SESSION,
        Rule("query_not_blank", "length(trim(query)) > 0"),
        Rule("results_count_non_negative", "results_count >= 0"),
    ),
    PURCHASES.name: (
        *_SESSION,
        _one_of(PURCHASES, "variant", nullable=True),
        Rule("quantity_positive", "quantity > 0"),
        Rule("unit_price_non_negative", "unit_price >= 0"),
        Rule("total_matches_lines", "abs(total_amount - unit_price * quantity) < 0.01"),
        Rule("currency_iso", _CURRENCY_ISO),
    ),
    # No rule reads `label_is_fraud`: NULL is a label not known yet (a live payment's
    # ground truth comes later, with chargebacks), not a broken row.
    TRANSACTIONS.name: (
        *_SESSION,
        _one_of(TRANSACTIONS, "channel"),
        Rule("amount_positive", "amount > 0"),
        Rule("currency_iso", _CURRENCY_ISO),
        Rule("latitude_in_range", "latitude BETWEEN -90 AND 90"),
        Rule("longitude_in_range", "longitude BETWEEN -180 AND 180"),
    ),
    FRAUD_DECISIONS.name: (
        *_SESSION,
        _one_of(FRAUD_DECISIONS, "decision"),
        # Dedup by event id is dedup by transaction only if the two are the same.
        Rule("event_id_is_transaction_id", "event_id = transaction_id"),
        Rule(
            "fraud_probability_is_a_share",
            "fraud_probability IS NULL OR fraud_probability BETWEEN 0 AND 1",
        ),
        Rule("latency_non_negative", "latency_ms >= 0"),
    ),
    SENSOR_READINGS.name: (
        _one_of(SENSOR_READINGS, "sensor_type"),
        # NaN and the infinities fail; `isnan` and the cast are spelt alike in both engines.
        Rule("value_finite", "NOT isnan(value) AND abs(value) < CAST('Infinity' AS DOUBLE)"),
        Rule("sequence_non_negative", "sequence >= 0"),
    ),
    IOT_ALERTS.name: (
        _one_of(IOT_ALERTS, "state"),
        _one_of(IOT_ALERTS, "rule"),
        _one_of(IOT_ALERTS, "severity"),
        # Dedup by event id is dedup by alert transition only if the id is built from both.
        Rule("event_id_is_alert_and_state", "event_id = alert_id || ':' || state"),
        Rule(
            "sensor_alert_names_its_sensor",
            "rule = 'device_health' OR (sensor_id IS NOT NULL AND sensor_type IS NOT NULL)",
        ),
        Rule("readings_positive", "readings > 0"),
        Rule("closed_after_opened", "closed_at IS NULL OR closed_at >= opened_at"),
    ),
    # Engines and cycles count from 1; an engine cannot have failed before a cycle it flew.
    ENGINE_CYCLES.name: (
        _one_of(ENGINE_CYCLES, "split"),
        Rule("unit_positive", "unit >= 1"),
        Rule("cycle_positive", "cycle >= 1"),
        Rule(
            "failure_not_before_cycle",
            "label_failure_cycle IS NULL OR label_failure_cycle >= cycle",
        ),
    ),
}

# Landing order: the first copy of an event to reach bronze is the one silver keeps.
LANDING_ORDER = ("_ingested_at", "_kafka_partition", "_kafka_offset")
PLUMBING = ("_kafka_partition", "_kafka_offset")
"""Ingest provenance that silver drops (`_ingested_at` stays: when the row landed)."""


@dataclass(frozen=True)
class SilverResult:
    """The clean rows, the rows that broke rules, and how many duplicates were dropped.

    From `to_silver`, Arrow tables; from `build_silver_partition`, lazy scans of the day
    as written (a day of silver need not fit in memory): `engine.row_count` counts either
    from what it holds or from the files' footers.
    """

    rows: Source
    rejected: Source
    duplicates: int


def to_silver(bronze: pa.Table, topic: str) -> SilverResult:
    """Deduplicate `bronze` rows of one topic by event id and split them by the rules."""
    with duck.session() as connection:
        duplicates = stage_silver(connection, bronze, topic)
        rows = connection.table(STAGED_ROWS).to_arrow_table()
        rejected = connection.table(STAGED_REJECTED).to_arrow_table()
    return SilverResult(
        rows=rows.cast(silver_schema(topic)),
        rejected=rejected.cast(REJECTED_ROWS.schema),
        duplicates=duplicates,
    )


STAGED_ROWS = "silver_rows"
STAGED_REJECTED = "silver_rejected"


def stage_silver(connection: duckdb.DuckDBPyConnection, bronze: Source, topic: str) -> int:
    """Deduplicate and split one topic's `bronze` rows in `connection`: STAGED_ROWS, a
    view of the clean rows (in landing order), and STAGED_REJECTED, a table of the rule
    breakers as REJECTED_ROWS (by event id); return how many duplicates were dropped.

    Staged in DuckDB, not in Arrow, so that a day larger than the session's memory limit
    streams (and its aggregates spill) instead of failing: `replace_day` writes the view's
    rows into the day's files, which the checks then read.

    The clean rows keep bronze's order, which is the order they landed in, close to event
    time (a file's event times span about its flush interval). They are not sorted: a
    total sort by event time was a third of silver's CPU at 10M rows and, once the day
    outgrew the memory limit and the sort spilled, what made silver's time grow faster
    than its rows; the table's layout for readers is the compaction's Z-order.
    """
    rules = RULES[topic]
    verdicts = ", ".join(
        f"CASE WHEN coalesce(({rule.predicate}), false) THEN NULL ELSE '{rule.name}' END"
        for rule in rules
    )
    plumbing = ", ".join(PLUMBING)
    register(connection, "bronze", bronze)
    # Only the ids that occur more than once pay for the window that picks the first
    # landed copy; every other row passes straight through (4x faster on a clean day
    # of 10M clicks than windowing every row, see docs/benchmarks.md).
    # The ids are found by their hashes first: a day's ids grouped as 64-bit hashes fit
    # the memory limit where the ids themselves spilled (50M ids), and equal ids always
    # share a hash, so only the few ids whose hash repeats are grouped again, exactly.
    connection.execute(
        """
        CREATE TEMP TABLE duplicated AS
        WITH repeated AS (
            SELECT hash(event_id) AS id_hash FROM bronze GROUP BY 1 HAVING count(*) > 1
        )
        SELECT event_id, count(*) - 1 AS extra_copies
        FROM bronze SEMI JOIN repeated ON hash(bronze.event_id) = repeated.id_hash
        GROUP BY event_id HAVING count(*) > 1
        """
    )
    duplicates = connection.execute(
        "SELECT coalesce(sum(extra_copies), 0) FROM duplicated"
    ).fetchall()[0][0]
    # Views, not tables: the rows flow from bronze's files to whoever reads them (the
    # day's Parquet files, or Arrow), and the day is never held by the session, which
    # past its memory limit would spill it uncompressed and read it back.
    connection.execute(
        f"""
        CREATE TEMP VIEW firsts AS
        SELECT * EXCLUDE ({plumbing}) FROM bronze ANTI JOIN duplicated USING (event_id)
        UNION ALL
        SELECT * EXCLUDE (_copy, {plumbing}) FROM (
            SELECT *, row_number() OVER (
                PARTITION BY event_id ORDER BY {", ".join(LANDING_ORDER)}) AS _copy
            FROM bronze SEMI JOIN duplicated USING (event_id)
        ) WHERE _copy = 1
        """
    )
    keeps = " AND ".join(f"coalesce(({rule.predicate}), false)" for rule in rules)
    names = silver_schema(topic).names
    columns = ", ".join(f'"{name}"' for name in names)
    as_struct = ", ".join(f'"{name}" := "{name}"' for name in names)
    connection.execute(
        f"CREATE TEMP VIEW {STAGED_ROWS} AS SELECT {columns} FROM firsts WHERE {keeps}"
    )
    connection.execute(
        f"""
        CREATE TEMP TABLE {STAGED_REJECTED} AS
        SELECT '{topic}' AS "table", event_id, event_date,
               list_filter([{verdicts}], lambda name: name IS NOT NULL) AS broken_rules,
               to_json(struct_pack({as_struct}))::VARCHAR AS "row",
               now() AS rejected_at
        FROM firsts WHERE NOT ({keeps}) ORDER BY event_id
        """
    )
    return int(duplicates)


def build_silver_partition(
    settings: Settings, topic: str, day: date, guard: Guard | None = None
) -> SilverResult:
    """Rebuild one event-date partition of a silver table (and its rejected rows) from bronze.

    Reads only that partition of bronze, so a late duplicate landed in a later bronze
    commit is deduplicated against its original; replaces the silver partition atomically,
    so running it twice gives the same table. A `guard` that refuses the rows leaves both
    the silver day and its rejected rows as they were.

    The day never has to fit in memory: DuckDB reads bronze batch by batch, stages the
    clean and rejected rows under the settings' memory limit (spilling past it), the guard
    checks them where they lie, and they stream into their Delta commits.
    """
    silver = CATALOG.silver_for_topic(topic)
    with duck.session(settings) as connection:
        duplicates = stage_silver(
            connection, scan_days(settings, CATALOG.bronze_for_topic(topic), day), topic
        )
        replace_day(settings, silver, duck.Staged(connection, STAGED_ROWS), day, guard)
        rejected = connection.table(STAGED_REJECTED)
        # As `replace_day` does: no rejected rows where the day holds none changes nothing.
        if not changes_nothing(settings, REJECTED_ROWS, rejected, day):
            replace_partition(
                REJECTED_ROWS,
                settings,
                lambda: stream(rejected, REJECTED_ROWS.schema),
                rejected_predicate(topic, day),
            )
    return SilverResult(
        rows=scan_days(settings, silver, day),
        rejected=scan_rejected(settings, topic, day),
        duplicates=duplicates,
    )


def rejected_predicate(topic: str, day: date) -> str:
    """The rejected rows of one topic and day: what a silver rebuild of that day replaces."""
    return f"event_date = '{day.isoformat()}' AND \"table\" = '{topic}'"


def scan_rejected(settings: Settings, topic: str, day: date) -> Source:
    """The rejected rows of one topic and day, as a lazy scan."""
    table = open_table(REJECTED_ROWS, settings)
    if table is None:
        return REJECTED_ROWS.schema.empty_table()
    wanted = (pc.field("event_date") == day) & (pc.field("table") == topic)
    return table.to_pyarrow_dataset().filter(wanted)
