"""The table catalog: every Delta table and Kafka topic declared once, as an object.

A table's layer, domain, owner, schema, partitioning, z-order columns, retention and
storage tiering live here and nowhere else. Code names a table by importing its constant
(`GOLD_FRAUD_USER_DAILY`, `SILVER_CLICKSTREAM`, `CLICKSTREAM` for the topic), never by
retyping `"gold.fraud_user_daily"`: a typo is then an import error, and "where is this
table used" is a search for one name. Paths come from `table_uri`; Dagster's asset keys
and check specs are derived from these objects in one place (`assets/tables.py`).
The string lookups (`CATALOG.table("gold.x")`) remain for what arrives as text: the
command line, SQL and the Dagster asset keys of a sensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from lakehouse import schemas
from lakehouse.settings import Settings


class Layer(StrEnum):
    """Medallion layers, the models' registry and the reference data set by hand beside
    them; the layer is also the table's folder and its DuckDB schema."""

    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    MODELS = "models"
    REFERENCE = "reference"


class Domain(StrEnum):
    """The three case studies, plus platform-wide tables."""

    ECOMMERCE = "ecommerce"
    FRAUD = "fraud"
    IOT = "iot"
    PLATFORM = "platform"

    @property
    def owner(self) -> str:
        """The team that answers for the domain's tables and models, in Dagster's owner
        form: one owner per domain, so the UI never shows two teams for one group."""
        return _OWNERS[self]


_OWNERS = {
    Domain.ECOMMERCE: "team:personalization",
    Domain.FRAUD: "team:risk",
    Domain.IOT: "team:iot",
    Domain.PLATFORM: "team:data-platform",
}


class StorageClass(StrEnum):
    """The S3 storage classes a table's files may be tiered into (S3's own names).

    Delta reads a table by fetching the files its log lists, so a live file must answer a
    plain GET: GLACIER (Flexible Retrieval) and DEEP_ARCHIVE objects refuse it
    (InvalidObjectState) until someone restores them, which no query engine does.
    """

    STANDARD = "STANDARD"
    STANDARD_IA = "STANDARD_IA"
    GLACIER_IR = "GLACIER_IR"
    GLACIER = "GLACIER"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"

    @property
    def directly_readable(self) -> bool:
        """Whether a GET returns the object's bytes at once (milliseconds, no restore)."""
        return self not in (StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE)

    @property
    def min_storage_days(self) -> int:
        """Days S3 bills an object for once it enters the class, even if deleted sooner."""
        return _MIN_STORAGE_DAYS[self]


_MIN_STORAGE_DAYS = {
    StorageClass.STANDARD: 0,
    StorageClass.STANDARD_IA: 30,
    StorageClass.GLACIER_IR: 90,
    StorageClass.GLACIER: 90,
    StorageClass.DEEP_ARCHIVE: 180,
}


@dataclass(frozen=True)
class TierRule:
    """Move a table's data files to an S3 storage class once they are this many days old."""

    storage_class: StorageClass
    after_days: int


# The seed's tiering for what a table's current snapshot reads: Standard, IA after 30 days,
# Glacier Instant Retrieval after 180. The seed's last tier (Deep Archive after a year) is
# left out on purpose: a Delta table's old partitions are still live files, and a Deep
# Archive object cannot be read without a restore, so they stay in Glacier IR until the
# table's retention deletes them (docs/storage-tiering.md; the lifecycle builder refuses a
# class that is not directly readable).
STANDARD_TIERS = (
    TierRule(StorageClass.STANDARD_IA, 30),
    TierRule(StorageClass.GLACIER_IR, 180),
)


@dataclass(frozen=True)
class TableSpec:
    """One Delta table: everything the platform needs to write, query and maintain it."""

    name: str
    layer: Layer
    domain: Domain
    schema: pa.Schema
    description: str
    partition_by: tuple[str, ...] = ()
    zorder_by: tuple[str, ...] = ()
    retention_days: int | None = None
    tiers: tuple[TierRule, ...] = STANDARD_TIERS
    source_topic: str | None = None  # the topic a bronze or silver table carries

    @property
    def key(self) -> str:
        """`layer.name`, the table's name in DuckDB and in the CLI."""
        return f"{self.layer}.{self.name}"

    def __hash__(self) -> int:
        # The key identifies a table (the catalog refuses two with one key); hashing the
        # whole schema on every dictionary lookup would cost 10 µs for nothing.
        return hash(self.key)

    @property
    def date_partition(self) -> str | None:
        """The partition column holding a day (`event_date`, `quarantine_date`), if any:
        compaction and retention work one day partition at a time."""
        for column in self.partition_by:
            if pa.types.is_date32(self.schema.field(column).type):
                return column
        return None

    @property
    def path(self) -> tuple[str, str]:
        """(layer, name): the table's folder under the lake root and its asset key path."""
        return (self.layer.value, self.name)


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic, its event schema and its default partition count.

    `generated`: whether the domain's traffic generator simulates the topic (the outside
    world's events); False for a topic the platform's own services write, such as the
    fraud decisions, or that only an importer of real data fills (`engine_cycles`).
    """

    name: str
    domain: Domain
    event: schemas.EventSchema
    partitions: int = 4
    retention_ms: int = 7 * 24 * 3600 * 1000  # the seed keeps 7 days for replay
    generated: bool = True


@dataclass
class Catalog:
    """Registry of topics and tables with lookups by key, layer and topic."""

    topics: dict[str, TopicSpec] = field(default_factory=dict)
    tables: dict[str, TableSpec] = field(default_factory=dict)

    def add_topic(self, topic: TopicSpec) -> TopicSpec:
        if topic.name in self.topics:
            raise ValueError(f"topic {topic.name!r} declared twice")
        self.topics[topic.name] = topic
        return topic

    def add_table(self, table: TableSpec) -> TableSpec:
        if table.key in self.tables:
            raise ValueError(f"table {table.key!r} declared twice")
        self.tables[table.key] = table
        return table

    def table(self, key: str) -> TableSpec:
        """Look a table up by `layer.name`, with a clear error for a wrong key."""
        try:
            return self.tables[key]
        except KeyError:
            known = ", ".join(sorted(self.tables))
            raise KeyError(f"unknown table {key!r}; known tables: {known}") from None

    def topic(self, name: str) -> TopicSpec:
        """Look a topic up by name, with a clear error for a wrong name."""
        try:
            return self.topics[name]
        except KeyError:
            known = ", ".join(sorted(self.topics))
            raise KeyError(f"unknown topic {name!r}; known topics: {known}") from None

    def bronze_for_topic(self, topic: TopicSpec | str) -> TableSpec:
        """The bronze table a topic lands in."""
        return self._for_topic(Layer.BRONZE, topic)

    def silver_for_topic(self, topic: TopicSpec | str) -> TableSpec:
        """The silver table that holds a topic's events once deduplicated and checked."""
        return self._for_topic(Layer.SILVER, topic)

    def _for_topic(self, layer: Layer, topic: TopicSpec | str) -> TableSpec:
        name = topic if isinstance(topic, str) else topic.name
        for table in self.tables.values():
            if table.layer is layer and table.source_topic == name:
                return table
        raise KeyError(f"no {layer} table declared for topic {name!r}")

    def in_layer(self, layer: Layer) -> Iterator[TableSpec]:
        """The tables of one layer, in declaration order."""
        return (table for table in self.tables.values() if table.layer is layer)

    def landed_tables(self) -> list[TableSpec]:
        """The bronze tables the ingest sidecar lands topics in (not the quarantine)."""
        return [t for t in self.in_layer(Layer.BRONZE) if t.source_topic is not None]

    def topics_of(self, domain: Domain | str) -> list[TopicSpec]:
        """The topics of one domain, in declaration order."""
        wanted = Domain(domain)
        return [topic for topic in self.topics.values() if topic.domain is wanted]

    def generated_topics(self, domain: Domain | str) -> list[TopicSpec]:
        """The topics of one domain that its traffic generator produces."""
        return [topic for topic in self.topics_of(domain) if topic.generated]


CATALOG = Catalog()


def _topic(name: str, domain: Domain, partitions: int, generated: bool = True) -> TopicSpec:
    return CATALOG.add_topic(
        TopicSpec(name, domain, schemas.EVENT_SCHEMAS[name], partitions, generated=generated)
    )


# --- topics --------------------------------------------------------------------------------

CLICKSTREAM = _topic("clickstream", Domain.ECOMMERCE, 4)
CART_EVENTS = _topic("cart_events", Domain.ECOMMERCE, 2)
SEARCH = _topic("search", Domain.ECOMMERCE, 2)
PURCHASES = _topic("purchases", Domain.ECOMMERCE, 2)
TRANSACTIONS = _topic("transactions", Domain.FRAUD, 4)
# Written by the fraud decision service (its audit trail), one decision per transaction.
FRAUD_DECISIONS = _topic("fraud_decisions", Domain.FRAUD, 4, generated=False)
SENSOR_READINGS = _topic("sensor_readings", Domain.IOT, 4)
# Written by the IoT alert processor, one record per alert opened or closed.
IOT_ALERTS = _topic("iot_alerts", Domain.IOT, 2, generated=False)
# Turbofan engines' per-flight snapshots, filled by `lakehouse import cmapss` (NASA C-MAPSS).
ENGINE_CYCLES = _topic("engine_cycles", Domain.IOT, 4, generated=False)

REFERENCE_TOPICS = frozenset({ENGINE_CYCLES.name})
"""Topics that carry a public reference data set whose event times are synthesised at a
fixed epoch (docs/events.md): their bronze and silver tables have no retention, since an
age-based one would expire the data set on arrival; they are kept until deleted by hand."""


# --- sensor types: what each can report, and where operation stops being normal -----------


@dataclass(frozen=True)
class SensorLimits:
    """One sensor type's limits, in its unit.

    `physical`: what the sensor can report at all; outside it the reading is broken data
    (silver's blocking check, the alert processor's invalid readings). `operating`: the
    band a healthy machine stays in under any load; the alert processor raises
    `above_limit` / `below_limit` outside it, whatever the sensor's own baseline.
    """

    sensor_type: str
    unit: str
    physical: tuple[float, float]
    operating: tuple[float, float]


SENSOR_LIMITS: dict[str, SensorLimits] = {
    limits.sensor_type: limits
    for limits in (
        SensorLimits("temperature", "degC", (-40.0, 200.0), (0.0, 90.0)),
        # ISO 10816 puts RMS velocity above about 11 mm/s in "damage occurs" for most machines.
        SensorLimits("vibration", "mm/s", (0.0, 100.0), (0.0, 11.0)),
        SensorLimits("pressure", "bar", (0.0, 100.0), (1.0, 10.0)),
        SensorLimits("current", "A", (0.0, 500.0), (0.0, 35.0)),
    )
}
"""Per sensor type (the `sensor_type` vocabulary of `sensor_readings`)."""


@dataclass(frozen=True)
class MqttTopicLayout:
    """Where devices publish over MQTT, and the Kafka topic the edge gateway forwards to.

    A reading of sensor `s` on device `d` in plant `p` is published to `{root}/p/d/s`, its
    payload the Kafka event unchanged (one JSON object of `kafka_topic`'s schema). The
    broker's ACL lets a device write only where the third level is its own user name
    (`device_acl_pattern`), and the gateway checks that the payload's `device_id` is that
    level too (`device_of`), so a device can neither publish nor claim another's readings.
    One object, imported by the provisioning, the device simulator and the gateway.
    """

    root: str
    kafka_topic: TopicSpec
    levels: tuple[str, ...] = ("plant", "device_id", "sensor_id")

    def topic(self, plant: str, device_id: str, sensor_id: str) -> str:
        """The topic a device publishes one sensor's readings to."""
        return f"{self.root}/{plant}/{device_id}/{sensor_id}"

    @property
    def subscription(self) -> str:
        """The filter matching every device's readings (one `+` per level)."""
        return "/".join((self.root, *("+" for _ in self.levels)))

    @property
    def device_acl_pattern(self) -> str:
        """Mosquitto's ACL pattern a device may write to: `%u` is its user name."""
        return f"{self.root}/+/%u/+"

    def device_of(self, topic: str) -> str | None:
        """The device id a topic names, or None when the topic is not in the layout."""
        parts = topic.split("/")
        if len(parts) != len(self.levels) + 1 or parts[0] != self.root or not all(parts):
            return None
        return parts[2]


# Devices publish readings under factory/{plant}/{device_id}/{sensor_id} (docs/iot-edge.md).
SENSOR_READINGS_MQTT = MqttTopicLayout("factory", SENSOR_READINGS)


# --- bronze: each topic as the ingest sidecar lands it -------------------------------------


def _retention(topic: TopicSpec, days: int) -> int | None:
    """`days` for a topic's bronze or silver table; None (kept) for a reference data set."""
    return None if topic.name in REFERENCE_TOPICS else days


def _bronze(topic: TopicSpec, description: str) -> TableSpec:
    """A topic's bronze table. Fraud data is kept 7 years for audit; the rest follows the
    seed's 7-day replay horizon in Kafka and a year in bronze before it may be dropped (a
    reference data set's, `REFERENCE_TOPICS`, until deleted by hand)."""
    return CATALOG.add_table(
        TableSpec(
            name=topic.name,
            layer=Layer.BRONZE,
            domain=topic.domain,
            schema=schemas.bronze_schema(topic.event),
            description=description,
            partition_by=("event_date",),
            retention_days=_retention(topic, 7 * 365 if topic.domain is Domain.FRAUD else 365),
            source_topic=topic.name,
        )
    )


BRONZE_CLICKSTREAM = _bronze(
    CLICKSTREAM, "Page and product views and clicks, as landed from Kafka."
)
BRONZE_CART_EVENTS = _bronze(CART_EVENTS, "Cart additions and removals, as landed from Kafka.")
BRONZE_SEARCH = _bronze(
    SEARCH, "Search queries with result counts and clicks, as landed from Kafka."
)
BRONZE_PURCHASES = _bronze(PURCHASES, "Order lines, as landed from Kafka.")
BRONZE_TRANSACTIONS = _bronze(
    TRANSACTIONS,
    "Card transactions with their ground-truth fraud labels where known, as landed from Kafka.",
)
BRONZE_FRAUD_DECISIONS = _bronze(
    FRAUD_DECISIONS,
    "The fraud decision service's decisions (the audit trail), as landed from Kafka.",
)
BRONZE_SENSOR_READINGS = _bronze(
    SENSOR_READINGS, "Machine sensor readings with ground truth, as landed from Kafka."
)
BRONZE_IOT_ALERTS = _bronze(
    IOT_ALERTS, "Alerts the IoT alert processor opened and closed, as landed from Kafka."
)
BRONZE_ENGINE_CYCLES = _bronze(
    ENGINE_CYCLES,
    "Turbofan engines' per-cycle settings and sensors with failure ground truth (NASA "
    "C-MAPSS, imported), as landed from Kafka.",
)

QUARANTINE = CATALOG.add_table(
    TableSpec(
        name="quarantine",
        layer=Layer.BRONZE,
        domain=Domain.PLATFORM,
        schema=schemas.QUARANTINE,
        description="Messages that failed validation: raw bytes, provenance and the reason.",
        partition_by=("quarantine_date",),
        retention_days=90,
    )
)


# --- silver: one deduplicated, rule-checked table per topic --------------------------------


def _silver(topic: TopicSpec, zorder_by: tuple[str, ...]) -> TableSpec:
    """A topic's silver table, partitioned by event date and z-ordered by the columns its
    lookups filter on (the seed's (device_id, sensor_id) for IoT)."""
    return CATALOG.add_table(
        TableSpec(
            name=topic.name,
            layer=Layer.SILVER,
            domain=topic.domain,
            schema=schemas.silver_schema(topic.name),
            description=f"{topic.name}: typed, one row per event id, rule breakers set aside.",
            partition_by=("event_date",),
            zorder_by=zorder_by,
            retention_days=_retention(topic, 7 * 365 if topic.domain is Domain.FRAUD else 2 * 365),
            source_topic=topic.name,
        )
    )


SILVER_CLICKSTREAM = _silver(CLICKSTREAM, ("user_id", "product_id"))
SILVER_CART_EVENTS = _silver(CART_EVENTS, ("user_id", "product_id"))
SILVER_SEARCH = _silver(SEARCH, ("user_id",))
SILVER_PURCHASES = _silver(PURCHASES, ("user_id", "product_id"))
SILVER_TRANSACTIONS = _silver(TRANSACTIONS, ("user_id", "merchant_id"))
SILVER_FRAUD_DECISIONS = _silver(FRAUD_DECISIONS, ("user_id", "transaction_id"))
SILVER_SENSOR_READINGS = _silver(SENSOR_READINGS, ("device_id", "sensor_id"))
SILVER_IOT_ALERTS = _silver(IOT_ALERTS, ("device_id", "sensor_id"))
SILVER_ENGINE_CYCLES = _silver(ENGINE_CYCLES, ("device_id", "cycle"))

REJECTED_ROWS = CATALOG.add_table(
    TableSpec(
        name="rejected_rows",
        layer=Layer.SILVER,
        domain=Domain.PLATFORM,
        schema=schemas.REJECTED_ROWS,
        description="Rows silver set aside, with the rules they broke and the row as JSON.",
        partition_by=("event_date",),
        retention_days=90,
    )
)


# --- gold ----------------------------------------------------------------------------------


def _gold(
    name: str,
    domain: Domain,
    schema: pa.Schema,
    description: str,
    zorder_by: tuple[str, ...],
    retention_days: int,
) -> TableSpec:
    """A gold table: partitioned by event_date (for snapshots, the day they are as of), so
    every gold table shares the daily partitions of the assets that build them."""
    return CATALOG.add_table(
        TableSpec(
            name=name,
            layer=Layer.GOLD,
            domain=domain,
            schema=schema,
            description=description,
            partition_by=("event_date",),
            zorder_by=zorder_by,
            retention_days=retention_days,
        )
    )


# IoT gold (lakehouse.transforms.iot): kept 5 years, the failure models' history.
GOLD_SENSOR_HOURLY = _gold(
    "sensor_hourly",
    Domain.IOT,
    schemas.SENSOR_HOURLY,
    "Per sensor and hour: readings, average, minimum, maximum, standard deviation.",
    ("device_id", "sensor_id"),
    5 * 365,
)
GOLD_DEVICE_HEALTH_DAILY = _gold(
    "device_health_daily",
    Domain.IOT,
    schemas.DEVICE_HEALTH_DAILY,
    "Per device and day: coverage, per-sensor-type stats and drift, health score and "
    "status, failure ground truth.",
    ("device_id",),
    5 * 365,
)
# Alerts gold (lakehouse.transforms.alerts): the alert history partitioned by the day an
# alert opened, the daily roll-up per device beside device health.
GOLD_IOT_ALERT_HISTORY = _gold(
    "iot_alert_history",
    Domain.IOT,
    schemas.IOT_ALERT_HISTORY,
    "One row per IoT alert, in the partition of the day it opened: device, sensor, rule, "
    "severity, opened and closed (NULL while open), minutes to close, readings, |z|, "
    "detection delay.",
    ("device_id", "sensor_id"),
    5 * 365,
)
GOLD_DEVICE_ALERTS_DAILY = _gold(
    "device_alerts_daily",
    Domain.IOT,
    schemas.DEVICE_ALERTS_DAILY,
    "Per device and day: alerts opened by rule and severity, closed, active, minutes under "
    "alert, open at the end of the day, beside the day's health score and status.",
    ("device_id",),
    5 * 365,
)

# E-commerce gold (lakehouse.transforms.ecommerce). Per-user tables are large and z-ordered
# by user_id; the activity base is kept 2 years, the 30-day feature snapshots 180 days
# (enough for point-in-time training sets), the small product and experiment tables longer.
GOLD_USER_ACTIVITY_DAILY = _gold(
    "user_activity_daily",
    Domain.ECOMMERCE,
    schemas.USER_ACTIVITY_DAILY,
    "Per user and day: sessions, page and product views, cart adds, orders, units, "
    "revenue, viewed price range, searches, product views per category.",
    ("user_id",),
    2 * 365,
)
GOLD_USER_FEATURES = _gold(
    "user_features",
    Domain.ECOMMERCE,
    schemas.USER_FEATURES,
    "Per user as of each day, over the last 30 days: sessions, views, cart adds, orders, "
    "revenue, viewed price range, top 3 categories, days active, last active date.",
    ("user_id",),
    180,
)
GOLD_PRODUCT_DAILY = _gold(
    "product_daily",
    Domain.ECOMMERCE,
    schemas.PRODUCT_DAILY,
    "Per product and day: views, viewers, cart adds, orders, buyers, units, revenue, "
    "view-to-purchase conversion.",
    ("product_id",),
    5 * 365,
)
GOLD_PRODUCT_TRENDING = _gold(
    "product_trending",
    Domain.ECOMMERCE,
    schemas.PRODUCT_TRENDING,
    "Per product as of each day: the day's views, orders, revenue, popularity score and "
    "rank, and a trending score against its mean daily views of the previous 7 days.",
    ("product_id",),
    365,
)
GOLD_SESSION_FUNNEL_DAILY = _gold(
    "session_funnel_daily",
    Domain.ECOMMERCE,
    schemas.SESSION_FUNNEL_DAILY,
    "Per day and product category: sessions that viewed, then also added to cart, then "
    "also bought; the rates between the steps (conversion), orders and revenue; "
    "category 'all' counts each session once.",
    ("category",),
    5 * 365,
)
GOLD_AB_TEST_DAILY = _gold(
    "ab_test_daily",
    Domain.ECOMMERCE,
    schemas.AB_TEST_DAILY,
    "Per experiment, day and variant: active users, sessions, conversion, revenue per "
    "user, and a two-proportion z-test of each variant against control.",
    ("experiment_id",),
    5 * 365,
)

# Fraud gold (lakehouse.transforms.fraud): kept 7 years like the rest of the fraud audit
# trail.
GOLD_FRAUD_USER_DAILY = _gold(
    "fraud_user_daily",
    Domain.FRAUD,
    schemas.FRAUD_USER_DAILY,
    "Per card holder and day: additive amount sums, distinct countries, merchants, "
    "devices, cards and channels, fraud count.",
    ("user_id",),
    7 * 365,
)
GOLD_FRAUD_USER_PROFILES = _gold(
    "fraud_user_profiles",
    Domain.FRAUD,
    schemas.FRAUD_USER_PROFILES,
    "Lifetime profile per card holder as of each day: amount mean and stddev, home "
    "country, known devices and merchants, confirmed fraud.",
    ("user_id",),
    7 * 365,
)
GOLD_FRAUD_DAILY_STATS = _gold(
    "fraud_daily_stats",
    Domain.FRAUD,
    schemas.FRAUD_DAILY_STATS,
    "Per day, UTC hour, merchant category and channel: transactions, fraud rate, amounts, "
    "distinct holders and counts per fraud pattern.",
    ("merchant_category",),
    7 * 365,
)
GOLD_FRAUD_DECISION_QUALITY = _gold(
    "fraud_decision_quality",
    Domain.FRAUD,
    schemas.FRAUD_DECISION_QUALITY,
    "Per day, the decision service's decisions against the ground truth: decisions by "
    "kind, precision and recall of BLOCK and of REVIEW-or-BLOCK, false-positive rates.",
    (),
    7 * 365,
)


# --- models: the registry and the models' batch outputs ------------------------------------

MODEL_REGISTRY = CATALOG.add_table(
    TableSpec(
        name="registry",
        layer=Layer.MODELS,
        domain=Domain.PLATFORM,
        schema=schemas.MODEL_REGISTRY,
        description="Every trained model version: parameters, metrics, the Delta versions "
        "of its training data, its artifact and the promotion decision.",
        partition_by=("model_name",),
    )
)
USER_RECOMMENDATIONS = CATALOG.add_table(
    TableSpec(
        name="user_recommendations",
        layer=Layer.MODELS,
        domain=Domain.ECOMMERCE,
        schema=schemas.USER_RECOMMENDATIONS,
        description="Per user as of each day: the recommender champion's top 10 unseen "
        "products, the recommendation service's fallback.",
        partition_by=("event_date",),
        zorder_by=("user_id",),
        retention_days=30,
    )
)



# --- reference data: set by people, read by the services ----------------------------------

DEVICE_LIMITS = CATALOG.add_table(
    TableSpec(
        name="device_limits",
        layer=Layer.REFERENCE,
        domain=Domain.IOT,
        schema=schemas.DEVICE_LIMITS,
        description="Per device and sensor type, the operating limits that replace the "
        "catalog's per-type ones for the alert processor (both null: none known); set with "
        "`lakehouse iot limits`.",
    )
)


def table_uri(table: TableSpec, settings: Settings) -> str:
    """Where a table lives under the configured root: `<root>/<layer>/<name>`."""
    return f"{settings.lake_root}/{table.layer}/{table.name}"


def topic_partitions(topic: TopicSpec, settings: Settings) -> int:
    """The partition count for a topic, honouring KAFKA_TOPIC_PARTITIONS overrides."""
    return settings.kafka_topic_partitions.get(topic.name, topic.partitions)
