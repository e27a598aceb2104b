"""Collaborative filtering: ALS retrained daily on the interactions of the last
`recommendation_history_days`, and the champion's batch top 10 per user, the
recommendation service's fallback."""

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from assets.checks import check_results
from assets.daily import Results
from assets.metadata import preview, table_metadata
from assets.partitions import partition_days
from assets.resources import LakehouseResource, transform_on_engine
from assets.tables import check_specs
from assets.training import model_asset, register_trained
from lakehouse.catalog import USER_RECOMMENDATIONS, Domain
from lakehouse.models import recommender
from quality.gate import BlockedWrite, QualityGate


@dg.asset(
    **model_asset(
        recommender.MODEL_NAME,
        Domain.ECOMMERCE,
        "Implicit-feedback ALS on weighted views, cart adds and orders: precision@10, "
        "recall@10 and coverage on the held-out day against popularity (distinct users).",
        deps=recommender.INPUTS,
        kinds={"implicit"},
    )
)
def recommender_model(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: LazyPySparkResource
) -> dg.MaterializeResult:
    """Train as of the run's last day (held out), on `LAKEHOUSE_ENGINE`'s ALS (`implicit`
    in process, or MLlib on Spark), register, promote only over the champion."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    training_data = recommender.training_data_versions(settings)
    train = transform_on_engine(context, settings, spark, recommender.train_recommender)
    trained = train(settings, last)
    return register_trained(
        context, settings, trained, training_data,
        rescore_champion=lambda current: recommender.rescore(settings, current, last),
    )


@dg.asset(
    **model_asset(
        USER_RECOMMENDATIONS.name,
        Domain.ECOMMERCE,
        USER_RECOMMENDATIONS.description,
        deps=[recommender_model],
        kinds={"deltalake"},
        check_specs=check_specs(USER_RECOMMENDATIONS),
    )
)
def user_recommendations(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> Results:
    """The recommender champion's top 10 for every user it knows, as of the run's last day
    (a backfill of older days would only write today's champion under their dates)."""
    settings = lakehouse.settings()
    last = partition_days(context)[-1]
    gate = QualityGate(settings)
    try:
        rows = recommender.build_user_recommendations_partition(settings, last, gate)
    except BlockedWrite as blocked:
        yield from check_results(gate, USER_RECOMMENDATIONS)
        raise dg.Failure(description=str(blocked), allow_retries=False) from blocked
    metadata = table_metadata(USER_RECOMMENDATIONS, settings, rows, last.isoformat())
    metadata["model_version"] = dg.MetadataValue.int(rows["model_version"][0].as_py())
    metadata["sample"] = preview(rows.slice(0, 20), limit=20)
    yield dg.MaterializeResult(
        metadata=metadata, check_results=check_results(gate, USER_RECOMMENDATIONS)
    )
