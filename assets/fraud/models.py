"""The fraud model: XGBoost retrained daily on the last `fraud_training_days`, and on all
history by the weekly run, compared with the champion on the same test day."""

import dagster as dg

from assets.partitions import partition_days
from assets.resources import LakehouseResource
from assets.training import TrainingConfig, model_asset, register_trained
from lakehouse.catalog import Domain
from lakehouse.models import fraud


@dg.asset(
    **model_asset(
        fraud.MODEL_NAME,
        Domain.FRAUD,
        "XGBoost fraud model on the shared transaction features: PR-AUC, recall and "
        "false-positive rate at the BLOCK threshold on the test day, against the rules.",
        deps=fraud.INPUTS,
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
