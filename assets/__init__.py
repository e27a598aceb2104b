"""Dagster software-defined assets, one module per domain and layer; thin wrappers over
lakehouse.transforms."""
