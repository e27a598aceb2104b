"""The whole graph, bronze to gold, under both profiles with the same asset code:

- local: SQLite Dagster storage under LAKEHOUSE_HOME, the lake in a folder;
- production-like: Dagster storage in the machine's PostgreSQL, the lake on S3 (a local
  moto_server), Kafka from configuration (the test broker).

Traffic for all three domains goes through Kafka and the ingest sidecar first, so every
silver and gold asset has real input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import orjson
import pytest
from dagster_postgres import PostgresRunStorage

from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.catalog import CATALOG, ENGINE_CYCLES, FRAUD_DECISIONS, IOT_ALERTS, Layer
from lakehouse.delta import table_stats
from lakehouse.settings import Profile, Settings
from orchestration.definitions import defs
from orchestration.instance import dagster_instance
from orchestration.materialize import observe_bronze, rebuild_days
from streaming.generators import make_generator
from streaming.ingest.worker import IngestOptions, IngestWorker
from streaming.producer import produce
from tests.conftest import s3_client, s3_lake_options
from tests.support.fraud_audit import decisions_for
from tests.support.importing import engine_cycles_messages
from tests.support.iot_alerts import alerts_for
from tests.support.traffic import produce as send

START = datetime(2026, 11, 22, tzinfo=UTC)
EVENTS = {"ecommerce": 6_000, "fraud": 2_000, "iot": 3_000}

SILVER_AND_GOLD = sorted(
    key.to_user_string()
    for key in defs.resolve_asset_graph().materializable_asset_keys
    if key.path[0] in ("silver", "gold")
)


def land_a_day(settings: Settings) -> None:
    """Generated traffic for every domain, produced to Kafka and landed in bronze, with
    a decision of the fraud service for every generated transaction, an alert for every
    labelled spike and two imported engines' cycles."""
    for domain, events in EVENTS.items():
        produce(settings, make_generator(domain, seed=11, start=START), events, progress=False)
    fraud = make_generator("fraud", seed=11, start=START).batches(EVENTS["fraud"])
    payments = [orjson.loads(value) for batch in fraud for value in batch.values]
    send(settings, FRAUD_DECISIONS.name, decisions_for(payments))
    iot = make_generator("iot", seed=11, start=START).batches(EVENTS["iot"])
    readings = [orjson.loads(value) for batch in iot for value in batch.values]
    send(settings, IOT_ALERTS.name, alerts_for(readings))
    send(settings, ENGINE_CYCLES.name, engine_cycles_messages(START.date()))
    options = IngestOptions(topics=list(CATALOG.topics), until_idle=True, handle_signals=False)
    IngestWorker(settings, options).run()


def materialize_everything(instance: dg.DagsterInstance) -> None:
    """Observe bronze, then one medallion run for the day; every table must come out."""
    observed = observe_bronze(instance)
    assert observed.success
    assert len(observed.assets) == len(list(CATALOG.in_layer(Layer.BRONZE)))
    run = rebuild_days(START.date(), instance=instance)
    assert run.success, f"run {run.run_id} failed"
    assert list(run.assets) == SILVER_AND_GOLD


def assert_every_table_holds_the_day(settings: Settings) -> None:
    for key in SILVER_AND_GOLD:
        spec = CATALOG.table(key.replace("/", "."))
        stats = table_stats(spec, settings)
        assert stats is not None, key
        assert stats.rows > 0, key


def test_the_whole_graph_materializes_under_the_local_profile(
    settings: Settings, activate: Callable[[Settings], None]
) -> None:
    land_a_day(settings)
    activate(settings)
    instance = dagster_instance(settings)
    materialize_everything(instance)
    assert_every_table_holds_the_day(settings)
    # The runs are recorded where `dagster dev` (root dagster.yaml) looks for them.
    assert (settings.home / "dagster" / "history" / "runs.db").exists()
    assert {run.job_name for run in instance.get_runs()} == {"observe_bronze", "medallion"}


def test_the_whole_graph_materializes_under_the_production_like_profile(
    broker: EmbeddedBroker,
    make_settings: Callable[..., Settings],
    moto_server: str,
    s3_bucket: str,
    postgres_database: str,
    activate: Callable[[Settings], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(
        lakehouse_profile=Profile.PRODUCTION_LIKE,
        **s3_lake_options(moto_server, s3_bucket),
        kafka_bootstrap_servers=broker.bootstrap,
    )
    ensure_topics(settings)
    land_a_day(settings)
    activate(settings)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_database)
    instance = dagster_instance(settings)
    assert isinstance(instance.run_storage, PostgresRunStorage)

    materialize_everything(instance)
    assert_every_table_holds_the_day(settings)
    assert {run.job_name for run in instance.get_runs()} == {"observe_bronze", "medallion"}
    listed = s3_client(moto_server).list_objects_v2(Bucket=s3_bucket, Prefix="lake/gold/")
    assert listed["KeyCount"] > 0
