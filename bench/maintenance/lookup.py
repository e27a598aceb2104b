"""The point lookup, timed as `lakehouse query` runs it: `query_with_scans` from a fresh
connection (opening the Delta log, choosing files, creating the views) to the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.envelope import summary
from lakehouse.query import TableScan, connect, query_with_scans
from lakehouse.settings import Settings


@dataclass(frozen=True)
class Lookup:
    """Repeated runs of one statement: seconds each, rows and what was listed."""

    sql: str
    seconds: list[float]
    rows: int
    scan: TableScan

    def stats_ms(self) -> dict[str, float]:
        """Count, min, percentiles and max of the runs, in milliseconds."""
        return {k: v if k == "n" else round(v * 1e3, 2) for k, v in summary(self.seconds).items()}


def point_lookup_sql(device: str, sensor: str) -> str:
    """One sensor's readings of the day: the seed's lookup by (device_id, sensor_id)."""
    return (
        "SELECT event_time, value FROM silver.sensor_readings "
        f"WHERE device_id = '{device}' AND sensor_id = '{sensor}'"
    )


def time_lookup(settings: Settings, sql: str, runs: int) -> Lookup:
    """`runs` timed runs after one untimed (the page cache warm, as for the CLI's usual
    case); every run must return the same rows."""
    first = query_with_scans(settings, sql)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = query_with_scans(settings, sql)
        seconds.append(time.perf_counter() - start)
        if answer.table.num_rows != first.table.num_rows:
            raise RuntimeError(f"{sql}: {answer.table.num_rows} rows, then {first.table.num_rows}")
    (scan,) = first.scans
    return Lookup(sql, seconds, first.table.num_rows, scan)


def time_full_view(settings: Settings, sql: str, runs: int) -> list[float]:
    """The same lookup over a view of every live file (`connect`, no skipping), timed the
    same way: what compaction alone gives, apart from skipping."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        connection = connect(settings)
        try:
            connection.sql(sql).to_arrow_table()
        finally:
            connection.close()
        seconds.append(time.perf_counter() - start)
    return seconds
