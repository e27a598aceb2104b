"""The DuckDB sessions the local transforms run in: UTC, and bounded in memory.

Every silver and gold build computes in fresh in-memory DuckDB sessions. Left alone,
DuckDB may take 80% of the machine's memory; here each session gets the settings'
`duckdb_memory_limit` and spills past it into a folder of its own under
`duckdb_spill_dir` (DuckDB names its spill files alike in every process, so the Dagster
steps that run side by side must not share one folder), removed when the session ends.
That is what keeps a day of any size within a configured memory: the sorts, joins,
aggregates and the staged day of a build go to disk instead of failing.

The pure transforms (a gold table's SQL over Arrow) know nothing of settings; the build
that calls them sets the bounds for every session opened inside `bounded(settings)` (the
asset layer wraps each local build in it), the way `decimal.localcontext` scopes a
precision. A session opened outside it has DuckDB's defaults.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import duckdb

from lakehouse.settings import Settings

_BOUNDS: ContextVar[Settings | None] = ContextVar("duckdb_bounds", default=None)

SAFE_WITH_NAN = {"disabled_optimizers": "statistics_propagation"}
"""DuckDB (2.0.1) trusts a Parquet file's min and max of a double column, which leave
NaN out (as the Parquet spec says they must), to decide a filter before reading a row:
over a file holding 50.0, NaN and 54.0, `NOT isnan(value)` kept all three rows, so a NaN
reading on a day without redeliveries passed silver's `value_finite` rule. Without the
statistics propagation the rules' predicates are evaluated on every row. (A bare
comparison pushed into the scan, `isnan(value)` or `value > 60` alone, still prunes by
those statistics: the rules are never bare, each is `coalesce((rule), false)`.)"""


def connect(**config: str | int) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection as the lake is read: in UTC (the lake's timestamps and dates
    are UTC), safe with NaN (`SAFE_WITH_NAN`), with `config` on top. Every connection of
    the platform, a build's session or the ad-hoc query engine's, opens here.

    DuckDB draws a progress bar on stderr for any query past two seconds, terminal or not:
    carriage-return frames that end up in Dagster's compute logs, the services' JSON log
    streams and the benchmarks' child logs. It is drawn only where stderr is a terminal
    (a `lakehouse query` typed by a person); a process without a stderr (`sys.stderr` is
    None: started detached, or by `pythonw`) gets none."""
    connection = duckdb.connect(config={**SAFE_WITH_NAN, **config})
    terminal = sys.stderr is not None and sys.stderr.isatty()
    connection.execute(f"SET enable_progress_bar = {str(terminal).lower()}")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


@contextmanager
def bounded(settings: Settings) -> Iterator[None]:
    """Every session opened inside gets `settings`' memory limit, spill folder and threads."""
    token = _BOUNDS.set(settings)
    try:
        yield
    finally:
        _BOUNDS.reset(token)


@contextmanager
def session(settings: Settings | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB session in UTC, bounded by `settings` (or by the enclosing
    `bounded`), closed and its spill folder removed on exit."""
    settings = settings or _BOUNDS.get()
    config: dict[str, str | int] = {}
    spill = None
    if settings is not None:
        settings.duckdb_spill.mkdir(parents=True, exist_ok=True)
        spill = tempfile.mkdtemp(prefix="session-", dir=settings.duckdb_spill)
        config |= {"memory_limit": settings.duckdb_memory_limit, "temp_directory": spill}
        if settings.duckdb_threads is not None:
            config["threads"] = settings.duckdb_threads
    try:
        connection = connect(**config)
        try:
            yield connection
        finally:
            connection.close()
    finally:
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


@dataclass(frozen=True)
class Staged:
    """A day staged in a table of a DuckDB session, as a build hands it to the write and
    to the checks: the connection comes with it, because a relation does not expose its
    own, and whoever reads the day (GX's SQL engine, through a cursor of this connection)
    reads it where it lies, under the session's memory limit, instead of a copy."""

    connection: duckdb.DuckDBPyConnection
    table: str

    def relation(self) -> duckdb.DuckDBPyRelation:
        """The staged table as a relation of its session."""
        return self.connection.table(self.table)
