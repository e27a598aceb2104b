"""The expectation suites: what must hold for every silver and gold table, and which
failures block the data from flowing on.

How to add an expectation: find the table's `Suite` below and add an `Expect` (any class
of `great_expectations.expectations`, by name, with its arguments) to an existing
`Check`, or add a new `Check` with a name, a one-line reason and `blocking=True` if bad
rows must never be written. The check appears in the Dagster UI on the table's asset the
next time the code location loads; `tests/test_quality.py` shows how to prove it fires.

Blocking, by rule of thumb: the table's key is unique, the columns consumers cannot do
without are present, values are possible at all (a negative price, a 10^6 degC reading)
and categorical values are known. Warnings: volumes unlike recent days, fields that are
usually present, references to things we have not seen, natural-key duplicates where a
retry is harmless downstream.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from statistics import median

from lakehouse import catalog
from lakehouse.catalog import CATALOG, TableSpec
from lakehouse.delta import partition_rows
from lakehouse.schemas import VOCABULARIES
from lakehouse.settings import Settings
from lakehouse.transforms.tables import run_sql, scan_days
from quality.checks import Check, Expect, Suite

VOLUME_HISTORY_DAYS = 7
VOLUME_BAND = (0.5, 2.0)  # a day within half to twice the median of the recent days


# --- building blocks ---------------------------------------------------------------------


def columns_match(spec: TableSpec) -> Check:
    """The table's columns, in order: what its readers were written against."""
    names = spec.schema.names
    return Check(
        "schema_matches",
        "The columns and their order are exactly the catalogued schema.",
        (Expect("ExpectTableColumnsToMatchOrderedList", {"column_list": names}),),
        blocking=True,
    )


def unique(*columns: str, name: str = "key_unique", blocking: bool = True) -> Check:
    """One row per key."""
    if len(columns) == 1:
        expect = Expect("ExpectColumnValuesToBeUnique", {"column": columns[0]})
    else:
        expect = Expect("ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)})
    return Check(name, f"One row per ({', '.join(columns)}).", (expect,), blocking=blocking)


def present(
    *columns: str, name: str = "required_fields_present", mostly: float = 1.0, blocking: bool = True
) -> Check:
    """No nulls in `columns` (or at most 1 - `mostly` of them)."""
    kwargs = {} if mostly >= 1.0 else {"mostly": mostly}
    return Check(
        name,
        f"{', '.join(columns)}: present"
        + ("." if mostly >= 1.0 else f" in at least {mostly:.0%} of rows."),
        tuple(Expect("ExpectColumnValuesToNotBeNull", {"column": c, **kwargs}) for c in columns),
        blocking=blocking,
    )


def between(
    name: str,
    description: str,
    *ranges: tuple[str, float | None, float | None],
    blocking: bool = True,
) -> Check:
    """Each (column, min, max) within its bounds (None: unbounded on that side)."""
    return Check(
        name,
        description,
        tuple(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": column, "min_value": low, "max_value": high},
            )
            for column, low, high in ranges
        ),
        blocking=blocking,
    )


def known_values(topic: str) -> Check:
    """Categorical columns hold only values of the event contract's vocabularies."""
    vocabularies = VOCABULARIES.get(topic, {})
    return Check(
        "categories_known",
        f"{', '.join(vocabularies)}: only the values docs/events.md lists.",
        tuple(
            Expect("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)})
            for column, values in vocabularies.items()
        ),
        blocking=True,
    )


def usual_volume(spec: TableSpec) -> Check:
    """The day's row count against the median of the table's previous days."""

    def expectations(settings: Settings, day: date) -> tuple[Expect, ...]:
        counts = partition_rows(spec, settings)
        recent = [
            counts[earlier]
            for offset in range(1, VOLUME_HISTORY_DAYS + 1)
            if (earlier := day - timedelta(days=offset)) in counts and counts[earlier] > 0
        ]
        if len(recent) < 3:  # too little history to call a day unusual: ask only for rows
            return (Expect("ExpectTableRowCountToBeBetween", {"min_value": 1}),)
        typical = median(recent)
        low, high = VOLUME_BAND
        return (
            Expect(
                "ExpectTableRowCountToBeBetween",
                {"min_value": int(typical * low), "max_value": int(typical * high)},
            ),
        )

    return Check(
        "volume_as_usual",
        f"Rows within {VOLUME_BAND[0]}x-{VOLUME_BAND[1]}x the median of the previous "
        f"{VOLUME_HISTORY_DAYS} days (at least one row while there are under 3 such days).",
        expectations,
    )


def fresh_bronze() -> Check:
    """The newest row of a bronze table landed recently: ingest is running."""

    def expectations(settings: Settings, day: date) -> tuple[Expect, ...]:
        oldest_fresh = datetime.now(UTC) - timedelta(minutes=settings.bronze_freshness_minutes)
        return (
            Expect("ExpectTableRowCountToBeBetween", {"min_value": 1}),
            Expect(
                "ExpectColumnMaxToBeBetween", {"column": "_ingested_at", "min_value": oldest_fresh}
            ),
        )

    return Check(
        "fresh",
        "The newest row of the last two event days landed within BRONZE_FRESHNESS_MINUTES "
        "(default 60): if not, ingest is behind or down.",
        expectations,
    )


def _known_products(settings: Settings, day: date) -> tuple[Expect, ...]:
    """Products shoppers viewed that day or the day before, from bronze clickstream: a
    DuckDB scan of the two days' files (bounded by the build's memory limit), not the
    days' product ids in Arrow (100M values for two 50M-event days)."""
    views = scan_days(settings, catalog.BRONZE_CLICKSTREAM, day - timedelta(days=1), day)
    known = run_sql(
        "SELECT DISTINCT product_id FROM views WHERE product_id IS NOT NULL ORDER BY 1",
        views=views,
    )
    products = known["product_id"].to_pylist()
    return (Expect("ExpectColumnValuesToBeInSet", {"column": "product_id", "value_set": products}),)


def _silver(
    spec: TableSpec,
    *checks: Check,
    natural_key: tuple[str, ...],
    natural_blocking: bool,
    expected: tuple[str, ...] = (),
    expected_mostly: float = 0.99,
    steady_volume: bool = True,
) -> Suite:
    topic = CATALOG.topic(spec.source_topic or "")
    suite_checks = [
        columns_match(spec),
        unique("event_id", name="event_id_unique"),
        present(*topic.event.required),
        unique(*natural_key, name="natural_key_unique", blocking=natural_blocking),
        *checks,
    ]
    if steady_volume:
        suite_checks.append(usual_volume(spec))
    if topic.name in VOCABULARIES:
        suite_checks.insert(3, known_values(topic.name))
    if expected:
        suite_checks.append(
            present(
                *expected, name="expected_fields_present", mostly=expected_mostly, blocking=False
            )
        )
    return Suite(spec, tuple(suite_checks), id_columns=("event_id",))


def _gold(
    spec: TableSpec, key_columns: tuple[str, ...], *checks: Check, steady_volume: bool = True
) -> Suite:
    volume = (usual_volume(spec),) if steady_volume else ()
    return Suite(
        spec,
        (columns_match(spec), unique(*key_columns), *checks, *volume),
        id_columns=key_columns,
    )


# --- silver --------------------------------------------------------------------------------

_SENSOR_RANGES = Check(
    "value_physically_possible",
    "Each reading within what its sensor type can physically report "
    "(temperature -40..200 degC, vibration 0..100 mm/s, pressure 0..100 bar, current 0..500 A).",
    tuple(
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "value", "min_value": limits.physical[0], "max_value": limits.physical[1]},
            where=("sensor_type", limits.sensor_type),
        )
        for limits in catalog.SENSOR_LIMITS.values()
    ),
    blocking=True,
)

_PRICE_ON_PRODUCT_VIEWS = Check(
    "price_on_product_views",
    "Every product view carries the product's price (the price-range features need it).",
    (
        Expect(
            "ExpectColumnValuesToNotBeNull",
            {"column": "price"},
            where=("event_type", "product_view"),
        ),
    ),
    blocking=True,
)

SUITES: dict[str, Suite] = {
    suite.table.key: suite
    for suite in (
        # A reference data set's bronze lands when it is imported, not continuously: no
        # freshness to expect of it.
        *(
            Suite(spec, (fresh_bronze(),), id_columns=("event_id",))
            for spec in CATALOG.landed_tables()
            if spec.source_topic not in catalog.REFERENCE_TOPICS
        ),
        _silver(
            catalog.SILVER_CLICKSTREAM,
            between("price_in_range", "Prices from 0 to 50,000.", ("price", 0, 50_000)),
            _PRICE_ON_PRODUCT_VIEWS,
            natural_key=("session_id", "event_time", "event_type", "page", "product_id"),
            natural_blocking=False,
            expected=("device",),
        ),
        _silver(
            catalog.SILVER_CART_EVENTS,
            between(
                "quantity_in_range",
                "1 to 100 units, prices 0 to 50,000.",
                ("quantity", 1, 100),
                ("price", 0, 50_000),
            ),
            natural_key=("session_id", "event_time", "action", "product_id"),
            natural_blocking=False,
            expected=("category",),
        ),
        _silver(
            catalog.SILVER_SEARCH,
            between(
                "results_count_in_range", "0 to 100,000 results.", ("results_count", 0, 100_000)
            ),
            natural_key=("session_id", "event_time", "query"),
            natural_blocking=False,
            expected=("category",),
            expected_mostly=0.85,  # about 6% of searches have no category by design
        ),
        _silver(
            catalog.SILVER_PURCHASES,
            between(
                "amounts_in_range",
                "Unit prices 0 to 50,000; line totals 0 to 1,000,000; 1 to 100,000 units "
                "a line (a wholesaler's lines run to tens of thousands: UCI Online Retail).",
                ("unit_price", 0, 50_000),
                ("total_amount", 0, 1_000_000),
                ("quantity", 1, 100_000),
            ),
            Check(
                "products_known",
                "Purchased products were viewed that day or the day "
                "before (bronze clickstream): a purchase of an unknown product is a "
                "broken reference.",
                _known_products,
            ),
            # An order may hold the same product on two lines; each line has its own time.
            # A warning, not a block: real order lines repeat a product within an invoice at
            # the same second (UCI Online Retail: about 600 groups a week, half of them
            # identical lines), which a producer retry that minted new ids looks just like;
            # blocking would refuse every real day. event_id keeps redeliveries out.
            natural_key=("order_id", "event_time", "product_id"),
            natural_blocking=False,
            expected=("payment_method",),
        ),
        _silver(
            catalog.SILVER_TRANSACTIONS,
            between(
                "amount_in_range",
                "Payments from 0.01 to 100,000; coordinates on Earth.",
                ("amount", 0.01, 100_000),
                ("latitude", -90, 90),
                ("longitude", -180, 180),
            ),
            natural_key=("card_id", "event_time", "amount", "merchant_id"),
            natural_blocking=True,
            expected=("city",),
        ),
        _silver(
            catalog.SILVER_FRAUD_DECISIONS,
            between(
                "values_in_range",
                "Fraud probabilities in [0, 1]; amounts from 0.01 to 100,000; latencies "
                "from 0 to 60 s.",
                ("fraud_probability", 0, 1),
                ("amount", 0.01, 100_000),
                ("latency_ms", 0, 60_000),
            ),
            # One decision per transaction (the service is idempotent on its id).
            natural_key=("transaction_id",),
            natural_blocking=True,
        ),
        _silver(
            catalog.SILVER_SENSOR_READINGS,
            _SENSOR_RANGES,
            natural_key=("sensor_id", "sequence"),
            natural_blocking=True,
            expected=("plant",),
        ),
        _silver(
            catalog.SILVER_IOT_ALERTS,
            between(
                "scores_in_range",
                "Health scores in [0, 1]; |z| under a million (a finite baseline).",
                ("health_score", 0, 1),
                ("zscore", -1e6, 1e6),
            ),
            # One record per alert and transition (the processor's ids are deterministic).
            natural_key=("alert_id", "state"),
            natural_blocking=True,
            # Alerts come with the machines' troubles: a quiet day, or a bad one, is news
            # about the fleet, not about the pipeline.
            steady_volume=False,
        ),
        _silver(
            catalog.SILVER_ENGINE_CYCLES,
            between(
                "unit_and_cycle_positive",
                "Engines and cycles count from 1.",
                ("unit", 1, None),
                ("cycle", 1, None),
            ),
            # One snapshot per engine and flight: a second one is a producer's retry that
            # minted a new id, or two engines under one name.
            natural_key=("device_id", "cycle"),
            natural_blocking=True,
            # The engines arrive when a data set is imported, not day after day.
            steady_volume=False,
        ),
        # --- gold ---------------------------------------------------------------------------
        _gold(
            catalog.GOLD_SENSOR_HOURLY,
            ("sensor_id", "hour"),
            between(
                "readings_positive", "Every hour has at least one reading.", ("readings", 1, None)
            ),
        ),
        _gold(
            catalog.GOLD_DEVICE_HEALTH_DAILY,
            ("device_id",),
            between(
                "scores_in_range",
                "Health score in [0, 1]; 0 to 24 hours reporting.",
                ("health_score", 0, 1),
                ("hours_reporting", 0, 24),
            ),
            Check(
                "status_known",
                "Status is ok, warn or critical.",
                (
                    Expect(
                        "ExpectColumnValuesToBeInSet",
                        {"column": "status", "value_set": ["ok", "warn", "critical"]},
                    ),
                ),
                blocking=True,
            ),
        ),
        _gold(
            catalog.GOLD_IOT_ALERT_HISTORY,
            ("alert_id",),
            present("device_id", "rule", "severity", "opened_at", "readings"),
            Check(
                "categories_known",
                "rule, severity: the alert contract's values; state open or closed.",
                (
                    *(
                        Expect(
                            "ExpectColumnValuesToBeInSet",
                            {"column": column, "value_set": list(values)},
                        )
                        for column, values in VOCABULARIES["iot_alerts"].items()
                        if column != "state"
                    ),
                    Expect(
                        "ExpectColumnValuesToBeInSet",
                        {"column": "state", "value_set": ["open", "closed"]},
                    ),
                ),
                blocking=True,
            ),
            Check(
                "closed_alerts_have_a_close",
                "An alert in state closed has a close time.",
                (
                    Expect(
                        "ExpectColumnValuesToNotBeNull",
                        {"column": "closed_at"},
                        where=("state", "closed"),
                    ),
                ),
                blocking=True,
            ),
            between(
                "counts_possible",
                "At least one reading per alert; an alert closes at or after it opened "
                "(minutes to close never negative).",
                ("readings", 1, None),
                ("minutes_to_close", 0, None),
            ),
            between(
                "detected_within_the_sla",
                "The processor emitted each open record within the seed's 5-minute alert "
                "SLA of its reading (a slower one is late, not wrong).",
                ("detection_seconds", None, 300),
                blocking=False,
            ),
            # As for silver.iot_alerts: a quiet or a bad day is news about the fleet.
            steady_volume=False,
        ),
        _gold(
            catalog.GOLD_DEVICE_ALERTS_DAILY,
            ("device_id",),
            between(
                "counts_possible",
                "Counts never negative; at most a day (1,440 minutes) under alert.",
                ("alerts_opened", 0, None),
                ("alerts_active", 0, None),
                ("open_at_end_of_day", 0, None),
                ("minutes_under_alert", 0, 1440),
            ),
            Check(
                "opened_within_active",
                "A device's alerts opened and those still open at midnight are among the "
                "alerts active that day.",
                (
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {
                            "column_A": "alerts_active",
                            "column_B": "alerts_opened",
                            "or_equal": True,
                        },
                    ),
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {
                            "column_A": "alerts_active",
                            "column_B": "open_at_end_of_day",
                            "or_equal": True,
                        },
                    ),
                ),
                blocking=True,
            ),
            present("health_score", name="health_known", mostly=0.95, blocking=False),
        ),
        _gold(
            catalog.GOLD_USER_ACTIVITY_DAILY,
            ("user_id",),
            between(
                "amounts_non_negative",
                "Revenue and counts are never negative.",
                ("revenue", 0, None),
                ("page_views", 0, None),
                ("purchases", 0, None),
            ),
        ),
        _gold(
            catalog.GOLD_USER_FEATURES,
            ("user_id",),
            between(
                "window_respected",
                "Active on 1 to 30 of the last 30 days.",
                ("days_active_30d", 1, 30),
            ),
        ),
        _gold(
            catalog.GOLD_PRODUCT_DAILY,
            ("product_id",),
            between(
                "conversion_is_a_share",
                "View-to-purchase conversion in [0, 1].",
                ("view_to_purchase", 0, 1),
            ),
        ),
        _gold(
            catalog.GOLD_SESSION_FUNNEL_DAILY,
            ("category",),
            between(
                "rates_are_shares",
                "View-to-cart, cart-to-purchase and conversion rates in [0, 1]; counts and "
                "revenue never negative.",
                ("view_to_cart_rate", 0, 1),
                ("cart_to_purchase_rate", 0, 1),
                ("conversion_rate", 0, 1),
                ("sessions_viewed", 0, None),
                ("revenue", 0, None),
            ),
            Check(
                "funnel_narrows",
                "Each step counts no more sessions than the step before it.",
                (
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {
                            "column_A": "sessions_viewed",
                            "column_B": "sessions_carted",
                            "or_equal": True,
                        },
                    ),
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {
                            "column_A": "sessions_carted",
                            "column_B": "sessions_purchased",
                            "or_equal": True,
                        },
                    ),
                ),
                blocking=True,
            ),
        ),
        _gold(
            catalog.GOLD_PRODUCT_TRENDING,
            ("product_id",),
            between(
                "ranks_positive",
                "Ranks start at 1.",
                ("popularity_rank", 1, None),
                ("trending_rank", 1, None),
            ),
        ),
        _gold(
            catalog.GOLD_AB_TEST_DAILY,
            ("experiment_id", "variant"),
            between(
                "rates_are_shares",
                "Conversion rates and p-values in [0, 1].",
                ("conversion_rate", 0, 1),
                ("p_value", 0, 1),
            ),
        ),
        _gold(
            catalog.GOLD_FRAUD_USER_DAILY,
            ("user_id",),
            Check(
                "fraud_within_transactions",
                "A holder's fraud count never exceeds their transaction count.",
                (
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {
                            "column_A": "transactions",
                            "column_B": "fraud_transactions",
                            "or_equal": True,
                        },
                    ),
                ),
                blocking=True,
            ),
        ),
        _gold(
            catalog.GOLD_FRAUD_USER_PROFILES,
            ("user_id",),
            between(
                "profile_in_range",
                "Lifetime counts positive; spread non-negative.",
                ("transactions", 1, None),
                ("stddev_amount", 0, None),
            ),
        ),
        _gold(
            catalog.GOLD_FRAUD_DAILY_STATS,
            ("hour", "merchant_category", "channel"),
            between("fraud_rate_is_a_share", "Fraud rate in [0, 1].", ("fraud_rate", 0, 1)),
        ),
        _gold(
            catalog.GOLD_FRAUD_DECISION_QUALITY,
            ("event_date",),
            between(
                "rates_are_shares",
                "Precision, recall and false-positive rates in [0, 1].",
                *(
                    (f"{kind}_{measure}", 0, 1)
                    for kind in ("block", "review_or_block")
                    for measure in ("precision", "recall", "false_positive_rate")
                ),
            ),
            Check(
                "counts_nest",
                "Labelled decisions within all of them, fraud within the labelled, blocked "
                "fraud within the fraud sent to review or blocked.",
                tuple(
                    Expect(
                        "ExpectColumnPairValuesAToBeGreaterThanB",
                        {"column_A": wider, "column_B": narrower, "or_equal": True},
                    )
                    for wider, narrower in (
                        ("decisions", "labelled"),
                        ("labelled", "fraud"),
                        ("review_or_block_fraud", "blocked_fraud"),
                    )
                ),
                blocking=True,
            ),
        ),
        # The service's fallback answer: ten distinct products per user, ranked 1..10.
        Suite(
            catalog.USER_RECOMMENDATIONS,
            (
                columns_match(catalog.USER_RECOMMENDATIONS),
                unique("user_id", "rank"),
                unique("user_id", "product_id", name="products_distinct_per_user"),
                present("user_id", "product_id", "score", "model_version"),
                between("ranks_in_top_10", "Ranks 1 to 10.", ("rank", 1, 10)),
            ),
            id_columns=("user_id", "rank"),
        ),
    )
}


def has_suite(spec: TableSpec) -> bool:
    """Whether the table's rows are checked at all (the quarantine, say, is not)."""
    return spec.key in SUITES


def suite_for(spec: TableSpec) -> Suite:
    """The suite of a catalogued table, with a clear error if it has none."""
    try:
        return SUITES[spec.key]
    except KeyError:
        known = ", ".join(SUITES)
        raise KeyError(f"no quality suite for {spec.key!r}; suites: {known}") from None
