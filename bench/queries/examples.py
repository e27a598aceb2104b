"""The documented IoT example queries, each with a check that its answer is plausible.

The SQL here is the SQL in docs/queries.md (the bench flags any that differ), written
for pushdown: date filters are `event_date >= current_date - N` on the partition column,
a constant DuckDB hands to the Arrow scan so that only N days of files are opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from bench.queries.data import PLANTS, SENSOR_TYPES, Fleet

# ISO 10816-3 puts RMS velocity above 7.1 mm/s in the "unsatisfactory" zone for
# medium machines: a realistic alert threshold, and above any healthy sensor's maximum.
VIBRATION_ALERT_MM_S = 7.1


@dataclass(frozen=True)
class Example:
    """One ad-hoc question, its SQL, and what a correct answer must look like."""

    key: str
    question: str
    sql: str
    check: Callable[[pa.Table], str | None]  # None if plausible, else why not


def _expect_rows(table: pa.Table, rows: int) -> str | None:
    return None if table.num_rows == rows else f"{table.num_rows} rows, expected {rows}"


TOP_STDDEV = """\
SELECT sensor_id, device_id, sensor_type, plant,
       round(avg(stddev_value / avg_value), 4) AS relative_stddev,
       round(max(stddev_value), 3) AS max_stddev
FROM gold.sensor_hourly
WHERE event_date >= current_date - 7
GROUP BY ALL
ORDER BY relative_stddev DESC
LIMIT 20"""

PLANT_TEMPERATURE = """\
SELECT event_date, plant,
       round(sum(avg_value * readings) / sum(readings), 2) AS avg_temperature
FROM gold.sensor_hourly
WHERE event_date >= current_date - 30 AND sensor_type = 'temperature'
GROUP BY event_date, plant
ORDER BY event_date, plant"""

VIBRATION_ALERTS = f"""\
SELECT device_id, plant, count(*) AS hours_over, round(max(max_value), 2) AS peak,
       min(hour) AS first_over, max(hour) AS last_over
FROM gold.sensor_hourly
WHERE event_date >= current_date - 7 AND sensor_type = 'vibration'
  AND max_value > {VIBRATION_ALERT_MM_S}
GROUP BY device_id, plant
ORDER BY hours_over DESC"""

SENSOR_SERIES = """\
SELECT hour, readings, avg_value, min_value, max_value, stddev_value
FROM gold.sensor_hourly
WHERE sensor_id = '{sensor_id}'
ORDER BY hour"""

MONTHLY_TREND = """\
WITH monthly AS (
    SELECT sensor_type, date_trunc('month', event_date) AS month,
           sum(avg_value * readings) / sum(readings) AS avg_value
    FROM gold.sensor_hourly
    GROUP BY ALL
)
SELECT sensor_type, month, round(avg_value, 3) AS avg_value,
       round(100 * (avg_value / lag(avg_value) OVER (
           PARTITION BY sensor_type ORDER BY month) - 1), 2) AS change_pct
FROM monthly
ORDER BY sensor_type, month"""


def examples(fleet: Fleet, days: int, months: int) -> list[Example]:
    """The five questions, with checks derived from how the fleet was generated."""
    failing = {fleet.device_ids[d] for d in fleet.failing}
    series_sensor = fleet.sensor_id(fleet.failing[0], "vibration")
    month = min(30, days)

    def top_stddev(table: pa.Table) -> str | None:
        wrong = _expect_rows(table, min(20, fleet.sensors))
        top = set(table.column("device_id").to_pylist()[: len(failing)])
        return wrong or (None if top == failing else f"top devices {top}, failing {failing}")

    def alerts(table: pa.Table) -> str | None:
        found = set(table.column("device_id").to_pylist())
        return None if found == failing else f"alerting devices {found}, failing {failing}"

    return [
        Example(
            "top_stddev", "Which 20 sensors were the noisiest last week?", TOP_STDDEV, top_stddev
        ),
        Example(
            "plant_temperature",
            "Daily average temperature per plant, last 30 days",
            PLANT_TEMPERATURE,
            lambda t: _expect_rows(t, month * len(PLANTS)),
        ),
        Example(
            "vibration_alerts",
            f"Which devices went over {VIBRATION_ALERT_MM_S} mm/s vibration in the last "
            "7 days, and for how many hours?",
            VIBRATION_ALERTS,
            alerts,
        ),
        Example(
            "sensor_series",
            "One sensor's full-year hourly series (a dashboard panel)",
            SENSOR_SERIES.format(sensor_id=series_sensor),
            lambda t: _expect_rows(t, days * 24),
        ),
        Example(
            "monthly_trend",
            "Month-over-month average per sensor type, whole year",
            MONTHLY_TREND,
            lambda t: _expect_rows(t, months * len(SENSOR_TYPES)),
        ),
    ]
