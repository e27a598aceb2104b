"""The core: settings, the catalog of topics and tables, Delta I/O through delta-rs, the
DuckDB query layer, the transforms, the features and the models. It imports nothing
from the packages above it (streaming, quality, assets, orchestration, cli)."""
