"""The Dagster code location: assembles assets, jobs, schedules, sensors and resources;
holds no logic."""

import dagster as dg

from assets.bronze import bronze_freshness, bronze_tables
from assets.ecommerce import gold as ecommerce_gold
from assets.ecommerce import models as ecommerce_models
from assets.ecommerce import online as ecommerce_online
from assets.ecommerce import real_data as ecommerce_real_data
from assets.ecommerce import silver as ecommerce_silver
from assets.fraud import gold as fraud_gold
from assets.fraud import models as fraud_models
from assets.fraud import online as fraud_online
from assets.fraud import silver as fraud_silver
from assets.iot import gold as iot_gold
from assets.iot import models as iot_models
from assets.iot import real_data as iot_real_data
from assets.iot import silver as iot_silver
from assets.maintenance import compaction as maintenance_compaction
from assets.maintenance import housekeeping as maintenance_housekeeping
from assets.maintenance import tiering as maintenance_tiering
from assets.resources import platform_resources
from orchestration.jobs import (
    daily_models_job,
    medallion_job,
    nightly_maintenance_job,
    observe_bronze_job,
    real_data_evaluations_job,
    weekly_maintenance_job,
    weekly_models_job,
)
from orchestration.schedules import (
    nightly_maintenance,
    nightly_medallion,
    nightly_models,
    weekly_full_reprocessing,
    weekly_maintenance,
    weekly_models,
)
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
                ecommerce_models,
                ecommerce_online,
                ecommerce_real_data,
                fraud_models,
                fraud_online,
                iot_models,
                iot_real_data,
                maintenance_compaction,
                maintenance_housekeeping,
                maintenance_tiering,
            ]
        ),
    ],
    asset_checks=[bronze_freshness],
    jobs=[
        medallion_job,
        observe_bronze_job,
        daily_models_job,
        weekly_models_job,
        nightly_maintenance_job,
        weekly_maintenance_job,
        real_data_evaluations_job,
    ],
    schedules=[
        nightly_medallion,
        weekly_full_reprocessing,
        nightly_models,
        weekly_models,
        nightly_maintenance,
        weekly_maintenance,
    ],
    sensors=[bronze_advanced],
    resources=platform_resources(),
)
