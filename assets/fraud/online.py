"""Publishing the fraud decision service's context to Redis: each holder's lifetime
profile as of the day, and the category risk for the day after.

The service reads a holder's profile in the same pipelined round trip as their recent
payments (`lakehouse.online.fraud_state`), so it lives in Redis beside them. Profiles
expire after `fraud_profile_ttl_days`: a publisher that stops shows as missing profiles
(degraded decisions, counted), never as month-old ones.
"""

import dagster as dg

from assets.fraud.gold import gold_fraud_daily_stats, gold_fraud_user_profiles
from assets.partitions import DAILY, SINGLE_RUN, partition_days
from assets.resources import LakehouseResource
from assets.tables import online_key, online_spec
from lakehouse.catalog import Domain
from lakehouse.online.fraud_state import publish_fraud_state

ONLINE_FRAUD_PROFILES = online_key("fraud_user_profiles")
"""Holder profiles as of the day, in Redis, for the decision service."""
ONLINE_FRAUD_CATEGORY_RISK = online_key("fraud_category_risk")
"""The (category, channel) fraud-rate table for the next day, in Redis."""


def _spec(key: dg.AssetKey, description: str, deps: list) -> dg.AssetSpec:
    return online_spec(key, Domain.FRAUD, description, deps, {"python", "redis"})


@dg.multi_asset(
    specs=[
        _spec(ONLINE_FRAUD_PROFILES,
              "Each holder's lifetime profile as of the day, published to Redis for the fraud "
              "decision service's enrichment stage.", [gold_fraud_user_profiles]),
        _spec(ONLINE_FRAUD_CATEGORY_RISK,
              "The smoothed fraud rate per (merchant category, channel) over the 30 days up "
              "to the day, published to Redis for the next day's decisions.",
              [gold_fraud_daily_stats]),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
)
def online_fraud_state(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Publish the run's last day (the service needs only the newest)."""
    published = publish_fraud_state(lakehouse.settings(), partition_days(context)[-1])
    common = {
        "as_of": dg.MetadataValue.text(published.day.isoformat()),
        "duration_s": dg.MetadataValue.float(round(published.seconds, 3)),
    }
    yield dg.MaterializeResult(
        asset_key=ONLINE_FRAUD_PROFILES,
        metadata={**common, "keys_written": dg.MetadataValue.int(published.profiles),
                  "bytes": dg.MetadataValue.int(published.bytes_written)},
    )
    yield dg.MaterializeResult(
        asset_key=ONLINE_FRAUD_CATEGORY_RISK,
        metadata={**common, "pairs": dg.MetadataValue.int(published.risk_pairs)},
    )
