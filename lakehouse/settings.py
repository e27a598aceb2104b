"""One typed settings object for the whole platform, read from the environment.

Every knob the platform has lives here, with its environment variable and default, so
that moving from the laptop to production is a matter of configuration alone. Secrets are
`SecretStr`: they never appear in reprs or logs. `docs/configuration.md` lists them all.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REAL_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
"""The public data sets' default folder, `shared/data/real` beside the repository: found
from this file rather than the working directory, so a notebook in any folder reads it."""


class Profile(StrEnum):
    """Deployment profiles: the same code runs under both, only resources differ."""

    LOCAL = "local"
    PRODUCTION_LIKE = "production-like"


class Settings(BaseSettings):
    """Platform configuration; each field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- where things live -------------------------------------------------------------
    lakehouse_profile: Profile = Field(Profile.LOCAL, description="local or production-like")
    lakehouse_home: Path = Field(
        Path(".lakehouse"), description="State folder: broker pid and logs, DAGSTER_HOME."
    )
    lakehouse_root: str = Field(
        ".lakehouse/lake", description="Root of the Delta tables: a folder or s3://bucket/prefix."
    )

    # --- S3 (used when LAKEHOUSE_ROOT is s3://...) -----------------------------------------
    aws_endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. a moto_server.")
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = "us-east-1"
    aws_allow_http: bool = Field(False, description="Allow plain-HTTP S3 endpoints (local tests).")
    lifecycle_expiry_margin_days: int = Field(
        30,
        ge=8,
        description="S3 expires a table's data files this many days after its retention: "
        "the retention step deletes the partitions from the Delta log first (weekly), so S3 "
        "never deletes a file the log still lists (docs/storage-tiering.md).",
    )

    # --- Kafka: everything passes through to librdkafka ------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_SSL...")
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-512, ...")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_client_config: dict[str, Any] = Field(
        default_factory=dict, description="JSON object of extra librdkafka properties."
    )
    kafka_session_timeout_ms: int = Field(
        6000, description="Group session timeout; short so a group joins in seconds."
    )
    kafka_heartbeat_interval_ms: int = 500
    kafka_topic_partitions: dict[str, int] = Field(
        default_factory=dict, description='Per-topic partition overrides, e.g. {"clickstream": 8}.'
    )

    # --- ingest sidecar ---------------------------------------------------------------------
    ingest_group_id: str = "lakehouse-ingest"
    ingest_app_id: str = Field(
        "lakehouse-ingest", description="Prefix of the Delta txn app ids that record offsets."
    )
    ingest_flush_seconds: float = Field(
        10.0, description="Flush a topic's buffer at least this often (freshness bound)."
    )
    ingest_flush_rows: int = Field(250_000, description="Flush a topic's buffer at this size.")
    ingest_max_message_bytes: int = Field(
        1_048_576, description="Larger messages are quarantined as oversize."
    )
    ingest_metrics_port: int | None = Field(None, description="Prometheus port; off if unset.")
    ingest_retry_seconds: float = Field(
        300.0,
        gt=0,
        description="How long one commit or offset read retries transient storage failures "
        "before the worker gives up and exits non-zero (a restart resumes from the Delta log).",
    )

    # --- orchestration -----------------------------------------------------------------------
    lakehouse_first_day: date | None = Field(
        None,
        description="First day of the assets' daily partitions (YYYY-MM-DD). Unset: the "
        "first event day bronze holds when the code location loads, or yesterday for an "
        "empty lake, so the UI shows the days there are rather than years of gaps.",
    )

    # --- data quality ------------------------------------------------------------------------
    bronze_freshness_minutes: int = Field(
        60,
        description="Bronze tables whose newest row landed longer ago than this fail their "
        "freshness check (a warning: ingest may be down).",
    )
    quality_key_hash_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=0,
        description="Memory a uniqueness check on the local engine may hold outside DuckDB: "
        "16 bytes per row (each row's 8-byte key hash, and Polars' copy while it counts "
        "them). A day within it has its distinct hashes counted by Polars (0.6 s instead of "
        "1.2 s per key at 10M rows); a larger one by DuckDB's aggregate, under "
        "DUCKDB_MEMORY_LIMIT, spilling. 0: always DuckDB.",
    )

    # --- models --------------------------------------------------------------------------
    fraud_training_days: int = Field(
        14,
        description="Days of transactions the daily fraud retrain learns from (the weekly "
        "full retrain takes every day there is); the last two are validation and test.",
    )
    fraud_block_fpr: float = Field(
        0.001,
        description="False-positive budget of the fraud model's BLOCK threshold (the seed's "
        "0.1%), chosen on validation days and reported on the test day.",
    )
    fraud_review_fpr: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="False-positive rate of the fraud model's REVIEW threshold on validation "
        "days (payments between it and BLOCK go to manual review).",
    )
    training_backend: Literal["local", "sagemaker"] = Field(
        "local",
        description="Where the fraud model is fitted: in process, or as a SageMaker training "
        "job (the `sagemaker` extra; docs/sagemaker.md). Evaluation always runs here.",
    )

    # --- Fraud audit trail (streaming/fraud/audit.py; docs/fraud-service.md) -------------
    fraud_audit_spool_dir: Path | None = Field(
        None,
        description="Folder of the audit trail's on-disk spool: records Kafka did not take "
        "wait there until it does. Unset: LAKEHOUSE_HOME/spool/fraud-audit. Every service "
        "process writes its own files in it; keep it on a disk that outlives the process.",
    )
    fraud_audit_spool_max_bytes: int = Field(
        1 << 30,
        ge=4096,
        description="Most bytes one service process keeps in the spool (1 GiB: about 17 "
        "minutes of a 1,000 TPS outage). Past it new records are DROPPED, counted in "
        "`fraud_audit_records_dropped_total{reason=\"spool_full\"}` and logged as errors.",
    )
    fraud_audit_delivery_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="How long a record may wait for Kafka in memory (librdkafka's "
        "`message.timeout.ms`) before it goes to the spool.",
    )
    fraud_audit_retry_seconds: float = Field(
        1.0,
        gt=0,
        description="How often the audit trail's background thread checks whether Kafka is "
        "back and resends the spool (doubling while resends keep failing, up to 30 s).",
    )

    # --- models, continued ---------------------------------------------------------------
    real_data_dir: Path = Field(
        REAL_DATA_DIR,
        description="The public data sets (UCI Online Retail, C-MAPSS, NAB) that models are "
        "also checked on; by default `shared/data/real` beside the repository, wherever the "
        "process runs from.",
    )
    recommendation_history_days: int = Field(
        30, description="Days of interactions the recommender learns from (the last is held out)."
    )

    # --- SageMaker training (TRAINING_BACKEND=sagemaker; docs/sagemaker.md) ----------------
    sagemaker_role_arn: str | None = Field(
        None, description="IAM role the training job runs as; required for the sagemaker backend."
    )
    sagemaker_region: str | None = Field(
        None, description="Region of the training jobs; unset: AWS_REGION (the bucket's region)."
    )
    sagemaker_instance_type: str = Field("ml.m5.xlarge", description="Training instance type.")
    sagemaker_instance_count: int = Field(
        1, ge=1, description="Training instances; above 1 the training set is sharded by file."
    )
    sagemaker_volume_gb: int = Field(30, ge=1, description="EBS volume per training instance.")
    sagemaker_max_runtime_seconds: int = Field(
        3600, ge=1, description="SageMaker stops a training job that runs longer than this."
    )
    sagemaker_xgboost_version: Literal["3.2-0", "3.0-5"] = Field(
        "3.2-0",
        description="Built-in XGBoost container version; only 3.x save models XGBoost 3 loads.",
    )
    sagemaker_xgboost_image: str | None = Field(
        None, description="Full training image URI; overrides the per-region lookup."
    )

    # --- online stores ----------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    iot_edge_dir: Path | None = Field(
        None,
        description="Where `lakehouse iot provision` writes the broker's password file, ACL, "
        "mosquitto.conf and the devices' and gateway's credentials (credentials.json, 0600). "
        "Unset: LAKEHOUSE_HOME/iot.",
    )
    gateway_mqtt_username: str = Field("gateway", description="The gateway's MQTT user.")
    gateway_mqtt_password: SecretStr | None = Field(
        None, description="The gateway's MQTT password; unset: read from IOT_EDGE_DIR's "
        "credentials.json."
    )
    gateway_client_id: str | None = Field(
        None, description="MQTT client id, the key of the gateway's persistent session; one "
        "per gateway process (default: lakehouse-gateway-<hostname>)."
    )
    gateway_share_group: str = Field(
        "lakehouse-gateway",
        description="Shared-subscription group ($share/<group>/...): processes in one group "
        "split the readings between them; empty: a plain subscription (one gateway).",
    )
    gateway_session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=1,
        description="How long the broker keeps the gateway's session and backlog while it is "
        "away.",
    )
    gateway_receive_maximum: int = Field(
        10_000, ge=1, le=65_535,
        description="Readings the broker may have in flight to one gateway, unacknowledged "
        "(each waits for Kafka's confirmation): the gateway's memory bound.",
    )
    gateway_batch_messages: int = Field(
        2_000, ge=1, description="Validate and forward in batches of at most this many."
    )
    gateway_batch_ms: float = Field(
        20.0, gt=0, description="...or whatever arrived within this many milliseconds."
    )
    gateway_dedupe_window: int = Field(
        200_000, ge=0,
        description="Distinct payloads remembered to drop exact redeliveries (0: off).",
    )
    gateway_linger_ms: int = Field(5, ge=0, description="Kafka producer linger.ms.")
    gateway_metrics_port: int | None = Field(
        None, description="Port of /metrics and /healthz; off if unset."
    )
    redis_timeout_ms: float = Field(
        20.0,
        gt=0,
        description="Socket timeout of the online services' Redis calls: past it a request "
        "answers from the batch fallback instead of waiting.",
    )
    redis_breaker_failures: int = Field(
        3, ge=1, description="Consecutive Redis failures that open a service's circuit breaker."
    )
    redis_breaker_reset_seconds: float = Field(
        1.0,
        gt=0,
        description="How long an open breaker sends requests straight to the fallback before "
        "one trial call checks whether Redis is back.",
    )

    # --- session features (step 6: `lakehouse stream session-features`) -------------------
    session_features_group_id: str = Field(
        "lakehouse-session-features", description="Consumer group of the session processor."
    )
    session_features_batch_events: int = Field(
        1_000,
        ge=1,
        description="Most events one micro-batch applies to Redis. Its script blocks Redis "
        "for about 8 us per event: 1,000 keeps that (about 11 ms) under the services' "
        "`redis_timeout_ms`, so a read waiting behind it does not fall back.",
    )
    session_features_batch_ms: int = Field(
        100,
        ge=1,
        description="Longest a micro-batch waits to fill before it is applied (freshness bound).",
    )
    session_features_ttl_days: int = Field(
        30, ge=1, description="A user's session features expire this long after their last write."
    )
    session_features_max_products: int = Field(
        100, ge=1, description="Most recent products kept per user (the least recent are dropped)."
    )
    session_features_metrics_port: int | None = Field(
        None, description="Prometheus port of the session processor; off if unset."
    )

    # --- the recommendation service (step 6: `lakehouse serve recommendations`) -----------
    lakehouse_api_token: SecretStr | None = Field(
        None,
        description="Bearer token the online services require. Outside the local profile they "
        "refuse to start without one.",
    )
    recommendations_store: Literal["file", "dynamodb"] | None = Field(
        None,
        description="Where the batch recommendations are published and the service reads its "
        "fallback from: `file` (a memory-mapped Arrow file under the lake root) or `dynamodb`. "
        "Unset: `file` in the local profile, `dynamodb` in production-like.",
    )
    recommendations_dynamodb_table: str = Field(
        "lakehouse-recommendations", description="DynamoDB table of the batch recommendations."
    )
    recommendations_host: str = Field(
        "127.0.0.1", description="Interface `lakehouse serve recommendations` listens on."
    )
    recommendations_port: int = Field(
        8000, ge=1, le=65535, description="Port of `lakehouse serve recommendations`."
    )
    recommendations_reload_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the service checks for a new champion or newly published "
        "batch results (swapped in without a restart).",
    )

    # --- the fraud decision service (step 7: `lakehouse serve fraud`) --------------------
    fraud_host: str = Field(
        "127.0.0.1", description="Interface `lakehouse serve fraud` listens on."
    )
    fraud_port: int = Field(8001, ge=1, le=65535, description="Port of `lakehouse serve fraud`.")
    fraud_rules_path: Path | None = Field(
        None,
        description="The fraud rules file (YAML, docs/fraud-service.md); unset: the default "
        "shipped in `lakehouse/decisions/fraud-rules.yaml`. Reloaded when it changes.",
    )
    fraud_reload_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the fraud service checks for a new champion, a changed rules "
        "file and a newly published risk table.",
    )
    fraud_history_limit: int = Field(
        2_000,
        ge=1,
        description="Most earlier transactions read per holder and per device for one decision "
        "(the newest; a week at 5 a day is about 35).",
    )
    fraud_max_batch: int = Field(
        64,
        ge=1,
        description="Most payments decided in one pass (those that arrive together are "
        "batched: one Redis round trip, one model call).",
    )
    fraud_decision_ttl_days: int = Field(
        7, ge=1, description="How long a decision is remembered for idempotent retries."
    )
    fraud_profile_ttl_days: int = Field(
        8,
        ge=1,
        description="Published holder profiles expire this long after publishing (a stalled "
        "publisher degrades decisions rather than serving month-old profiles).",
    )

    # --- IoT alerts (step 8: `lakehouse stream iot-alerts`) ---------------------------------
    iot_alerts_group_id: str = Field(
        "lakehouse-iot-alerts", description="Consumer group of the IoT alert processor."
    )
    iot_alerts_batch_events: int = Field(
        5_000, ge=1, description="Most readings one micro-batch of the alert processor takes."
    )
    iot_alerts_batch_ms: int = Field(
        100,
        ge=1,
        description="Longest a micro-batch waits to fill before it is processed (latency bound).",
    )
    iot_alerts_spike_z: float = Field(
        5.0,
        gt=0,
        description="A reading whose |z| against its sensor's fast baseline exceeds this is a "
        "spike (rule `zscore`).",
    )
    iot_alerts_level_z: float = Field(
        3.0,
        gt=0,
        description="A one-minute mean whose |z| against the sensor's slow reference exceeds "
        "this is a level shift, the way drift shows (rule `zscore`).",
    )
    iot_alerts_baseline_seconds: float = Field(
        300.0, gt=0, description="Time constant of the fast baseline (event time)."
    )
    iot_alerts_reference_seconds: float = Field(
        28_800.0,
        gt=0,
        description="Time constant of the slow reference, one load cycle (8 h) so the cycle "
        "averages out; its spread is learnt over a sensor's first period this long, and level "
        "shifts are judged after it.",
    )
    iot_alerts_warmup_readings: int = Field(
        20, ge=1, description="Readings a sensor's baseline needs before it may alert on z."
    )
    iot_alerts_quiet_seconds: float = Field(
        60.0,
        gt=0,
        description="An alert closes once its sensor (or device) has been this long without "
        "an anomalous reading; a burst within it is one alert.",
    )
    iot_alerts_quiet_readings: int = Field(
        3,
        ge=0,
        description="An alert also waits this many of its sensor's reporting intervals "
        "without an anomalous reading before it closes, where that is longer than the quiet "
        "seconds (a sensor reporting every 5 minutes then must behave for 15); 0 turns it off.",
    )
    iot_alerts_lateness_seconds: float = Field(
        5.0,
        ge=0,
        description="How late a reading may arrive; an alert of a silent sensor closes once "
        "the partition's newest reading is its quiet period plus this past its last anomaly.",
    )
    iot_alerts_health_seconds: float = Field(
        300.0, gt=0, description="Time constant of the bad-reading share behind device health."
    )
    iot_alerts_health_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A device whose health score (0 to 1) falls under this raises `device_health`.",
    )
    iot_alerts_limits_refresh_seconds: float = Field(
        60.0,
        gt=0,
        description="How often the alert processor looks for changed per-device operating "
        "limits (`reference.device_limits`, `lakehouse iot limits`); a look costs one read "
        "of the Delta log, the table is read only when it moved.",
    )
    iot_alerts_webhook_url: str | None = Field(
        None, description="Where alert records are POSTed (JSON); no delivery if unset."
    )
    iot_alerts_webhook_group_id: str = Field(
        "lakehouse-iot-alerts-webhook",
        description="Consumer group of the webhook delivery loop (reads `iot_alerts`).",
    )
    iot_alerts_webhook_timeout_seconds: float = Field(
        5.0, gt=0, description="Timeout of one webhook request."
    )
    iot_alerts_webhook_max_backoff_seconds: float = Field(
        30.0, gt=0, description="Longest wait between retries of a failing webhook."
    )
    iot_alerts_delivered_ttl_days: int = Field(
        7, ge=1, description="How long Redis remembers a delivered alert record (no redelivery)."
    )
    iot_alerts_metrics_port: int | None = Field(
        None, description="Port of the processor's /metrics and /healthz; off if unset."
    )

    # --- maintenance: vacuum and retention (lakehouse/maintenance; docs/maintenance.md) ----
    maintenance_vacuum_retention_hours: int = Field(
        168,
        ge=0,
        description="VACUUM deletes files a commit removed longer ago than this (7 days): "
        "time travel within it keeps working, older versions stop reading. Never below "
        "`maintenance_longest_run_hours`.",
    )
    maintenance_longest_run_hours: int = Field(
        24,
        ge=0,
        description="Longest a Dagster run or another reader keeps reading one table "
        "snapshot: the floor of the vacuum retention, so no running reader loses its files.",
    )
    maintenance_retention_dry_run: bool | None = Field(
        None,
        description="Whether data retention only lists the expired partitions instead of "
        "deleting them. Unset: a dry run in the local profile, deletion in production-like.",
    )

    # --- maintenance: compaction and locks ---------------------------------------------------
    maintenance_target_file_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024,
        description="Compaction rewrites a day partition's small files into files of about "
        "this size (128 MiB, the seed's target). A file under half of it counts as small.",
    )
    maintenance_spill_bytes: int = Field(
        256 * 1024 * 1024,
        ge=16 * 1024 * 1024,
        description="Memory a compaction's sort and merge may hold before spilling to the "
        "temporary folder (delta-rs max_spill_size): bounds its memory whatever the day's "
        "size. Measured on a 384 MiB IoT day: 2.55 GB peak without it, 545 MiB at 256 MiB, "
        "the same 13 s.",
    )
    maintenance_lock_url: SecretStr | None = Field(
        None,
        description="PostgreSQL DSN (postgresql:// or postgresql+psycopg2://) whose session "
        "advisory locks make the maintenance of a table exclusive across machines; meant for "
        "the production-like profile. Unset: a file lock under LAKEHOUSE_HOME/locks, which "
        "only excludes processes of one machine.",
    )
    maintenance_commit_retries: int = Field(
        5,
        ge=0,
        description="How often a compaction whose commit conflicts with a concurrent writer "
        "(a rebuild or a retention delete of the same day) is planned and tried again.",
    )

    # --- local engine: DuckDB's memory (docs/benchmarks.md, "Bounded memory") ------------
    duckdb_memory_limit: str = Field(
        "3GB",
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory_limit for every silver and gold build on the local "
        "engine: past it, a build's sorts, joins, aggregates and the day it stages before "
        "the checks spill to `duckdb_spill_dir`, so a day of any size fits. The process "
        "needs about 2-3 GiB beyond it (Arrow batches in flight, delta-rs's writer, GX). "
        "Below about 64MB DuckDB 2.0 cannot sort a day (it fails instead of spilling).",
    )
    duckdb_spill_dir: Path | None = Field(
        None,
        description="Where DuckDB spills past its memory limit (a fast local disk with room "
        "for a day's silver, several GB at 50M events). Unset: LAKEHOUSE_HOME/spill/duckdb.",
    )
    duckdb_threads: int | None = Field(
        None,
        ge=1,
        description="DuckDB's threads for the builds. Unset: DuckDB's default (the cores).",
    )

    # --- engine: local or Spark (lakehouse/spark; docs/spark.md) --------------------------
    lakehouse_engine: Literal["local", "spark"] = Field(
        "local",
        description="What the heavy assets run on: `local` (DuckDB, Arrow and delta-rs in the "
        "Dagster process) or `spark` (a SparkSession from the settings below).",
    )
    spark_master: str = Field(
        "local[2]",
        description="Spark master URL: local[N], spark://host:7077, k8s://https://..., yarn.",
    )
    spark_driver_memory: str = Field("2g", description="spark.driver.memory, e.g. 2g or 8g.")
    spark_extra_jars: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Jars added to the session (spark.jars): comma-separated paths or URLs, "
        "or a JSON list, e.g. the hadoop-aws and delta-spark jars where the image lacks them.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object of any other Spark properties; applied last, so it "
        "overrides everything the platform sets.",
    )

    @field_validator(
        "kafka_client_config", "kafka_topic_partitions", "spark_conf", mode="before"
    )
    @classmethod
    def _parse_json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("spark_extra_jars", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        """A JSON list, or Spark's own comma-separated form (what `spark.jars` takes)."""
        if not isinstance(value, str):
            return value
        if value.strip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]

    @model_validator(mode="after")
    def _vacuum_keeps_running_readers(self) -> Settings:
        if self.maintenance_vacuum_retention_hours < self.maintenance_longest_run_hours:
            raise ValueError(
                "MAINTENANCE_VACUUM_RETENTION_HOURS="
                f"{self.maintenance_vacuum_retention_hours} is below "
                f"MAINTENANCE_LONGEST_RUN_HOURS={self.maintenance_longest_run_hours}: a "
                "vacuum would delete files that a run still reading an older snapshot needs"
            )
        return self

    @property
    def retention_enforced(self) -> bool:
        """Whether data retention deletes expired partitions (True) or only lists them:
        the explicit setting, else deletion only in the production-like profile."""
        if self.maintenance_retention_dry_run is not None:
            return not self.maintenance_retention_dry_run
        return self.lakehouse_profile is Profile.PRODUCTION_LIKE

    @property
    def batch_store(self) -> Literal["file", "dynamodb"]:
        """The batch recommendation store in use: the explicit setting, else by profile."""
        if self.recommendations_store is not None:
            return self.recommendations_store
        return "dynamodb" if self.lakehouse_profile is Profile.PRODUCTION_LIKE else "file"

    @property
    def lake_is_s3(self) -> bool:
        """Whether the tables live in S3 rather than in a local folder."""
        return self.lakehouse_root.startswith("s3://")

    @property
    def lake_root(self) -> str:
        """The table root as delta-rs expects it: an absolute path or an s3:// URI."""
        if self.lake_is_s3:
            return self.lakehouse_root.rstrip("/")
        return str(Path(self.lakehouse_root).expanduser().resolve())

    @property
    def home(self) -> Path:
        """Absolute state folder."""
        return self.lakehouse_home.expanduser().resolve()

    @property
    def iot_edge(self) -> Path:
        """Absolute folder of the IoT edge's broker security and credentials: beside the
        rest of the state, so a second LAKEHOUSE_HOME gets its own devices."""
        folder = self.iot_edge_dir or self.lakehouse_home / "iot"
        return folder.expanduser().resolve()

    @property
    def duckdb_spill(self) -> Path:
        """Absolute folder DuckDB spills to past its memory limit."""
        folder = self.duckdb_spill_dir or self.lakehouse_home / "spill" / "duckdb"
        return folder.expanduser().resolve()

    @property
    def fraud_audit_spool(self) -> Path:
        """Absolute folder of the fraud audit trail's spool."""
        folder = self.fraud_audit_spool_dir or self.lakehouse_home / "spool" / "fraud-audit"
        return folder.expanduser().resolve()

    def storage_options(self) -> dict[str, str]:
        """Storage options for delta-rs; empty for local folders."""
        if not self.lake_is_s3:
            return {}
        options = {"AWS_REGION": self.aws_region}
        if self.aws_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.aws_endpoint_url
        if self.aws_access_key_id:
            options["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id.get_secret_value()
        if self.aws_secret_access_key:
            options["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key.get_secret_value()
        if self.aws_allow_http:
            options["AWS_ALLOW_HTTP"] = "true"
        # S3 has conditional writes; asking for them makes concurrent commits safe explicitly.
        options["conditional_put"] = "etag"
        return options

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka properties common to producers, consumers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        optional = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            ),
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        config.update(self.kafka_client_config)
        return config


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
