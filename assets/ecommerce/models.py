"""Collaborative filtering: ALS retrained daily on the interactions of the last
`recommendation_history_days`, and the champion's batch top 10 per user, the
recommendation service's fallback."""

from collections.abc import Iterator

import dagster as dg

from assets.ecommerce.silver import silver_cart_events, silver_clickstream, silver_purchases
from assets.metadata import preview, table_metadata
from assets.partitions import partition_days
from assets.training import model_asset, register_trained
from lakehouse.catalog import CATALOG
from lakehouse.models import recommender
from orchestration.resources import LakehouseResource
from quality.gate import BlockedWrite, QualityGate, check_specs

_OWNER = "team:personalization"


@dg.asset(
    **model_asset(
        recommender.MODEL_NAME,
        "ecommerce",
        _OWNER,
        "Implicit-feedback ALS on weighted views, cart adds and orders: precision@10, "
        "recall@10 and coverage on the held-out day against popularity.",
        deps=[silver_clickstream, silver_cart_events, silver_purchases],
        kinds={"implicit"},
    )
)
def recommender_model(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Train as of the run's last day (held out), register, promote only over the champion."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    training_data = recommender.training_data_versions(settings)
    trained = recommender.train_recommender(settings, last)
    return register_trained(
        context, settings, trained, training_data,
        rescore_champion=lambda current: recommender.rescore(settings, current, last),
    )


_RECOMMENDATIONS = "models.user_recommendations"


@dg.asset(
    **model_asset(
        "user_recommendations",
        "ecommerce",
        _OWNER,
        CATALOG.table(_RECOMMENDATIONS).description,
        deps=[recommender_model],
        kinds={"deltalake"},
        check_specs=check_specs(_RECOMMENDATIONS),
    )
)
def user_recommendations(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The recommender champion's top 10 for every user it knows, as of the run's last day
    (a backfill of older days would only write today's champion under their dates)."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    gate = QualityGate(settings)
    try:
        rows = recommender.build_user_recommendations_partition(settings, last, gate)
    except BlockedWrite as blocked:
        yield from gate.results(_RECOMMENDATIONS)
        raise dg.Failure(description=str(blocked), allow_retries=False) from blocked
    metadata = table_metadata(CATALOG.table(_RECOMMENDATIONS), settings, rows, last.isoformat())
    metadata["model_version"] = dg.MetadataValue.int(rows["model_version"][0].as_py())
    metadata["sample"] = preview(rows.slice(0, 20), limit=20)
    yield dg.MaterializeResult(metadata=metadata, check_results=gate.results(_RECOMMENDATIONS))
