"""File skipping for queries over the lake.

A statement's WHERE clauses are read with DuckDB's own parser (`predicates`) and checked
against the per-file min/max statistics of the Delta log (`files`), so a view only lists
the files that can hold a matching row. Anything that cannot be proven safe prunes
nothing: a skipped file must never hold a row the query would have returned.
"""
