"""The assets through Dagster: bronze observed, silver and gold materialized by partition,
idempotently, under the real Definitions; and generated traffic end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
from deltalake import DeltaTable

from assets.bronze import bronze_tables
from assets.iot.gold import gold_sensor_hourly
from assets.iot.silver import silver_sensor_readings
from assets.partitions import DAILY
from assets.resources import platform_resources
from assets.tables import asset_key
from assets.training import model_key
from lakehouse.catalog import (
    CATALOG,
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_USER_PROFILES,
    GOLD_SENSOR_HOURLY,
    REJECTED_ROWS,
    SILVER_SENSOR_READINGS,
    SILVER_TRANSACTIONS,
    USER_RECOMMENDATIONS,
    table_uri,
)
from lakehouse.models import fraud as fraud_model
from lakehouse.models import recommender
from lakehouse.settings import Settings
from orchestration.definitions import defs
from streaming.generators import make_generator
from streaming.ingest.worker import IngestOptions, IngestWorker
from streaming.producer import produce
from tests.test_silver import DAY, NOON, land, reading


def test_every_group_has_exactly_one_owning_team() -> None:
    owners: dict[str | None, set[str]] = {}
    for spec in defs.resolve_all_asset_specs():
        owners.setdefault(spec.group_name, set()).update(spec.owners)
    assert owners == {
        "ecommerce": {"team:personalization"},
        "fraud": {"team:risk"},
        "iot": {"team:iot"},
        "maintenance": {"team:data-platform"},
        "platform": {"team:data-platform"},
        "real_data": {"team:iot"},
    }


def test_the_definitions_hold_the_expected_assets() -> None:
    keys = sorted(key.to_user_string() for key in defs.resolve_all_asset_keys())
    assert keys == [
        "bronze/cart_events",
        "bronze/clickstream",
        "bronze/engine_cycles",
        "bronze/fraud_decisions",
        "bronze/iot_alerts",
        "bronze/purchases",
        "bronze/quarantine",
        "bronze/search",
        "bronze/sensor_readings",
        "bronze/transactions",
        "evaluations/nab_machine_temperature",
        "evaluations/online_retail_recommenders",
        "gold/ab_test_daily",
        "gold/device_alerts_daily",
        "gold/device_health_daily",
        "gold/fraud_daily_stats",
        "gold/fraud_decision_quality",
        "gold/fraud_user_daily",
        "gold/fraud_user_profiles",
        "gold/iot_alert_history",
        "gold/product_daily",
        "gold/product_trending",
        "gold/sensor_hourly",
        "gold/session_funnel_daily",
        "gold/user_activity_daily",
        "gold/user_features",
        "maintenance/bronze_compaction",
        "maintenance/gold_compaction",
        "maintenance/models_compaction",
        "maintenance/retention",
        "maintenance/s3_lifecycle",
        "maintenance/silver_compaction",
        "maintenance/storage_costs",
        "maintenance/vacuum",
        "models/cmapss_rul",
        "models/fraud_xgboost",
        "models/iot_failure",
        "models/recommender_als",
        "models/user_recommendations",
        "online/fraud_category_risk",
        "online/fraud_user_profiles",
        "online/popular_products",
        "online/recommendations",
        "silver/cart_events",
        "silver/clickstream",
        "silver/engine_cycles",
        "silver/fraud_decisions",
        "silver/iot_alerts",
        "silver/purchases",
        "silver/search",
        "silver/sensor_readings",
        "silver/transactions",
    ]
    graph = defs.resolve_asset_graph()
    gold = graph.get(asset_key(GOLD_SENSOR_HOURLY))
    assert gold.parent_keys == {asset_key(SILVER_SENSOR_READINGS)}
    assert gold.group_name == "iot"
    for topic in CATALOG.topics.values():
        silver = graph.get(asset_key(CATALOG.silver_for_topic(topic)))
        assert silver.parent_keys == {asset_key(CATALOG.bronze_for_topic(topic))}
        assert silver.group_name == topic.domain.value
        assert silver.partitions_def == DAILY
    recommendations = graph.get(asset_key(USER_RECOMMENDATIONS))
    assert recommendations.parent_keys == {model_key(recommender.MODEL_NAME)}
    fraud = graph.get(model_key(fraud_model.MODEL_NAME))
    assert fraud.parent_keys == {
        asset_key(SILVER_TRANSACTIONS),
        asset_key(GOLD_FRAUD_USER_PROFILES),
        asset_key(GOLD_FRAUD_DAILY_STATS),
    }


def test_a_partition_materializes_bronze_to_gold_and_again_identically(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land(
        settings,
        reading("a", value=50.0, offset=1),
        reading("b", value=54.0, offset=2),
        reading("a", value=50.0, offset=3, landed_after=60),  # a redelivery
        reading("x", value=float("nan"), offset=4),
    )
    resources = platform_resources(settings.lakehouse_root)

    observed = dg.materialize([bronze_tables], selection=[bronze_tables], resources=resources)
    assert observed.success
    observations = [
        event.asset_observation_data.asset_observation
        for event in observed.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    versions = {
        o.asset_key.to_user_string(): o.tags.get("dagster/data_version") for o in observations
    }
    assert versions["bronze/sensor_readings"] == "1"

    for _ in range(2):
        result = dg.materialize(
            [silver_sensor_readings, gold_sensor_hourly],
            partition_key=DAY.isoformat(),
            resources=resources,
        )
        assert result.success
        gold = DeltaTable(table_uri(GOLD_SENSOR_HOURLY, settings))
        rows = gold.to_pyarrow_table().to_pylist()
        assert [(r["hour"], r["readings"], r["avg_value"]) for r in rows] == [(NOON, 2, 52.0)]

    silver_key = asset_key(SILVER_SENSOR_READINGS)
    (silver_metadata,) = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == silver_key
    ]
    assert silver_metadata["duplicates_dropped"].value == 1
    assert silver_metadata["rows_rejected"].value == 1
    assert silver_metadata["dagster/row_count"].value == 2


def test_generated_traffic_lands_in_silver_once_per_event(settings: Settings) -> None:
    """Generators -> Kafka -> ingest -> bronze -> every silver asset, for one day."""
    start = datetime(2026, 11, 22, tzinfo=UTC)
    for domain, events in (("ecommerce", 6_000), ("fraud", 2_000), ("iot", 3_000)):
        produce(settings, make_generator(domain, seed=7, start=start), events, progress=False)
    options = IngestOptions(topics=list(CATALOG.topics), until_idle=True, handle_signals=False)
    IngestWorker(settings, options).run()

    resources = platform_resources(settings.lakehouse_root)
    silver_assets = [
        asset
        for asset in defs.assets
        if isinstance(asset, dg.AssetsDefinition)
        and all(key.path[0] == "silver" for key in asset.keys)
    ]
    assert len(silver_assets) == len(CATALOG.topics)
    result = dg.materialize(
        silver_assets, partition_key=start.date().isoformat(), resources=resources
    )
    assert result.success

    # The generators simulate every topic but the decision service's own.
    for topic in (topic.name for topic in CATALOG.topics.values() if topic.generated):
        bronze = DeltaTable(table_uri(CATALOG.bronze_for_topic(topic), settings)).to_pyarrow_table()
        distinct = len(set(bronze.column("event_id").to_pylist()))
        silver = DeltaTable(table_uri(CATALOG.silver_for_topic(topic), settings)).to_pyarrow_table()
        ids = silver.column("event_id").to_pylist()
        assert len(ids) == len(set(ids)), topic
        assert 0 < len(ids) <= distinct, topic
    # Clean generated traffic breaks no rule: the rules and the generators share a contract.
    rejected = DeltaTable(table_uri(REJECTED_ROWS, settings))
    assert rejected.to_pyarrow_table().to_pylist()[:3] == []
    readings = DeltaTable(table_uri(SILVER_SENSOR_READINGS, settings))
    bronze_readings = DeltaTable(table_uri(CATALOG.bronze_for_topic("sensor_readings"), settings))
    # The IoT generator redelivers some readings: silver holds fewer rows than bronze.
    assert readings.to_pyarrow_table().num_rows < bronze_readings.to_pyarrow_table().num_rows
