"""DuckDB over the lake: every catalogued Delta table visible as `layer.table`.

DuckDB's own delta extension needs a download that these machines cannot make, so each
table is registered as a pyarrow dataset built by delta-rs from the Delta log (only the
live files of the current version). DuckDB pushes filters and projections into the scan.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from lakehouse.catalog import CATALOG, Catalog, Layer, TableSpec
from lakehouse.delta import open_table
from lakehouse.settings import Settings


def connect(
    settings: Settings,
    catalog: Catalog = CATALOG,
    layers: Iterable[Layer] = tuple(Layer),
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per existing table in `layers`."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # the lake's timestamps and dates are UTC
    wanted = set(layers)
    for layer in wanted:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
    for spec in catalog.tables.values():
        if spec.layer in wanted:
            register(connection, spec, settings)
    return connection


def register(connection: duckdb.DuckDBPyConnection, spec: TableSpec, settings: Settings) -> bool:
    """Expose one table as `layer.name`; False if the table does not exist yet."""
    table = open_table(spec, settings)
    if table is None:
        return False
    dataset = table.to_pyarrow_dataset()
    relation_name = f"__{spec.layer}_{spec.name}"
    connection.register(relation_name, dataset)
    connection.execute(
        f'CREATE OR REPLACE VIEW "{spec.layer}"."{spec.name}" AS SELECT * FROM "{relation_name}"'
    )
    return True


def run_query(settings: Settings, sql: str) -> pa.Table:
    """Answer one SQL statement over the lake as an Arrow table."""
    connection = connect(settings)
    try:
        return connection.sql(sql).to_arrow_table()
    finally:
        connection.close()
