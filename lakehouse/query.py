"""DuckDB over the lake: every catalogued Delta table visible as `layer.table`.

DuckDB's own delta extension needs a download that these machines cannot make, so the
Delta log is read by delta-rs: the view covers exactly the live files of the current
version. Local tables are read by DuckDB's Parquet reader over that file list (partition
values from the folder names); S3 tables, and tables using Delta features that change how
files are read, through a pyarrow dataset. Both push filters and projections down.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

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
    view = f'"{spec.layer}"."{spec.name}"'
    files = table.file_uris()
    if files and _parquet_readable(table, settings):
        connection.execute(f"CREATE OR REPLACE VIEW {view} AS {_read_parquet(spec, files)}")
        return True
    relation_name = f"__{spec.layer}_{spec.name}"
    connection.register(relation_name, table.to_pyarrow_dataset())
    connection.execute(f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "{relation_name}"')
    return True


def _parquet_readable(table: DeltaTable, settings: Settings) -> bool:
    """Whether DuckDB's own Parquet reader sees exactly what the Delta snapshot holds.

    It reads the snapshot's live files about 3.5 times faster than the Arrow dataset scan
    (bench/queries), but only locally (S3 would need DuckDB's httpfs extension, which
    cannot be downloaded here) and only without Delta features that change how files are
    read (deletion vectors, column mapping).
    """
    if settings.lake_is_s3:
        return False
    features = set(table.protocol().reader_features or [])
    return not features & {"deletionVectors", "columnMapping"}


def _read_parquet(spec: TableSpec, files: list[str]) -> str:
    """SELECT over the live files; partition values come from the `col=value` folders."""
    listed = ", ".join("'" + uri.removeprefix("file://").replace("'", "''") + "'" for uri in files)
    types = ", ".join(
        f"'{name}': {_duckdb_type(spec.schema.field(name).type)}" for name in spec.partition_by
    )
    hive = f", hive_partitioning = true, hive_types = {{{types}}}" if spec.partition_by else ""
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true{hive})"


def _duckdb_type(dtype: pa.DataType) -> str:
    if pa.types.is_date32(dtype):
        return "DATE"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    return "VARCHAR"


def run_query(settings: Settings, sql: str) -> pa.Table:
    """Answer one SQL statement over the lake as an Arrow table."""
    connection = connect(settings)
    try:
        return connection.sql(sql).to_arrow_table()
    finally:
        connection.close()
