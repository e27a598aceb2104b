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
    ),
)

# One decision of the fraud decision service per transaction (its audit record, kept seven
# years): the transaction's key fields, what was decided and why, and what the service had
# to decide without. `event_id` is the transaction id, so silver's dedup by event id is
# dedup by transaction. `fraud_probability` and `model_version` are null when no model was
# loaded; `missing` names what was unavailable (for example "model", "realtime_state",
# "profile").
FRAUD_DECISIONS = EventSchema(
    "fraud_decisions",
    _fields(
        *_COMMON,
        ("transaction_id", pa.string()),
        ("transaction_time", TIMESTAMP),
        ("user_id", pa.int64()),
        ("card_id", pa.string()),
        ("amount", pa.float64()),
        ("merchant_category", pa.string()),
        ("channel", pa.string()),
        ("decision", pa.string()),
        ("fraud_probability", pa.float64()),
        ("rules_fired", pa.list_(pa.string())),
        ("reasons", pa.list_(pa.string())),
        ("model_version", pa.int64()),
        ("rules_version", pa.string()),
        ("degraded", pa.bool_()),
        ("missing", pa.list_(pa.string())),
        ("latency_ms", pa.float64()),
    ),
    required=(
        "event_id",
        "event_time",
        "transaction_id",
        "transaction_time",
        "user_id",
        "card_id",
        "amount",
        "merchant_category",
        "channel",
        "decision",
        "rules_fired",
        "reasons",
        "rules_version",
        "degraded",
        "missing",
        "latency_ms",
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

# One turbofan engine's flight-data snapshot after each flight (cycle): the engine, which
# part of a run-to-failure data set it belongs to (`split`: `train` engines run until they
# fail, `test` engines stop some time before), its cycle count, the three operational
# settings and 21 sensors, as NASA C-MAPSS records them (`lakehouse import cmapss`,
# docs/events.md). The settings and sensors keep C-MAPSS's own numbering and units (the
# data set does not name most of them), so they are columns of one wide event rather than
# `sensor_readings`, whose sensor types and units are the factory's. `label_failure_cycle`
# is ground truth, like `sensor_readings`' labels: the cycle the engine fails at (a test
# engine's last observed cycle plus its true remaining life), so silver alone carries what
# judging a remaining-useful-life model needs; null where it is not known.
ENGINE_CYCLE_SETTINGS = tuple(f"setting_{i}" for i in range(1, 4))
ENGINE_CYCLE_SENSORS = tuple(f"sensor_{i}" for i in range(1, 22))
ENGINE_CYCLES = EventSchema(
    "engine_cycles",
    _fields(
        *_COMMON,
        ("device_id", pa.string()),
        ("split", pa.string()),
        ("unit", pa.int32()),
        ("cycle", pa.int32()),
        *((name, pa.float64()) for name in (*ENGINE_CYCLE_SETTINGS, *ENGINE_CYCLE_SENSORS)),
        ("label_failure_cycle", pa.int64()),
    ),
    required=(
        "event_id",
        "event_time",
        "device_id",
        "split",
        "unit",
        "cycle",
        *ENGINE_CYCLE_SETTINGS,
        *ENGINE_CYCLE_SENSORS,
    ),
)

# One record per change of an alert's state, produced by the IoT alert processor
# (`lakehouse stream iot-alerts`) to the `iot_alerts` topic: `open` when a sensor (or, for
# `device_health`, a whole device) starts misbehaving, `close` when it has behaved for the
# quiet period; a burst of anomalous readings is one alert. `alert_id` is the same on both
# records and derives from the opening reading, so a replay after a restart produces the
# same ids: `event_id` is `<alert_id>:<state>`, and silver's dedup by event id makes a
# repeated record harmless. `event_time` is the reading time of the transition: the
# opening reading's, or for `close` the last anomalous reading's plus the quiet period
# (= `closed_at`); `detected_at` the processor's wall clock when it emitted the record
# (alert latency). `value` and the baseline fields are those of the opening reading on
# both records; `reading_event_id` is the opening reading (`open`) or the last anomalous
# one (`close`); `readings` counts the anomalous readings of the alert so far (at `close`:
# all of them); `sensor_id`/`sensor_type` are null for device-level alerts.
IOT_ALERTS = EventSchema(
    "iot_alerts",
    _fields(
        *_COMMON,
        ("alert_id", pa.string()),
        ("state", pa.string()),
        ("rule", pa.string()),
        ("severity", pa.string()),
        ("device_id", pa.string()),
        ("sensor_id", pa.string()),
        ("sensor_type", pa.string()),
        ("plant", pa.string()),
        ("value", pa.float64()),
        ("mean_1m", pa.float64()),
        ("baseline_mean", pa.float64()),
        ("baseline_sd", pa.float64()),
        ("zscore", pa.float64()),
        ("limit", pa.float64()),
        ("health_score", pa.float64()),
        ("readings", pa.int64()),
        ("opened_at", TIMESTAMP),
        ("closed_at", TIMESTAMP),
        ("reading_event_id", pa.string()),
        ("detected_at", TIMESTAMP),
        ("message", pa.string()),
    ),
    required=(
        "event_id",
        "event_time",
        "alert_id",
        "state",
        "rule",
        "severity",
        "device_id",
        "readings",
        "opened_at",
        "reading_event_id",
        "detected_at",
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
    "fraud_decisions": {"decision": ("APPROVE", "REVIEW", "BLOCK")},
    "sensor_readings": {"sensor_type": ("temperature", "vibration", "pressure", "current")},
    "engine_cycles": {"split": ("train", "test")},
    "iot_alerts": {
        "state": ("open", "close"),
        "rule": ("zscore", "above_limit", "below_limit", "device_health"),
        "severity": ("warning", "critical"),
    },
}

EVENT_SCHEMAS: dict[str, EventSchema] = {
    schema.name: schema
    for schema in (
        CLICKSTREAM,
        CART_EVENTS,
        SEARCH,
        PURCHASES,
        TRANSACTIONS,
        FRAUD_DECISIONS,
        SENSOR_READINGS,
        IOT_ALERTS,
        ENGINE_CYCLES,
    )
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

# --- E-commerce gold (lakehouse.transforms.ecommerce) -----------------------------------
# Per user and day with any event on any topic. page_views counts every clickstream event
# (product pages included), product_views the product views; purchases counts distinct
# orders; viewed prices are list prices of product views, their sum and count kept so a
# window's average is exact; category_views: product views per category, most viewed first.
USER_ACTIVITY_DAILY = _fields(
    ("event_date", pa.date32()),
    ("user_id", pa.int64()),
    ("sessions", pa.int64()),
    ("page_views", pa.int64()),
    ("product_views", pa.int64()),
    ("cart_adds", pa.int64()),
    ("purchases", pa.int64()),
    ("units", pa.int64()),
    ("revenue", pa.float64()),
    ("searches", pa.int64()),
    ("min_viewed_price", pa.float64()),
    ("max_viewed_price", pa.float64()),
    ("viewed_price_sum", pa.float64()),
    ("priced_views", pa.int64()),
    ("category_views", pa.list_(pa.struct([("category", pa.string()), ("views", pa.int64())]))),
)

# Per user as of event_date D (a snapshot): user_activity_daily summed over D-29..D, for
# users active in that window; top_categories: the three most viewed, ties by name. The
# recommendation service (step 5) loads the latest partition.
USER_FEATURES = _fields(
    ("event_date", pa.date32()),
    ("user_id", pa.int64()),
    ("sessions_30d", pa.int64()),
    ("page_views_30d", pa.int64()),
    ("views_30d", pa.int64()),
    ("cart_adds_30d", pa.int64()),
    ("purchases_30d", pa.int64()),
    ("units_30d", pa.int64()),
    ("revenue_30d", pa.float64()),
    ("searches_30d", pa.int64()),
    ("min_viewed_price_30d", pa.float64()),
    ("max_viewed_price_30d", pa.float64()),
    ("avg_viewed_price_30d", pa.float64()),
    ("top_categories", pa.list_(pa.string())),
    ("days_active_30d", pa.int64()),
    ("last_active_date", pa.date32()),
)

# Per product and day: the funnel. purchases = distinct orders, buyers = distinct users
# who bought; view_to_purchase = share of the day's viewers who bought it that day.
PRODUCT_DAILY = _fields(
    ("event_date", pa.date32()),
    ("product_id", pa.int64()),
    ("category", pa.string()),
    ("views", pa.int64()),
    ("viewers", pa.int64()),
    ("cart_adds", pa.int64()),
    ("purchases", pa.int64()),
    ("buyers", pa.int64()),
    ("units", pa.int64()),
    ("revenue", pa.float64()),
    ("view_to_purchase", pa.float64()),
)

# Per product seen on day D (= event_date): popularity_score = views + 5 cart_adds +
# 20 purchases, ranked 1 = most popular; baseline_views = mean daily views over the days
# of D-7..D-1 that product_daily holds (baseline_days of them); trending_score =
# (views - baseline_views) / sqrt(baseline_views + 1), a Poisson z-score (above 2: rising
# beyond day-to-day noise), ranked 1 = most trending; NULL without any baseline day.
PRODUCT_TRENDING = _fields(
    ("event_date", pa.date32()),
    ("product_id", pa.int64()),
    ("category", pa.string()),
    ("views", pa.int64()),
    ("cart_adds", pa.int64()),
    ("purchases", pa.int64()),
    ("revenue", pa.float64()),
    ("popularity_score", pa.int64()),
    ("popularity_rank", pa.int64()),
    ("baseline_days", pa.int64()),
    ("baseline_views", pa.float64()),
    ("trending_score", pa.float64()),
    ("trending_rank", pa.int64()),
)

# One row per experiment, day and variant: enrolled users active that day, sessions,
# users with an order, conversion_rate = converting_users / users, revenue per user.
# Each non-control variant's row also carries its pooled two-proportion z-test against
# the same day's control: absolute_diff (p_variant - p_control), relative_lift (over
# p_control), z_score, two-sided p_value, 95% CI of the difference (unpooled) and
# significant (p < 0.05); these are NULL on the control row.
AB_TEST_DAILY = _fields(
    ("event_date", pa.date32()),
    ("experiment_id", pa.string()),
    ("variant", pa.string()),
    ("users", pa.int64()),
    ("sessions", pa.int64()),
    ("converting_users", pa.int64()),
    ("conversion_rate", pa.float64()),
    ("orders", pa.int64()),
    ("revenue", pa.float64()),
    ("revenue_per_user", pa.float64()),
    ("absolute_diff", pa.float64()),
    ("relative_lift", pa.float64()),
    ("z_score", pa.float64()),
    ("p_value", pa.float64()),
    ("diff_ci_low", pa.float64()),
    ("diff_ci_high", pa.float64()),
    ("significant", pa.bool_()),
)

# Per day and product category: the session funnel, closed (each step counts sessions that
# also took the steps before it, in that category that day): sessions_viewed (a product
# view), sessions_carted (viewed and added to cart), sessions_purchased (viewed, added and
# bought); the three rates between them; orders and revenue of the category's order
# lines. The row `category = 'all'` (ALL_CATEGORIES) counts each session once, whatever
# categories it touched: the shop's conversion rate.
ALL_CATEGORIES = "all"
SESSION_FUNNEL_DAILY = _fields(
    ("event_date", pa.date32()),
    ("category", pa.string()),
    ("sessions_viewed", pa.int64()),
    ("sessions_carted", pa.int64()),
    ("sessions_purchased", pa.int64()),
    ("view_to_cart_rate", pa.float64()),
    ("cart_to_purchase_rate", pa.float64()),
    ("conversion_rate", pa.float64()),
    ("orders", pa.int64()),
    ("revenue", pa.float64()),
)

# --- Fraud and IoT gold ---------------------------------------------------------------
# The fraud patterns named in `label_fraud_pattern` (docs/events.md): one count column each
# in gold.fraud_daily_stats. The first seven are fraud the holder did not make;
# `familiar_fraud` is fraud indistinguishable from the holder's own payments and
# `friendly_fraud` a holder's own payment disputed as fraud (labelled fraud, not fraud).
FRAUD_PATTERNS = (
    "velocity_burst",
    "impossible_travel",
    "amount_spike",
    "compromised_device",
    "mimicry",
    "slow_card_testing",
    "account_takeover",
    "familiar_fraud",
    "friendly_fraud",
)

# Per card holder and day: additive sums (the lifetime profile is rebuilt by summing them),
# the day's distinct values, and transactions per country (for the home country).
FRAUD_USER_DAILY = _fields(
    ("user_id", pa.int64()),
    ("event_date", pa.date32()),
    ("transactions", pa.int64()),
    ("amount_sum", pa.float64()),
    ("amount_sq_sum", pa.float64()),
    ("amount_min", pa.float64()),
    ("amount_max", pa.float64()),
    ("first_txn_at", TIMESTAMP),
    ("last_txn_at", TIMESTAMP),
    ("countries", pa.list_(pa.string())),
    (
        "country_transactions",
        pa.list_(pa.struct([("country", pa.string()), ("transactions", pa.int64())])),
    ),
    ("merchants", pa.list_(pa.string())),
    ("devices", pa.list_(pa.string())),
    ("cards", pa.list_(pa.string())),
    ("channels", pa.list_(pa.string())),
    ("fraud_transactions", pa.int64()),
    ("fraud_amount", pa.float64()),
)

# Lifetime profile per card holder as of `event_date` (inclusive): what the online fraud
# service loads. Counts are exact; the lists keep the most recently used values.
FRAUD_USER_PROFILES = _fields(
    ("user_id", pa.int64()),
    ("event_date", pa.date32()),
    ("transactions", pa.int64()),
    ("amount_sum", pa.float64()),
    ("avg_amount", pa.float64()),
    ("stddev_amount", pa.float64()),
    ("max_amount", pa.float64()),
    ("first_seen", TIMESTAMP),
    ("last_seen", TIMESTAMP),
    ("days_active", pa.int64()),
    ("home_country", pa.string()),
    ("distinct_countries", pa.int64()),
    ("distinct_devices", pa.int64()),
    ("distinct_merchants", pa.int64()),
    ("distinct_cards", pa.int64()),
    ("countries", pa.list_(pa.string())),
    ("devices", pa.list_(pa.string())),
    ("merchants", pa.list_(pa.string())),
    ("cards", pa.list_(pa.string())),
    ("fraud_transactions", pa.int64()),
)

# Per day, UTC hour, merchant category and channel: volumes, fraud and one count per fraud
# pattern. Every count and amount adds up over hours, channels and categories.
FRAUD_DAILY_STATS = _fields(
    ("event_date", pa.date32()),
    ("hour", pa.int32()),
    ("merchant_category", pa.string()),
    ("channel", pa.string()),
    ("transactions", pa.int64()),
    ("fraud_transactions", pa.int64()),
    ("fraud_rate", pa.float64()),
    ("amount", pa.float64()),
    ("fraud_amount", pa.float64()),
    ("avg_amount", pa.float64()),
    ("distinct_users", pa.int64()),
    *((f"{pattern}_transactions", pa.int64()) for pattern in FRAUD_PATTERNS),
)

# Per day of the decision service's decisions, judged against the ground truth: how many
# of each decision, and, among decisions whose transaction has a known label
# (`labelled`; silver transactions' `label_is_fraud`, in production confirmed
# chargebacks), how many frauds were blocked or at least sent to review and how many
# legitimate payments were. Precision, recall and false-positive rate are NULL when their
# denominator is zero; the counts add up over days.
FRAUD_DECISION_QUALITY = _fields(
    ("event_date", pa.date32()),
    ("decisions", pa.int64()),
    ("approved", pa.int64()),
    ("reviewed", pa.int64()),
    ("blocked", pa.int64()),
    ("degraded", pa.int64()),
    ("labelled", pa.int64()),
    ("fraud", pa.int64()),
    ("blocked_fraud", pa.int64()),
    ("blocked_legit", pa.int64()),
    ("review_or_block_fraud", pa.int64()),
    ("review_or_block_legit", pa.int64()),
    ("block_precision", pa.float64()),
    ("block_recall", pa.float64()),
    ("block_false_positive_rate", pa.float64()),
    ("review_or_block_precision", pa.float64()),
    ("review_or_block_recall", pa.float64()),
    ("review_or_block_false_positive_rate", pa.float64()),
    ("fraud_amount", pa.float64()),
    ("blocked_fraud_amount", pa.float64()),
)

# Per device and day: coverage, per sensor type mean / max / max hourly stddev / drift,
# a health score and status, and the failure ground truth (lakehouse.transforms.iot).
DEVICE_HEALTH_DAILY = _fields(
    ("device_id", pa.string()),
    ("plant", pa.string()),
    ("event_date", pa.date32()),
    ("readings", pa.int64()),
    ("hours_reporting", pa.int64()),
    ("sensors_reporting", pa.int64()),
    ("first_reading_at", TIMESTAMP),
    ("last_reading_at", TIMESTAMP),
    *(
        (f"{sensor_type}_{stat}", pa.float64())
        for sensor_type in VOCABULARIES["sensor_readings"]["sensor_type"]
        for stat in ("mean", "max", "max_hourly_stddev", "drift")
    ),
    ("drift_score", pa.float64()),
    ("volatility_score", pa.float64()),
    ("health_score", pa.float64()),
    ("status", pa.string()),
    ("anomalous_readings", pa.int64()),
    ("failed", pa.bool_()),
    ("hours_to_failure", pa.float64()),
)

# --- IoT alerts gold (lakehouse.transforms.alerts) --------------------------------------
# One row per alert the alert processor raised, partitioned by the day it opened (a home
# that never moves): its open and close records folded together, `closed_at` and
# `minutes_to_close` NULL while no close is known. A close on a later day rewrites the row
# in its opening day's partition. `readings` is the close record's count when closed (all
# the anomalous readings), the open record's otherwise; the values are those of the
# transitions, the only readings an alert record carries; `detection_seconds` is the
# processor's delay from the opening reading to emitting the open record.
IOT_ALERT_HISTORY = _fields(
    ("event_date", pa.date32()),
    ("alert_id", pa.string()),
    ("device_id", pa.string()),
    ("plant", pa.string()),
    ("sensor_id", pa.string()),
    ("sensor_type", pa.string()),
    ("rule", pa.string()),
    ("severity", pa.string()),
    ("state", pa.string()),
    ("opened_at", TIMESTAMP),
    ("closed_at", TIMESTAMP),
    ("minutes_to_close", pa.float64()),
    ("readings", pa.int64()),
    ("open_value", pa.float64()),
    ("open_zscore", pa.float64()),
    ("max_abs_zscore", pa.float64()),
    ("min_health_score", pa.float64()),
    ("detected_at", TIMESTAMP),
    ("detection_seconds", pa.float64()),
)
ALERT_RULES: tuple[str, ...] = VOCABULARIES["iot_alerts"]["rule"]
ALERT_SEVERITIES: tuple[str, ...] = VOCABULARIES["iot_alerts"]["severity"]

# Per device and day: every device with a health row that day or an alert open at some
# moment of it. Alerts opened that day, by rule and by severity; alerts closed that day;
# minutes of the day with at least one alert open (overlapping alerts count once); alerts
# still open at the end of the day; and the device's health that day (NULL without a
# gold.device_health_daily row). A day's figures need only the records up to its end: an
# alert not closed by midnight was open until midnight whenever it closes.
DEVICE_ALERTS_DAILY = _fields(
    ("event_date", pa.date32()),
    ("device_id", pa.string()),
    ("plant", pa.string()),
    ("alerts_opened", pa.int64()),
    *((f"{rule}_opened", pa.int64()) for rule in ALERT_RULES),
    *((f"{severity}_opened", pa.int64()) for severity in ALERT_SEVERITIES),
    ("alerts_closed", pa.int64()),
    ("alerts_active", pa.int64()),
    ("minutes_under_alert", pa.float64()),
    ("open_at_end_of_day", pa.int64()),
    ("health_score", pa.float64()),
    ("status", pa.string()),
)


# The batch top 10 of every user the recommender champion knows, as of a day: the
# recommendation service's fallback when its online path is down (step 5). rank 1 is the
# best; score is the ALS dot product; model_version names the registry version.
USER_RECOMMENDATIONS = _fields(
    ("event_date", pa.date32()),
    ("user_id", pa.int64()),
    ("rank", pa.int64()),
    ("product_id", pa.int64()),
    ("score", pa.float64()),
    ("model_version", pa.int64()),
)

# The model registry (lakehouse.models.registry): one row per trained model version.
# `params`, `metrics` and `training_data` are JSON objects (parameters, held-out metrics,
# and the Delta version of every input table), so each model keeps its own shape.
MODEL_REGISTRY = _fields(
    ("model_name", pa.string()),
    ("version", pa.int64()),
    ("registered_at", TIMESTAMP),
    ("artifact_uri", pa.string()),
    ("artifact_sha256", pa.string()),
    ("params", pa.string()),
    ("metrics", pa.string()),
    ("training_data", pa.string()),
    ("promotion_metric", pa.string()),
    ("promotion_value", pa.float64()),
    ("champion_version", pa.int64()),
    ("promoted", pa.bool_()),
    ("decision", pa.string()),
)

# Per-device operating limits (lakehouse.device_limits): one row per (device, sensor type)
# whose limits differ from the catalog's per-type `SENSOR_LIMITS`. `low` and `high` both
# null: no operating limit is known for that device's sensor (the limit rules stay quiet).
DEVICE_LIMITS = _fields(
    ("device_id", pa.string()),
    ("sensor_type", pa.string()),
    ("low", pa.float64()),
    ("high", pa.float64()),
    ("source", pa.string()),
    ("updated_at", TIMESTAMP),
)
