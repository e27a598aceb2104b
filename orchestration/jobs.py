"""Jobs: the medallion rebuild of silver and gold by day, the bronze observation, and the
model training (daily: recommender and fraud; weekly: fraud on all history and failure)."""

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

# Model assets carry `layer: models`; each job names its own by key, since the fraud model
# runs in both (daily on its window, weekly on all history) and failure prediction only
# weekly.
_RECOMMENDER = dg.AssetSelection.assets(
    ["models", "recommender_als"], ["models", "user_recommendations"]
)
_FRAUD = dg.AssetSelection.assets(["models", "fraud_xgboost"])
_FAILURE = dg.AssetSelection.assets(["models", "iot_failure"])

daily_models_job = dg.define_asset_job(
    "train_daily_models",
    selection=_RECOMMENDER | _FRAUD,
    description="Retrain the recommender and the fraud model as of a day; refresh the batch "
    "recommendations from the recommender champion.",
)

# The weekly run's fraud model learns from every day there is.
WEEKLY_MODELS_CONFIG = {"ops": {"models__fraud_xgboost": {"config": {"full_history": True}}}}

weekly_models_job = dg.define_asset_job(
    "train_weekly_models",
    selection=_FRAUD | _FAILURE,
    config=WEEKLY_MODELS_CONFIG,
    description="Retrain the fraud model on every day there is, and the failure model.",
)
