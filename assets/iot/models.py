"""Failure prediction: XGBoost on device-hour features, retrained weekly on every day of
hourly aggregates, compared with the champion on the same test hours."""

import dagster as dg

from assets.partitions import partition_days
from assets.resources import LakehouseResource
from assets.training import model_asset, register_trained
from lakehouse.catalog import GOLD_SENSOR_HOURLY, Domain
from lakehouse.delta import first_partition
from lakehouse.models import failure


@dg.asset(
    **model_asset(
        failure.MODEL_NAME,
        Domain.IOT,
        f"Will a machine fail within {failure.HORIZON_HOURS} h? XGBoost on device-hour "
        "features against a threshold on the largest sensor deviation: PR-AUC, recall and "
        "per-failure recall with lead time on the test hours.",
        deps=failure.INPUTS,
        kinds={"xgboost"},
    )
)
def failure_model(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Train on every day of hourly aggregates up to the run's last day, register."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    first = first_partition(GOLD_SENSOR_HOURLY, settings)
    if first is None or first > last:
        raise dg.Failure(
            description=f"{GOLD_SENSOR_HOURLY.key} holds no day up to {last}: nothing to "
            "learn from",
            allow_retries=False,
        )
    training_data = failure.training_data_versions(settings)
    trained = failure.train_failure_model(settings, first, last)
    return register_trained(
        context, settings, trained, training_data,
        rescore_champion=lambda current: failure.rescore(settings, current, first, last),
    )
