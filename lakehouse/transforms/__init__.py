"""Transformations as plain functions (Arrow in, Arrow out) that assets, tests and
benchmarks all call; DuckDB does the relational work."""
