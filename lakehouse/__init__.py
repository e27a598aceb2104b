"""Storage and query layer: catalog, settings, Delta I/O, DuckDB, embedded broker."""
