"""Transformations as plain functions (Arrow in, Arrow out) that assets, tests and
benchmarks all call; DuckDB does the relational work. A `<domain>_spark` module beside a
domain's module holds the Spark twins of its transforms (Spark DataFrames in and out, the
same SQL text where both engines read it alike); only those modules import pyspark."""
