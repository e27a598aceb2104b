"""Dagster software-defined assets, one module per domain and layer; thin wrappers over
lakehouse.transforms and lakehouse.models."""

import warnings

from dagster import BetaWarning

# The beta APIs these assets use on purpose (backfill_policy for single-run backfills,
# multi_observable_source_asset for bronze, allow_nonexistent_upstream_partitions for the
# windowed snapshots) warn at every import, in every process Dagster starts; the choice is
# made once, here, where they are used, and documented in architecture.md.
warnings.filterwarnings("ignore", category=BetaWarning)
