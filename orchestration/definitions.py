"""The Dagster code location: assembles assets, jobs, schedules, sensors and resources;
holds no logic."""

import dagster as dg

from assets.bronze import bronze_freshness, bronze_tables
from assets.ecommerce import gold as ecommerce_gold
from assets.ecommerce import silver as ecommerce_silver
from assets.fraud import gold as fraud_gold
from assets.fraud import silver as fraud_silver
from assets.iot import gold as iot_gold
from assets.iot import silver as iot_silver
from orchestration.jobs import medallion_job, observe_bronze_job
from orchestration.resources import LakehouseResource
from orchestration.schedules import nightly_medallion, weekly_full_reprocessing
from orchestration.sensors import bronze_advanced

defs = dg.Definitions(
    assets=[
        bronze_tables,
        *dg.load_assets_from_modules(
            [
                ecommerce_silver,
                ecommerce_gold,
                fraud_silver,
                fraud_gold,
                iot_silver,
                iot_gold,
            ]
        ),
    ],
    asset_checks=[bronze_freshness],
    jobs=[medallion_job, observe_bronze_job],
    schedules=[nightly_medallion, weekly_full_reprocessing],
    sensors=[bronze_advanced],
    resources={"lakehouse": LakehouseResource()},
)
