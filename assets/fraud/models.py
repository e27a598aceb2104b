"""The fraud model: XGBoost retrained daily on the last `fraud_training_days`, and on all
history by the weekly run, compared with the champion on the same test day."""

import dagster as dg

from assets.fraud.gold import gold_fraud_daily_stats, gold_fraud_user_profiles
from assets.fraud.silver import silver_transactions
from assets.partitions import partition_days
from assets.training import TrainingConfig, model_asset, register_trained
from lakehouse.models import fraud
from orchestration.resources import LakehouseResource


@dg.asset(
    **model_asset(
        fraud.MODEL_NAME,
        "fraud",
        "team:risk",
        "XGBoost fraud model on the shared transaction features: PR-AUC, recall and "
        "false-positive rate at the BLOCK threshold on the test day, against the rules.",
        deps=[silver_transactions, gold_fraud_user_profiles, gold_fraud_daily_stats],
        kinds={"xgboost"},
    )
)
def fraud_model(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, config: TrainingConfig
) -> dg.MaterializeResult:
    """Train as of the run's last day, register, promote only over the champion."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    window = None if config.full_history else settings.fraud_training_days
    training_data = fraud.training_data_versions(settings)
    trained = fraud.train_fraud_model(settings, last, window)
    return register_trained(
        context, settings, trained, training_data,
        rescore_champion=lambda current: fraud.rescore(settings, current, last),
    )
