"""IoT alerts gold: the history of every alert the alert processor raised, one row per
alert, and the daily roll-up per device beside the device's health.

An alert has two records in silver, `open` and `close`, on the days they happened; an
alert may open before midnight and close after it, or stay open for days. Its history row
lives in the partition of the day it *opened*: a home that never moves, so a rebuild of a
day replaces exactly the alerts of that day. A close on a later day must still reach that
row, so the build of day D rewrites, besides D, the opening day of every alert whose
record D holds (the close record names `opened_at`). Each partition is recomputed from
every silver record from its day on, never patched: a day rebuilt in any order, or twice,
comes out the same for the same silver.

The daily roll-up of day D needs only what was known by D's end: an alert not closed by
midnight counts as open until midnight, whenever (if ever) it closes. So the records of
later days never change an earlier roll-up, and its inputs are the history rows opened up
to D and not closed before D began, plus D's device health.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import (
    GOLD_DEVICE_ALERTS_DAILY,
    GOLD_DEVICE_HEALTH_DAILY,
    GOLD_IOT_ALERT_HISTORY,
    SILVER_IOT_ALERTS,
)
from lakehouse.delta import open_table
from lakehouse.schemas import ALERT_RULES, ALERT_SEVERITIES, DEVICE_ALERTS_DAILY, IOT_ALERT_HISTORY
from lakehouse.settings import Settings
from lakehouse.transforms.tables import Guard, read_days, replace_day, run_sql

RECORD_COLUMNS = [
    "event_id",
    "event_time",
    "alert_id",
    "state",
    "rule",
    "severity",
    "device_id",
    "sensor_id",
    "sensor_type",
    "plant",
    "value",
    "zscore",
    "health_score",
    "readings",
    "opened_at",
    "closed_at",
    "detected_at",
    "_ingested_at",
]
"""The silver.iot_alerts columns the history is built from."""

_HISTORY_SQL = """
WITH ranked AS (
    -- one record per alert and state: the first landed, should a copy slip past silver
    SELECT *, row_number() OVER (
        PARTITION BY alert_id, state ORDER BY _ingested_at, event_time, event_id
    ) AS copy
    FROM records
),
opens AS (SELECT * FROM ranked WHERE state = 'open' AND copy = 1),
closes AS (SELECT * FROM ranked WHERE state = 'close' AND copy = 1),
alerts AS (
    SELECT alert_id,
           coalesce(o.device_id, c.device_id) AS device_id,
           coalesce(o.plant, c.plant) AS plant,
           coalesce(o.sensor_id, c.sensor_id) AS sensor_id,
           coalesce(o.sensor_type, c.sensor_type) AS sensor_type,
           coalesce(o.rule, c.rule) AS rule,
           coalesce(o.severity, c.severity) AS severity,
           CASE WHEN c.alert_id IS NULL THEN 'open' ELSE 'closed' END AS state,
           coalesce(o.opened_at, c.opened_at) AS opened_at,
           coalesce(c.closed_at, c.event_time) AS closed_at,
           coalesce(c.readings, o.readings) AS readings,
           o.value AS open_value,
           o.zscore AS open_zscore,
           greatest(abs(o.zscore), abs(c.zscore)) AS max_abs_zscore,
           least(o.health_score, c.health_score) AS min_health_score,
           o.detected_at AS detected_at,
           (epoch_us(o.detected_at) - epoch_us(o.event_time)) / 1e6 AS detection_seconds
    FROM opens AS o FULL OUTER JOIN closes AS c USING (alert_id)
)
SELECT CAST(opened_at AS DATE) AS event_date, *,
       (epoch_us(closed_at) - epoch_us(opened_at)) / 60e6 AS minutes_to_close
FROM alerts
ORDER BY event_date, device_id, opened_at, alert_id
"""


def alert_history(records: pa.Table) -> pa.Table:
    """One row per alert of `records` (silver.iot_alerts rows, `RECORD_COLUMNS`), its open
    and close records folded together; `event_date` is the day it opened.

    An alert with only a close record (its open not in `records`) still gets its row from
    the close, which repeats every field; one with only an open record is `open`, with
    `closed_at` and `minutes_to_close` NULL.
    """
    return run_sql(
        _HISTORY_SQL, IOT_ALERT_HISTORY, deterministic=True, records=records.select(RECORD_COLUMNS)
    )


def history_days(day_records: pa.Table, day: date) -> list[date]:
    """The partitions of gold.iot_alert_history a rebuild of `day` must rewrite, oldest
    first, `day` last: `day` itself and the opening day of every alert one of
    `day_records` (the day's silver records, at least `opened_at`) belongs to. A record
    never reaches forward: silver refuses a close before its open, and an open record's
    `opened_at` is its own time."""
    opened = pc.cast(pc.cast(day_records["opened_at"], pa.timestamp("us")), pa.date32())
    return sorted({day, *(d for d in opened.to_pylist() if d is not None and d < day)})


def build_alert_history_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild the alerts opened on `day`, and those of earlier days that `day`'s silver
    records close (or otherwise touch), from every silver record of their days on;
    idempotent. Returns the rows of `day`.
    """
    touched = read_days(settings, SILVER_IOT_ALERTS, ["opened_at"], day)
    days = history_days(touched, day)
    # Every record from the oldest touched day on: an alert's close may lie any day later.
    records = read_days(settings, SILVER_IOT_ALERTS, RECORD_COLUMNS, days[0], date.max)
    history = alert_history(records)
    for partition in days:
        rows = history.filter(pc.field("event_date") == partition)
        replace_day(settings, GOLD_IOT_ALERT_HISTORY, rows, partition, guard)
    return history.filter(pc.field("event_date") == day)


# --- gold.device_alerts_daily ------------------------------------------------------------

_PER_RULE = ",\n".join(
    f"           count(*) FILTER (WHERE opened_today AND rule = '{rule}') AS {rule}_opened"
    for rule in ALERT_RULES
)
_PER_SEVERITY = ",\n".join(
    f"           count(*) FILTER (WHERE opened_today AND severity = '{severity}') "
    f"AS {severity}_opened"
    for severity in ALERT_SEVERITIES
)

_DAILY_SQL = f"""
WITH alerts AS (
    -- as known at the day's end: a close after midnight is not yet a close
    SELECT device_id, plant, rule, severity, opened_at,
           opened_at >= $day_start AS opened_today,
           CASE WHEN closed_at < $day_end THEN closed_at END AS closed_at
    FROM history
    WHERE opened_at < $day_end AND (closed_at IS NULL OR closed_at >= $day_start)
),
spans AS (
    SELECT device_id,
           greatest(opened_at, $day_start) AS span_start,
           coalesce(closed_at, $day_end) AS span_end
    FROM alerts
),
ordered AS (
    SELECT *, max(span_end) OVER (
        PARTITION BY device_id ORDER BY span_start, span_end
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS covered_until
    FROM spans
),
islands AS (
    -- overlapping alerts merged: a new island starts where nothing earlier still covers
    SELECT *, sum(CASE WHEN covered_until IS NULL OR span_start > covered_until
                       THEN 1 ELSE 0 END) OVER (
        PARTITION BY device_id ORDER BY span_start, span_end ROWS UNBOUNDED PRECEDING
    ) AS island
    FROM ordered
),
coverage AS (
    SELECT device_id, sum(epoch_us(island_end) - epoch_us(island_start)) / 60e6
           AS minutes_under_alert
    FROM (
        SELECT device_id, island, min(span_start) AS island_start, max(span_end) AS island_end
        FROM islands GROUP BY device_id, island
    )
    GROUP BY device_id
),
counts AS (
    SELECT device_id, min(plant) AS plant,
           count(*) FILTER (WHERE opened_today) AS alerts_opened,
{_PER_RULE},
{_PER_SEVERITY},
           count(closed_at) AS alerts_closed,
           count(*) AS alerts_active,
           count(*) FILTER (WHERE closed_at IS NULL) AS open_at_end_of_day
    FROM alerts GROUP BY device_id
),
devices AS (
    SELECT device_id FROM health UNION SELECT device_id FROM counts
)
SELECT $day::DATE AS event_date, d.device_id, coalesce(h.plant, c.plant) AS plant,
       coalesce(c.alerts_opened, 0) AS alerts_opened,
{",".join(f" coalesce(c.{rule}_opened, 0) AS {rule}_opened" for rule in ALERT_RULES)},
{",".join(f" coalesce(c.{s}_opened, 0) AS {s}_opened" for s in ALERT_SEVERITIES)},
       coalesce(c.alerts_closed, 0) AS alerts_closed,
       coalesce(c.alerts_active, 0) AS alerts_active,
       coalesce(v.minutes_under_alert, 0) AS minutes_under_alert,
       coalesce(c.open_at_end_of_day, 0) AS open_at_end_of_day,
       h.health_score, h.status
FROM devices AS d
LEFT JOIN counts AS c USING (device_id)
LEFT JOIN coverage AS v USING (device_id)
LEFT JOIN health AS h USING (device_id)
ORDER BY d.device_id
"""

HISTORY_COLUMNS = ["device_id", "plant", "rule", "severity", "opened_at", "closed_at"]
"""The gold.iot_alert_history columns the daily roll-up reads."""
HEALTH_COLUMNS = ["device_id", "plant", "health_score", "status"]
"""The gold.device_health_daily columns the daily roll-up carries."""


def device_alerts_daily(history: pa.Table, health: pa.Table, day: date) -> pa.Table:
    """One row per device with a `health` row (gold.device_health_daily of `day`) or an
    alert of `history` (gold.iot_alert_history rows) open at some moment of `day`.

    Only what was known at the end of `day` counts: a `closed_at` after it is read as
    still open, so rows of alerts that closed later give the same day as before.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return run_sql(
        _DAILY_SQL,
        DEVICE_ALERTS_DAILY,
        {"day": day, "day_start": start, "day_end": start + timedelta(days=1)},
        deterministic=True,
        history=history.select(HISTORY_COLUMNS),
        health=health.select(HEALTH_COLUMNS),
    )


def alerts_open_during(settings: Settings, first: datetime, end: datetime) -> pa.Table:
    """The gold.iot_alert_history rows (`HISTORY_COLUMNS`) of alerts open at some moment
    of [`first`, `end`): opened before `end` and not closed before `first`. Partitions
    after `end`'s day are pruned; earlier ones are scanned for alerts still open."""
    table = open_table(GOLD_IOT_ALERT_HISTORY, settings)
    if table is None:
        return IOT_ALERT_HISTORY.empty_table().select(HISTORY_COLUMNS)
    window = (
        (pc.field("event_date") <= (end - timedelta(microseconds=1)).date())
        & (pc.field("opened_at") < end)
        & (pc.field("closed_at").is_null() | (pc.field("closed_at") >= first))
    )
    return table.to_pyarrow_dataset().to_table(columns=HISTORY_COLUMNS, filter=window)


def build_device_alerts_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one event-date partition of gold.device_alerts_daily; idempotent.

    Reads the alert history of every alert open at some moment of `day` and the device
    health of `day`.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    history = alerts_open_during(settings, start, start + timedelta(days=1))
    health = read_days(settings, GOLD_DEVICE_HEALTH_DAILY, HEALTH_COLUMNS, day)
    rows = device_alerts_daily(history, health, day)
    return replace_day(settings, GOLD_DEVICE_ALERTS_DAILY, rows, day, guard)
