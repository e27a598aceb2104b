"""Dagster wiring: the code location, jobs, schedules, sensors, resources and instances."""

import warnings

from dagster import BetaWarning

# The beta APIs this code location uses on purpose (backfill_policy for single-run
# backfills, multi_observable_source_asset for bronze) warn at every import, in every
# process Dagster starts; the choice is made once, here, and documented in architecture.md.
warnings.filterwarnings("ignore", category=BetaWarning)
