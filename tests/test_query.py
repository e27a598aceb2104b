"""DuckDB sees exactly the live rows of each Delta table, whichever reader serves it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from lakehouse.catalog import GOLD_DEVICE_HEALTH_DAILY, GOLD_SENSOR_HOURLY, table_uri
from lakehouse.delta import replace_partition
from lakehouse.query import run_query
from lakehouse.schemas import SENSOR_HOURLY
from lakehouse.settings import Settings

SPEC = GOLD_SENSOR_HOURLY


def hourly(day: date, sensors: list[str], avg: float) -> pa.Table:
    rows = [
        {
            "device_id": "m1",
            "sensor_id": sensor,
            "sensor_type": "temperature",
            "plant": "p",
            "hour": None,
            "event_date": day,
            "readings": 1,
            "avg_value": avg,
            "min_value": avg,
            "max_value": avg,
            "stddev_value": None,
        }
        for sensor in sensors
    ]
    return pa.Table.from_pylist(rows, schema=SENSOR_HOURLY)


def test_only_live_files_are_read_with_typed_partition_values(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    first, second = date(2026, 11, 22), date(2026, 11, 23)
    replace_partition(SPEC, settings, hourly(first, ["a", "b"], 1.0), f"event_date = '{first}'")
    replace_partition(SPEC, settings, hourly(second, ["a"], 2.0), f"event_date = '{second}'")
    # Rewriting a partition leaves its old file on disk, no longer live in the Delta log.
    replace_partition(SPEC, settings, hourly(second, ["c"], 3.0), f"event_date = '{second}'")

    answer = run_query(
        settings,
        "SELECT event_date, sensor_id, avg_value FROM gold.sensor_hourly ORDER BY 1, 2",
    )
    assert answer.to_pylist() == [
        {"event_date": first, "sensor_id": "a", "avg_value": 1.0},
        {"event_date": first, "sensor_id": "b", "avg_value": 1.0},
        {"event_date": second, "sensor_id": "c", "avg_value": 3.0},
    ]
    live = DeltaTable(table_uri(SPEC, settings)).to_pyarrow_table()
    assert answer.num_rows == live.num_rows
    pruned = run_query(
        settings, f"SELECT count(*) AS n FROM gold.sensor_hourly WHERE event_date = '{second}'"
    )
    assert pruned.column("n").to_pylist() == [1]


def test_a_statement_needs_only_the_tables_it_reads(
    make_settings: Callable[..., Settings],
) -> None:
    """A table the statement does not read is not even opened: a broken log elsewhere in
    the lake does not stop the answer (and every other table's view costs nothing)."""
    settings = make_settings()
    day = date(2026, 11, 22)
    replace_partition(SPEC, settings, hourly(day, ["a"], 1.0), f"event_date = '{day}'")
    other = GOLD_DEVICE_HEALTH_DAILY
    log = Path(table_uri(other, settings)) / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("not a Delta commit\n")

    answer = run_query(settings, "SELECT sensor_id FROM gold.sensor_hourly")

    assert answer.to_pylist() == [{"sensor_id": "a"}]
    with pytest.raises(DeltaError, match="Json error"):
        run_query(settings, "SELECT count(*) FROM gold.device_health_daily")
    with pytest.raises(DeltaError, match="Json error"):  # named in a string: every view made
        run_query(settings, "SELECT * FROM query_table('gold.sensor_hourly')")
