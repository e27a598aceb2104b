"""Jobs: the medallion rebuild of silver and gold by day, and the bronze observation."""

import dagster as dg

from assets.bronze import bronze_tables

# Silver and gold by their layer tag, so the nightly ML and maintenance assets of later
# steps (untagged by layer) join the schedules through their own jobs, not this one.
MEDALLION = dg.AssetSelection.tag("layer", "silver") | dg.AssetSelection.tag("layer", "gold")

medallion_job = dg.define_asset_job(
    "medallion",
    selection=MEDALLION,
    description="Rebuild silver and gold for a day (or a range of days) from bronze.",
)

observe_bronze_job = dg.define_asset_job(
    "observe_bronze",
    selection=dg.AssetSelection.assets(bronze_tables),
    description="Record every bronze table's Delta version, rows and last commit.",
)
