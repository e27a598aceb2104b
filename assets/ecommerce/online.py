"""Publishing the nightly recommendations to the online side: the recommendation service's
fallback when Redis, or the realtime path, fails.

One step writes one publication (`lakehouse.online.publication`): the champion's batch top
10 per user and the products with the most distinct buyers, switched in atomically, to the
file store (local profile) or DynamoDB (production-like). Two assets show the two halves
in the graph, each with what it wrote; they materialize together or not at all, because a
service must never pair one night's lists with another night's popularity.
"""

import dagster as dg

from assets.ecommerce.models import user_recommendations
from assets.partitions import DAILY, SINGLE_RUN, partition_days
from assets.resources import LakehouseResource
from assets.tables import online_key, online_spec
from lakehouse.catalog import SILVER_PURCHASES, Domain
from lakehouse.online.publication import publish_recommendations

ONLINE_RECOMMENDATIONS = online_key("recommendations")
"""The champion's batch top 10 per user, as published to the serving store."""
ONLINE_POPULAR_PRODUCTS = online_key("popular_products")
"""Products by distinct buyers over the recommender's history, as published."""


def _spec(key: dg.AssetKey, description: str, deps: list) -> dg.AssetSpec:
    return online_spec(key, Domain.ECOMMERCE, description, deps, {"python"})


@dg.multi_asset(
    specs=[
        _spec(
            ONLINE_RECOMMENDATIONS,
            "The recommender champion's batch top 10 per user, published to the service's "
            "fallback store (memory-mapped Arrow file, or DynamoDB).",
            [user_recommendations],
        ),
        _spec(
            ONLINE_POPULAR_PRODUCTS,
            "Products by distinct buyers over the recommender's history: the last fallback.",
            [SILVER_PURCHASES],
        ),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
)
def online_recommendations(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Publish the run's last day (only the champion's lists are ever published)."""
    published = publish_recommendations(lakehouse.settings(), partition_days(context)[-1])
    publication = published.publication
    common = {
        "publication_id": dg.MetadataValue.text(publication.publication_id),
        "model_version": dg.MetadataValue.int(publication.model_version),
        "store": dg.MetadataValue.text(published.store),
        "duration_s": dg.MetadataValue.float(round(published.seconds, 3)),
    }
    yield dg.MaterializeResult(
        asset_key=ONLINE_RECOMMENDATIONS,
        metadata={
            **common,
            "users": dg.MetadataValue.int(publication.users),
            "keys_written": dg.MetadataValue.int(published.keys_written),
            "bytes": dg.MetadataValue.int(published.bytes_written),
        },
    )
    yield dg.MaterializeResult(
        asset_key=ONLINE_POPULAR_PRODUCTS,
        metadata={**common, "products": dg.MetadataValue.int(publication.popular_products)},
    )
