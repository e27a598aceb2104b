"""Jobs: the medallion rebuild of silver and gold by day, the bronze observation, the
model training (daily: recommender and fraud; weekly: fraud on all history and failure),
the table maintenance (nightly: compaction and tiering; weekly: with retention and
vacuum), and the evaluations on public data (on demand)."""

import dagster as dg

from assets.bronze import bronze_tables
from assets.ecommerce.models import recommender_model, user_recommendations
from assets.ecommerce.online import online_recommendations
from assets.ecommerce.real_data import RETAIL_HEADLINES, online_retail_recommenders
from assets.fraud.models import fraud_model
from assets.fraud.online import online_fraud_state
from assets.iot.models import failure_model
from assets.iot.real_data import (
    NAB_HEADLINES,
    RUL_HEADLINES,
    cmapss_rul,
    nab_machine_temperature,
)
from assets.maintenance.compaction import COMPACTION_ASSETS
from assets.maintenance.housekeeping import retention, vacuum
from assets.maintenance.tiering import s3_lifecycle, storage_costs
from lakehouse.catalog import Layer

# Silver and gold by their layer tag, so the nightly ML and maintenance assets of later
# steps (tagged otherwise) join the schedules through their own jobs, not this one.
MEDALLION = dg.AssetSelection.tag("layer", Layer.SILVER.value) | dg.AssetSelection.tag(
    "layer", Layer.GOLD.value
)

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

# Each model job names its assets, since the fraud model runs in both (daily on its
# window, weekly on all history) and failure prediction only weekly.
daily_models_job = dg.define_asset_job(
    "train_daily_models",
    selection=dg.AssetSelection.assets(
        recommender_model,
        user_recommendations,
        online_recommendations,
        fraud_model,
        online_fraud_state,
    ),
    description="Retrain the recommender and the fraud model as of a day; refresh the batch "
    "recommendations from the recommender champion and publish them to the online store; "
    "publish the holder profiles and category risk for the fraud decision service.",
)

# The weekly run's fraud model learns from every day there is.
WEEKLY_MODELS_CONFIG = {
    "ops": {fraud_model.key.to_python_identifier(): {"config": {"full_history": True}}}
}

weekly_models_job = dg.define_asset_job(
    "train_weekly_models",
    selection=dg.AssetSelection.assets(fraud_model, failure_model),
    config=WEEKLY_MODELS_CONFIG,
    description="Retrain the fraud model on every day there is, and the failure model.",
)

NIGHTLY_MAINTENANCE = dg.AssetSelection.assets(*COMPACTION_ASSETS, s3_lifecycle, storage_costs)

nightly_maintenance_job = dg.define_asset_job(
    "nightly_maintenance",
    selection=NIGHTLY_MAINTENANCE,
    description="Compact a day's partitions of every table, layer by layer; apply the S3 "
    "lifecycle rules and tag removed files; report the storage cost.",
)

weekly_maintenance_job = dg.define_asset_job(
    "weekly_maintenance",
    selection=NIGHTLY_MAINTENANCE | dg.AssetSelection.assets(retention, vacuum),
    description="The nightly maintenance, plus retention (partitions past each table's "
    "retention) and VACUUM with checkpoints and log cleanup.",
)

# On demand only (no schedule): the public data sets do not change from day to day.
real_data_evaluations_job = dg.define_asset_job(
    "real_data_evaluations",
    selection=dg.AssetSelection.assets(
        online_retail_recommenders, cmapss_rul, nab_machine_temperature
    ),
    description="Judge the models on public data: the recommenders on UCI Online Retail; "
    "train, evaluate and register the remaining-useful-life model on NASA C-MAPSS FD001; "
    "score NAB's reference detectors on its machine temperature series.",
)

# What `lakehouse evaluate real-data` prints of each evaluation's materialization, keyed by
# the asset that records it: the job's selection, asset by asset.
REAL_DATA_HEADLINES: dict[dg.AssetKey, dict[str, str]] = {
    online_retail_recommenders.key: RETAIL_HEADLINES,
    cmapss_rul.key: RUL_HEADLINES,
    nab_machine_temperature.key: NAB_HEADLINES,
}
