"""Arrow schemas of the events on each Kafka topic, and of the bronze tables they land in.

The event schema is the contract between the generators (and real producers), the ingest
sidecar's validation and the bronze tables. `docs/events.md` describes every field.
Timestamps travel as ISO-8601 strings and are parsed to UTC microseconds on ingest.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class EventSchema:
    """The fields of one event type and which of them must be present and non-null."""

    name: str
    schema: pa.Schema
    required: tuple[str, ...]

    def __post_init__(self) -> None:
        missing = set(self.required) - set(self.schema.names)
        if missing:
            raise ValueError(f"{self.name}: required fields not in schema: {sorted(missing)}")


def _fields(*pairs: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in pairs])


_COMMON = (("event_id", pa.string()), ("event_time", TIMESTAMP))
_SESSION = (("user_id", pa.int64()), ("session_id", pa.string()))
_EXPERIMENT = (("experiment_id", pa.string()), ("variant", pa.string()))

CLICKSTREAM = EventSchema(
    "clickstream",
    _fields(
        *_COMMON,
        *_SESSION,
        ("event_type", pa.string()),
        ("page", pa.string()),
        ("product_id", pa.int64()),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("device", pa.string()),
        ("referrer", pa.string()),
        *_EXPERIMENT,
    ),
    required=("event_id", "event_time", "user_id", "session_id", "event_type", "page"),
)

CART_EVENTS = EventSchema(
    "cart_events",
    _fields(
        *_COMMON,
        *_SESSION,
        ("action", pa.string()),
        ("product_id", pa.int64()),
        ("category", pa.string()),
        ("quantity", pa.int32()),
        ("price", pa.float64()),
        *_EXPERIMENT,
    ),
    required=(
        "event_id",
        "event_time",
        "user_id",
        "session_id",
        "action",
        "product_id",
        "quantity",
        "price",
    ),
)

SEARCH = EventSchema(
    "search",
    _fields(
        *_COMMON,
        *_SESSION,
        ("query", pa.string()),
        ("category", pa.string()),
        ("results_count", pa.int32()),
        ("clicked_product_id", pa.int64()),
    ),
    required=("event_id", "event_time", "user_id", "session_id", "query", "results_count"),
)

PURCHASES = EventSchema(
    "purchases",
    _fields(
        *_COMMON,
        *_SESSION,
        ("order_id", pa.string()),
        ("product_id", pa.int64()),
        ("category", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", pa.float64()),
        ("total_amount", pa.float64()),
        ("currency", pa.string()),
        ("payment_method", pa.string()),
        *_EXPERIMENT,
    ),
    required=(
        "event_id",
        "event_time",
        "user_id",
        "order_id",
        "product_id",
        "quantity",
        "unit_price",
        "total_amount",
        "currency",
    ),
)

TRANSACTIONS = EventSchema(
    "transactions",
    _fields(
        *_COMMON,
        ("user_id", pa.int64()),
        ("card_id", pa.string()),
        ("merchant_id", pa.string()),
        ("merchant_category", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("country", pa.string()),
        ("city", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("device_id", pa.string()),
        ("ip_address", pa.string()),
        ("channel", pa.string()),
        ("label_is_fraud", pa.bool_()),
        ("label_fraud_pattern", pa.string()),
    ),
    required=(
        "event_id",
        "event_time",
        "user_id",
        "card_id",
        "merchant_id",
        "merchant_category",
        "amount",
        "currency",
        "country",
        "latitude",
        "longitude",
        "device_id",
        "channel",
        "label_is_fraud",
    ),
)

SENSOR_READINGS = EventSchema(
    "sensor_readings",
    _fields(
        *_COMMON,
        ("device_id", pa.string()),
        ("sensor_id", pa.string()),
        ("sensor_type", pa.string()),
        ("plant", pa.string()),
        ("sequence", pa.int64()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("label_anomaly", pa.string()),
        ("label_failure_at", TIMESTAMP),
    ),
    required=(
        "event_id",
        "event_time",
        "device_id",
        "sensor_id",
        "sensor_type",
        "sequence",
        "value",
        "unit",
    ),
)

# Closed vocabularies of categorical fields: part of the event contract. The generators
# draw from them and silver rejects rows outside them (docs/events.md lists them).
VOCABULARIES: dict[str, dict[str, tuple[str, ...]]] = {
    "clickstream": {
        "event_type": ("page_view", "product_view"),
        "page": ("home", "category", "product", "cart", "checkout"),
        "device": ("web", "ios", "android"),
        "variant": ("control", "treatment"),
    },
    "cart_events": {"action": ("add", "remove"), "variant": ("control", "treatment")},
    "purchases": {"variant": ("control", "treatment")},
    "transactions": {"channel": ("pos", "online", "mobile")},
    "sensor_readings": {"sensor_type": ("temperature", "vibration", "pressure", "current")},
}

EVENT_SCHEMAS: dict[str, EventSchema] = {
    schema.name: schema
    for schema in (CLICKSTREAM, CART_EVENTS, SEARCH, PURCHASES, TRANSACTIONS, SENSOR_READINGS)
}

# Columns the ingest sidecar adds to every event when it lands in bronze.
INGEST_COLUMNS = _fields(
    ("_kafka_partition", pa.int32()),
    ("_kafka_offset", pa.int64()),
    ("_ingested_at", TIMESTAMP),
    ("event_date", pa.date32()),
)


def bronze_schema(event: EventSchema) -> pa.Schema:
    """The bronze table of an event type: the event's fields plus ingest provenance."""
    return pa.schema([*event.schema, *INGEST_COLUMNS])


QUARANTINE = _fields(
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("kafka_timestamp", TIMESTAMP),
    ("key", pa.binary()),
    ("value", pa.binary()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("quarantined_at", TIMESTAMP),
    ("quarantine_date", pa.date32()),
)


def silver_schema(topic: str) -> pa.Schema:
    """A silver table: the event's fields, when it landed, and its event date."""
    event = EVENT_SCHEMAS[topic].schema
    return pa.schema(
        [*event, pa.field("_ingested_at", TIMESTAMP), pa.field("event_date", pa.date32())]
    )


# Rows silver set aside: which table, which event, the rules broken and the row as JSON.
REJECTED_ROWS = _fields(
    ("table", pa.string()),
    ("event_id", pa.string()),
    ("event_date", pa.date32()),
    ("broken_rules", pa.list_(pa.string())),
    ("row", pa.string()),
    ("rejected_at", TIMESTAMP),
)

# Hourly aggregates per sensor (gold, IoT): the seed's avg/min/max/stddev per sensor-hour.
SENSOR_HOURLY = _fields(
    ("device_id", pa.string()),
    ("sensor_id", pa.string()),
    ("sensor_type", pa.string()),
    ("plant", pa.string()),
    ("hour", TIMESTAMP),
    ("event_date", pa.date32()),
    ("readings", pa.int64()),
    ("avg_value", pa.float64()),
    ("min_value", pa.float64()),
    ("max_value", pa.float64()),
    ("stddev_value", pa.float64()),
)
