"""Timing: registration (Delta log to a DuckDB view), cold and warm query runs.

Two readers expose the same live files of the current Delta version: "arrow" is what
`lakehouse.query.register` does today (a delta-rs pyarrow dataset, scanned through
DuckDB's Arrow scan); "parquet" is DuckDB's own `read_parquet` over `file_uris()`, the
partition value parsed from the `event_date=...` folder (local lakes only: S3 would need
DuckDB's httpfs extension, which cannot be downloaded here).

"Cold" is a fresh DuckDB connection whose first query pays for opening the Delta table,
building the dataset and creating the view, as `lakehouse query` does on every call; the
OS page cache is warm (the files were just written), which is also the CLI's usual case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from bench.envelope import summary
from bench.queries.data import SPEC
from bench.queries.examples import Example
from lakehouse.delta import open_table
from lakehouse.settings import Settings


@dataclass
class Registration:
    """Seconds for each step of exposing the table to DuckDB."""

    open_table_s: float
    dataset_s: float
    view_s: float

    @property
    def total_s(self) -> float:
        return self.open_table_s + self.dataset_s + self.view_s


@dataclass
class QueryTiming:
    """One example's figures; `problem` is set if any answer failed its check."""

    key: str
    rows: int
    cold_s: float  # registration + first run on a fresh connection
    cold_query_s: float  # the first run alone
    warm_s: list[float] = field(default_factory=list)
    problem: str | None = None

    def warm_stats(self) -> dict[str, float]:
        return summary(self.warm_s)


def new_connection(threads: int | None) -> duckdb.DuckDBPyConnection:
    """A connection set up as `lakehouse.query.connect` sets it up."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    if threads:
        connection.execute(f"SET threads = {threads}")
    connection.execute('CREATE SCHEMA IF NOT EXISTS "gold"')
    return connection


READERS = ("arrow", "parquet")


def register(
    connection: duckdb.DuckDBPyConnection, settings: Settings, reader: str = "arrow"
) -> Registration:
    """`lakehouse.query.register` (or its read_parquet variant), step by step, timed."""
    start = time.perf_counter()
    table = open_table(SPEC, settings)
    if table is None:
        raise RuntimeError("sensor_hourly was not written")
    opened = time.perf_counter()
    view = f'"{SPEC.layer}"."{SPEC.name}"'
    if reader == "arrow":
        dataset = table.to_pyarrow_dataset()
        built = time.perf_counter()
        relation = f"__{SPEC.layer}_{SPEC.name}"
        connection.register(relation, dataset)
        connection.execute(f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "{relation}"')
    else:
        files = ", ".join("'" + uri.replace("'", "''") + "'" for uri in table.file_uris())
        built = time.perf_counter()
        connection.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{files}], "
            "hive_partitioning = true, hive_types = {'event_date': DATE})"
        )
    return Registration(opened - start, built - opened, time.perf_counter() - built)


def run(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, pa.Table]:
    """Seconds to the full Arrow answer, as the CLI fetches it."""
    start = time.perf_counter()
    answer = connection.sql(sql).to_arrow_table()
    return time.perf_counter() - start, answer


def time_example(
    example: Example, settings: Settings, repeats: int, threads: int | None, reader: str = "arrow"
) -> tuple[QueryTiming, Registration]:
    """Cold run on a fresh connection, then `repeats` warm runs on it, every answer checked."""
    connection = new_connection(threads)
    try:
        registration = register(connection, settings, reader)
        cold_query_s, answer = run(connection, example.sql)
        timing = QueryTiming(
            example.key, answer.num_rows, registration.total_s + cold_query_s, cold_query_s
        )
        timing.problem = example.check(answer)
        for _ in range(repeats):
            seconds, answer = run(connection, example.sql)
            timing.warm_s.append(seconds)
            timing.problem = timing.problem or example.check(answer)
        return timing, registration
    finally:
        connection.close()


def explain(settings: Settings, sql: str, threads: int | None, reader: str = "arrow") -> str:
    """EXPLAIN ANALYZE of one query on a warm connection, for the report of a miss."""
    connection = new_connection(threads)
    try:
        register(connection, settings, reader)
        run(connection, sql)
        rows = connection.sql(f"EXPLAIN ANALYZE {sql}").fetchall()
        return "\n".join(str(row[-1]) for row in rows)
    finally:
        connection.close()
