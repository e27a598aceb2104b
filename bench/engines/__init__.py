"""Benchmark: the same gold build on DuckDB and on Spark (`python -m bench.engines`)."""
