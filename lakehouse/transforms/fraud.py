"""Fraud gold: per card holder and day, lifetime profiles "as of" a day, daily fraud stats.

- `fraud_user_daily`: one row per holder and day with additive sums (count, amount, squared
  amount, fraud count), min/max, first/last time and the day's distinct countries,
  merchants, devices, cards and channels, plus transactions per country.
- `fraud_user_profiles`: the lifetime profile of every holder seen up to and including a
  day D, rebuilt from all `fraud_user_daily` rows up to D (never from later ones), so a
  backfilled profile is exactly what the fraud service would have loaded that night.
  Counts are exact; the value lists keep the `PROFILE_LIST_CAPS` most recently used values
  (most recent first, ties by value), which bounds the row a service keeps per holder.
- `fraud_daily_stats`: per day, UTC hour, merchant category and channel: volumes, fraud
  rate and one count per fraud pattern (wide columns: the patterns are a closed set,
  `FRAUD_PATTERNS`).
- `fraud_decision_quality`: per day, the decision service's decisions (silver
  `fraud_decisions`) judged against the labels of their transactions: precision and
  recall of BLOCK and of REVIEW-or-BLOCK, false-positive rates.

The fraud label (`label_is_fraud`) stands in for confirmed chargebacks and is as noisy (the
generator labels friendly fraud as fraud and leaves unreported fraud legit); the
per-pattern counts follow `label_fraud_pattern`, the generator's truth, so they need not
add up to the labelled count. The label may be NULL (not known yet: a payment the
decision service forwarded has no label until a chargeback, or its absence, settles it).
Fraud is counted only where the label is true, so a NULL label counts as not (yet) fraud
in the per-holder and daily stats (`fraud_rate` is confirmed fraud over all
transactions), and decision quality judges labelled decisions only.
"""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa

from lakehouse.catalog import (
    FRAUD_DECISIONS,
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_DECISION_QUALITY,
    GOLD_FRAUD_USER_DAILY,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_FRAUD_DECISIONS,
    SILVER_TRANSACTIONS,
)
from lakehouse.schemas import (
    FRAUD_DAILY_STATS,
    FRAUD_DECISION_QUALITY,
    FRAUD_PATTERNS,
    FRAUD_USER_DAILY,
    FRAUD_USER_PROFILES,
    VOCABULARIES,
)
from lakehouse.settings import Settings
from lakehouse.transforms.tables import DUCKDB, Guard, Spelling, read_days, replace_day, run_sql

# Most recently used values a profile keeps per list; the distinct counts stay exact.
# 20 countries and devices and 10 cards cover every honest holder (the generator gives
# each one or two of each); 50 merchants is about two months of a busy holder's shopping.
PROFILE_LIST_CAPS = {"countries": 20, "devices": 20, "merchants": 50, "cards": 10}


def daily_sql(spelling: Spelling) -> str:
    """The per-holder daily SQL in an engine's spelling. Besides `spelling`, it keeps to
    what DuckDB and Spark SQL read alike: array_agg, array_distinct, array_sort (sorting
    the (country, transactions) pairs sorts them by country: one pair per country) and
    any_value."""
    return f"""
WITH per_country AS (
    SELECT user_id, event_date,
           array_sort(array_agg({spelling.struct}(country, transactions)))
               AS country_transactions
    FROM (SELECT user_id, event_date, country, count(*) AS transactions FROM txns GROUP BY ALL)
    GROUP BY ALL
)
SELECT user_id, event_date,
       count(*) AS transactions,
       sum(amount) AS amount_sum,
       sum(amount * amount) AS amount_sq_sum,
       min(amount) AS amount_min,
       max(amount) AS amount_max,
       min(event_time) AS first_txn_at,
       max(event_time) AS last_txn_at,
       array_sort(array_distinct(array_agg(country))) AS countries,
       any_value(country_transactions) AS country_transactions,
       array_sort(array_distinct(array_agg(merchant_id))) AS merchants,
       array_sort(array_distinct(array_agg(device_id))) AS devices,
       array_sort(array_distinct(array_agg(card_id))) AS cards,
       array_sort(array_distinct(array_agg(channel))) AS channels,
       count(*) FILTER (WHERE label_is_fraud) AS fraud_transactions,
       coalesce(sum(amount) FILTER (WHERE label_is_fraud), 0) AS fraud_amount
FROM txns JOIN per_country USING (user_id, event_date)
GROUP BY user_id, event_date
ORDER BY event_date, user_id
"""


# The lifetime spread is combined from the days' sums (Chan et al.): the sum of squared
# deviations is the days' own (sum of squares - sum^2 / n) plus n * (day mean - lifetime
# mean)^2 per day, which cancels far less than one global sum-of-squares formula.
def profile_sql(spelling: Spelling) -> str:
    """The profile SQL in an engine's spelling: one text for DuckDB and Spark."""
    items = "\nUNION ALL\n".join(
        f"SELECT user_id, event_date, '{kind}' AS kind, {spelling.unnest}({kind}) AS value "
        "FROM upto"
        for kind in PROFILE_LIST_CAPS
    )
    aggregates = ",\n".join(
        spelling.ordered.format(
            value="value", order="recency", where=f"kind = '{kind}' AND recency <= {cap}"
        )
        + f" AS {kind}, count(*) FILTER (WHERE kind = '{kind}') AS distinct_{kind}"
        for kind, cap in PROFILE_LIST_CAPS.items()
    )
    return f"""
WITH upto AS (SELECT * FROM daily WHERE event_date <= $as_of),
totals AS (
    SELECT user_id,
           sum(transactions)::BIGINT AS transactions,
           sum(amount_sum) AS amount_sum,
           max(amount_max) AS max_amount,
           min(first_txn_at) AS first_seen,
           max(last_txn_at) AS last_seen,
           count(*) AS days_active,
           sum(fraud_transactions)::BIGINT AS fraud_transactions
    FROM upto GROUP BY user_id
),
spread AS (
    SELECT d.user_id,
           greatest(sum(
               (d.amount_sq_sum - d.amount_sum * d.amount_sum / d.transactions)
               + d.transactions * pow(d.amount_sum / d.transactions
                                      - t.amount_sum / t.transactions, 2)
           ), 0) AS m2
    FROM upto AS d JOIN totals AS t USING (user_id)
    GROUP BY d.user_id
),
home AS (
    SELECT user_id, country AS home_country
    FROM (
        SELECT user_id, country, row_number() OVER (
            PARTITION BY user_id ORDER BY n DESC, country NULLS LAST) AS country_rank
        FROM (
            SELECT user_id, c.country AS country, sum(c.transactions) AS n
            FROM (SELECT user_id, {spelling.unnest}(country_transactions) AS c FROM upto)
            GROUP BY ALL
        )
    )
    WHERE country_rank = 1
),
used AS (
    SELECT user_id, kind, value, max(event_date) AS last_used
    FROM ({items})
    GROUP BY ALL
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY user_id, kind ORDER BY last_used DESC, value) AS recency
    FROM used
),
lists AS (
    SELECT user_id,
{aggregates}
    FROM ranked GROUP BY user_id
)
SELECT t.user_id, $as_of::DATE AS event_date, t.transactions, t.amount_sum,
       t.amount_sum / t.transactions AS avg_amount,
       CASE WHEN t.transactions > 1 THEN sqrt(s.m2 / (t.transactions - 1)) END AS stddev_amount,
       t.max_amount, t.first_seen, t.last_seen, t.days_active, h.home_country,
       l.distinct_countries, l.distinct_devices, l.distinct_merchants, l.distinct_cards,
       coalesce(l.countries, {spelling.empty}) AS countries,
       coalesce(l.devices, {spelling.empty}) AS devices,
       coalesce(l.merchants, {spelling.empty}) AS merchants,
       coalesce(l.cards, {spelling.empty}) AS cards,
       t.fraud_transactions
FROM totals AS t
JOIN spread AS s USING (user_id)
JOIN home AS h USING (user_id)
JOIN lists AS l USING (user_id)
ORDER BY t.user_id
"""


_DAILY_SQL = daily_sql(DUCKDB)
_PROFILE_SQL = profile_sql(DUCKDB)

_PATTERN_COUNTS = ",\n".join(
    f"count(*) FILTER (WHERE label_fraud_pattern = '{pattern}') AS {pattern}_transactions"
    for pattern in FRAUD_PATTERNS
)

STATS_SQL = f"""
SELECT event_date, hour(event_time) AS hour, merchant_category, channel,
       count(*) AS transactions,
       count(*) FILTER (WHERE label_is_fraud) AS fraud_transactions,
       count(*) FILTER (WHERE label_is_fraud) / count(*) AS fraud_rate,
       sum(amount) AS amount,
       coalesce(sum(amount) FILTER (WHERE label_is_fraud), 0) AS fraud_amount,
       avg(amount) AS avg_amount,
       count(DISTINCT user_id) AS distinct_users,
{_PATTERN_COUNTS}
FROM txns
GROUP BY event_date, hour, merchant_category, channel
ORDER BY event_date, hour, merchant_category, channel
"""

_BY_CATEGORY_SQL = """
SELECT merchant_category,
       sum(transactions)::BIGINT AS transactions,
       sum(fraud_transactions)::BIGINT AS fraud_transactions,
       sum(fraud_transactions) / sum(transactions) AS fraud_rate,
       sum(fraud_amount) AS fraud_amount
FROM stats
GROUP BY merchant_category
ORDER BY fraud_rate DESC, merchant_category
"""

DECISIONS = VOCABULARIES[FRAUD_DECISIONS.name]["decision"]
APPROVE, REVIEW, BLOCK = DECISIONS

# Labels are looked up among transactions dated the decision's day or the day before (a
# payment at 23:59:59.999 may be decided after midnight); a decision whose transaction is
# not there, or not labelled yet, counts as unlabelled.
_DECISION_QUALITY_SQL = f"""
WITH labels AS (
    SELECT event_id, bool_or(label_is_fraud) AS fraud FROM txns GROUP BY event_id
),
judged AS (
    SELECT d.decision, d.degraded, d.amount, l.fraud
    FROM decisions AS d LEFT JOIN labels AS l ON l.event_id = d.transaction_id
),
counts AS (
    SELECT count(*) AS decisions,
           count(*) FILTER (WHERE decision = '{APPROVE}') AS approved,
           count(*) FILTER (WHERE decision = '{REVIEW}') AS reviewed,
           count(*) FILTER (WHERE decision = '{BLOCK}') AS blocked,
           count(*) FILTER (WHERE degraded) AS degraded,
           count(fraud) AS labelled,
           count(*) FILTER (WHERE fraud) AS fraud,
           count(*) FILTER (WHERE fraud AND decision = '{BLOCK}') AS blocked_fraud,
           count(*) FILTER (WHERE NOT fraud AND decision = '{BLOCK}') AS blocked_legit,
           count(*) FILTER (WHERE fraud AND decision IN ('{REVIEW}', '{BLOCK}'))
               AS review_or_block_fraud,
           count(*) FILTER (WHERE NOT fraud AND decision IN ('{REVIEW}', '{BLOCK}'))
               AS review_or_block_legit,
           coalesce(sum(amount) FILTER (WHERE fraud), 0) AS fraud_amount,
           coalesce(sum(amount) FILTER (WHERE fraud AND decision = '{BLOCK}'), 0)
               AS blocked_fraud_amount
    FROM judged
)
SELECT $day::DATE AS event_date, *,
       blocked_fraud / nullif(blocked_fraud + blocked_legit, 0) AS block_precision,
       blocked_fraud / nullif(fraud, 0) AS block_recall,
       blocked_legit / nullif(labelled - fraud, 0) AS block_false_positive_rate,
       review_or_block_fraud / nullif(review_or_block_fraud + review_or_block_legit, 0)
           AS review_or_block_precision,
       review_or_block_fraud / nullif(fraud, 0) AS review_or_block_recall,
       review_or_block_legit / nullif(labelled - fraud, 0)
           AS review_or_block_false_positive_rate
FROM counts
WHERE decisions > 0
"""

TXN_COLUMNS = [
    "event_time",
    "event_date",
    "user_id",
    "card_id",
    "merchant_id",
    "merchant_category",
    "amount",
    "country",
    "device_id",
    "channel",
    "label_is_fraud",
    "label_fraud_pattern",
]


def fraud_user_daily(transactions: pa.Table) -> pa.Table:
    """One row per card holder and event date of silver `transactions`."""
    return run_sql(_DAILY_SQL, FRAUD_USER_DAILY, deterministic=True, txns=transactions)


def fraud_user_profiles(daily: pa.Table, as_of: date) -> pa.Table:
    """The lifetime profile, as of `as_of` (inclusive), of every holder in `daily`.

    Rows of `daily` after `as_of` are ignored, so passing more than needed is harmless.
    `stddev_amount` is the sample standard deviation over all of a holder's transactions,
    NULL for a holder with one.
    """
    return run_sql(
        _PROFILE_SQL, FRAUD_USER_PROFILES, {"as_of": as_of}, deterministic=True, daily=daily
    )


def fraud_daily_stats(transactions: pa.Table) -> pa.Table:
    """Per event date, UTC hour, merchant category and channel: volumes, fraud and fraud
    patterns.

    `distinct_users` counts holders within the row: do not add it across rows.
    """
    return run_sql(STATS_SQL, FRAUD_DAILY_STATS, deterministic=True, txns=transactions)


def fraud_decision_quality(decisions: pa.Table, transactions: pa.Table, day: date) -> pa.Table:
    """One row for `day`: its `decisions` (silver `fraud_decisions` rows) against the
    labels of `transactions` (silver rows with `event_id` and `label_is_fraud`); no row
    for a day without decisions."""
    return run_sql(
        _DECISION_QUALITY_SQL,
        FRAUD_DECISION_QUALITY,
        {"day": day},
        deterministic=True,
        decisions=decisions,
        txns=transactions,
    )


def _transactions_of(settings: Settings, day: date) -> pa.Table:
    return read_days(settings, SILVER_TRANSACTIONS, TXN_COLUMNS, day)


def build_fraud_user_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one event-date partition of gold.fraud_user_daily from silver; idempotent."""
    rows = fraud_user_daily(_transactions_of(settings, day))
    return replace_day(settings, GOLD_FRAUD_USER_DAILY, rows, day, guard)


def build_fraud_user_profiles_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild the profiles as of `day` from every gold.fraud_user_daily day up to it."""
    daily = read_days(settings, GOLD_FRAUD_USER_DAILY, FRAUD_USER_DAILY.names, date.min, day)
    rows = fraud_user_profiles(daily, day)
    return replace_day(settings, GOLD_FRAUD_USER_PROFILES, rows, day, guard)


def build_fraud_daily_stats_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one event-date partition of gold.fraud_daily_stats from silver; idempotent."""
    rows = fraud_daily_stats(_transactions_of(settings, day))
    return replace_day(settings, GOLD_FRAUD_DAILY_STATS, rows, day, guard)


def fraud_rate_by_category(stats: pa.Table) -> pa.Table:
    """gold.fraud_daily_stats rows summed over days, hours and channels, riskiest category
    first."""
    return run_sql(_BY_CATEGORY_SQL, deterministic=True, stats=stats)


def build_fraud_decision_quality_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one day of gold.fraud_decision_quality from silver decisions and the labels
    of the transactions of that day and the day before; idempotent."""
    decisions = read_days(
        settings, SILVER_FRAUD_DECISIONS, ["transaction_id", "decision", "degraded", "amount"], day
    )
    labels = read_days(
        settings, SILVER_TRANSACTIONS, ["event_id", "label_is_fraud"], day - timedelta(days=1), day
    )
    rows = fraud_decision_quality(decisions, labels, day)
    return replace_day(settings, GOLD_FRAUD_DECISION_QUALITY, rows, day, guard)
