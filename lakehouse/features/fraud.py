"""Fraud features of a card transaction: one definition for training and for the decision
service, so the model scores at serving time exactly what it learnt from.

A transaction is judged against three things, all known before it happened:

- the holder's and the device's **earlier transactions** (`history`): counts and amounts
  over the last hour, day and week (velocity), the time and distance since the holder's
  previous payment (geo-velocity), whether the device or merchant is new to the holder,
  and how many other holders paid from the same device in the last day;
- the holder's **profile as of the day before** (`gold.fraud_user_profiles`): how far the
  amount is from the holder's norm, whether the country is foreign to them, tenure;
- the **merchant-category risk** of the 30 days before (`gold.fraud_daily_stats`): the
  smoothed fraud rate of the (category, channel) pair.

Training passes weeks of transactions as both candidates and history; the service passes
one candidate and the holder's and device's recent transactions. "Earlier" is strictly
earlier (to the second), so a transaction never counts itself and a batch gives every row
what the service would have known when it arrived. Windows are computed for all rows at
once: history sorted by (group, time) and two binary searches per window, no Python loop
per transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.geo import haversine_km
from lakehouse.transforms.tables import run_sql

# What a transaction must carry (candidates and history alike).
TRANSACTION_COLUMNS = [
    "event_id",
    "event_time",
    "user_id",
    "merchant_id",
    "merchant_category",
    "amount",
    "country",
    "latitude",
    "longitude",
    "device_id",
    "channel",
]

# What a candidate carries besides: its context, attached by `attach_context` (training)
# or looked up by the service. Profile columns are NULL for a holder never seen before.
CONTEXT_COLUMNS = [
    "profile_transactions",
    "profile_days_active",
    "profile_avg_amount",
    "profile_stddev_amount",
    "profile_home_country",
    "profile_devices",
    "profile_merchants",
    "category_risk",
]

FEATURES = (
    "amount",
    "txn_count_1h",
    "txn_count_24h",
    "txn_count_7d",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last",
    "km_from_last",
    "geo_velocity_kmh",
    "amount_zscore",
    "amount_to_avg",
    "new_device",
    "new_merchant",
    "device_txns_by_others_24h",
    "foreign_country",
    "category_risk",
    "channel_online",
    "channel_mobile",
    "profile_transactions",
    "profile_days_active",
)

# Real-time aggregates beside the model's features: the decision service's rules read them
# (the seed's "3+ transactions in 5 minutes", per-device velocity); the model does not, so
# adding one here needs no retrain.
AGGREGATES = (
    "txn_count_5m",
    "amount_sum_7d",
    "device_txn_count_1h",
    "device_txn_count_24h",
    "device_txn_count_7d",
    "device_amount_sum_24h",
)
SIGNALS = (*FEATURES, *AGGREGATES)
"""Every column `transaction_features` computes besides `event_id`."""

# The signals that come from earlier transactions or the holder's profile: unknown (NaN),
# not zero, when that state could not be read (the service's degraded mode).
STATE_SIGNALS = tuple(
    name for name in SIGNALS
    if name.startswith(("txn_count", "amount_sum", "device_", "profile_"))
    or name in ("seconds_since_last", "km_from_last", "geo_velocity_kmh", "amount_zscore",
                "amount_to_avg", "new_device", "new_merchant", "foreign_country")
)

FIVE_MINUTES, HOUR, DAY, WEEK = 300, 3600, 86_400, 7 * 86_400
RISK_DAYS = 30
# A (category, channel) pair's fraud rate is shrunk towards the overall rate as if it had
# this many more transactions at that rate: a quiet pair cannot look risky by chance.
RISK_PRIOR_TRANSACTIONS = 2_000


def category_risk(stats: pa.Table, days: list[date]) -> pa.Table:
    """Per day D of `days` and (category, channel): the smoothed fraud rate over the
    `RISK_DAYS` days before D in `gold.fraud_daily_stats` rows `stats`."""
    wanted = pa.table({"event_date": pa.array(sorted(set(days)), pa.date32())})
    return run_sql(
        f"""
        WITH windowed AS (
            SELECT d.event_date, s.merchant_category, s.channel,
                   sum(s.transactions) AS transactions,
                   sum(s.fraud_transactions) AS fraud
            FROM wanted AS d JOIN stats AS s
              ON s.event_date BETWEEN d.event_date - {RISK_DAYS} AND d.event_date - 1
            GROUP BY ALL
        ),
        overall AS (
            SELECT event_date, sum(fraud) / sum(transactions) AS rate
            FROM windowed GROUP BY event_date
        )
        SELECT w.event_date, w.merchant_category, w.channel,
               (w.fraud + o.rate * {RISK_PRIOR_TRANSACTIONS})
                   / (w.transactions + {RISK_PRIOR_TRANSACTIONS}) AS category_risk
        FROM windowed AS w JOIN overall AS o USING (event_date)
        """,
        deterministic=True,
        wanted=wanted,
        stats=stats,
    )


def attach_context(candidates: pa.Table, profiles: pa.Table, risk: pa.Table) -> pa.Table:
    """`candidates` with their context columns: the holder's profile as of the day before
    the transaction (`gold.fraud_user_profiles` rows) and the day's `category_risk` rows.

    Candidates keep their order; a holder without a profile, or a pair without history,
    gets NULLs, which the features turn into "unknown" (NaN) rather than zero.
    """
    return run_sql(
        """
        SELECT c.*,
               p.transactions AS profile_transactions,
               p.days_active AS profile_days_active,
               p.avg_amount AS profile_avg_amount,
               p.stddev_amount AS profile_stddev_amount,
               p.home_country AS profile_home_country,
               p.devices AS profile_devices,
               p.merchants AS profile_merchants,
               r.category_risk
        FROM (SELECT *, row_number() OVER () AS _position FROM candidates) AS c
        LEFT JOIN profiles AS p
          ON p.user_id = c.user_id AND p.event_date = CAST(c.event_time AS DATE) - 1
        LEFT JOIN risk AS r
          ON r.event_date = CAST(c.event_time AS DATE)
         AND r.merchant_category = c.merchant_category AND r.channel = c.channel
        ORDER BY c._position
        """,
        candidates=candidates,
        profiles=profiles,
        risk=risk,
    ).drop_columns(["_position"])


@dataclass(frozen=True)
class _Windows:
    """History sorted by (group, time) for one grouping, searchable by composite key."""

    keys: np.ndarray  # group code << 32 | seconds since the origin, sorted
    order: np.ndarray  # history row of each sorted position


def transaction_features(candidates: pa.Table, history: pa.Table) -> pa.Table:
    """`event_id` plus `SIGNALS` (float32, NaN where unknown) for every candidate: the
    model's `FEATURES` and the rules' `AGGREGATES`.

    `candidates` carry `TRANSACTION_COLUMNS` and `CONTEXT_COLUMNS`; `history` carries
    `TRANSACTION_COLUMNS` and may include the candidates themselves (only strictly
    earlier rows count). It must cover the week before the earliest candidate for the
    windows to be complete.
    """
    seconds = _seconds(history["event_time"])
    now = _seconds(candidates["event_time"])
    origin = int(min(seconds.min(initial=now.min()), now.min())) - WEEK - 1
    seconds, now = seconds - origin, now - origin

    users_h, users_c = _codes(history["user_id"], candidates["user_id"])
    devices_h, devices_c = _codes(history["device_id"], candidates["device_id"])
    merchant_h, merchant_c = _codes(history["merchant_id"], candidates["merchant_id"])
    pairs_h, pairs_c = _pair_codes((users_h, devices_h), (users_c, devices_c))
    merchants_h, merchants_c = _pair_codes((users_h, merchant_h), (users_c, merchant_c))
    by_user = _sorted(users_h, seconds)
    by_device = _sorted(devices_h, seconds)
    by_pair = _sorted(pairs_h, seconds)
    by_merchant = _sorted(merchants_h, seconds)

    amount_h = _floats(history["amount"])
    amount = _floats(candidates["amount"])
    user_key = (users_c << 32) | now
    features: dict[str, np.ndarray] = {"amount": amount}
    device_key = (devices_c << 32) | now
    for name, window in (("5m", FIVE_MINUTES), ("1h", HOUR), ("24h", DAY), ("7d", WEEK)):
        features[f"txn_count_{name}"] = _count(by_user, user_key, window)
    for name, window in (("1h", HOUR), ("24h", DAY), ("7d", WEEK)):
        features[f"amount_sum_{name}"] = _sum(by_user, user_key, window, amount_h)
        features[f"device_txn_count_{name}"] = _count(by_device, device_key, window)
    features["device_amount_sum_24h"] = _sum(by_device, device_key, DAY, amount_h)

    previous = _previous(by_user, user_key)
    found = previous >= 0
    if found.any():
        row = by_user.order[np.where(found, previous, 0)]
        elapsed = np.where(found, now - seconds[row], np.nan)
        distance = np.where(found, haversine_km(
            _floats(candidates["latitude"]), _floats(candidates["longitude"]),
            _floats(history["latitude"])[row], _floats(history["longitude"])[row]), np.nan)
    else:  # nobody has paid before (a first payment, or no history at all)
        elapsed = distance = np.full(now.size, np.nan)
    features["seconds_since_last"] = elapsed
    features["km_from_last"] = distance
    # A minute's floor: two payments in the same minute are not a supersonic trip.
    features["geo_velocity_kmh"] = distance / (np.maximum(elapsed, 60.0) / 3600.0)

    average = _floats(candidates["profile_avg_amount"])
    spread = np.fmax(_floats(candidates["profile_stddev_amount"]), 1.0)
    features["amount_zscore"] = (amount - average) / np.where(np.isnan(spread), 1.0, spread)
    features["amount_to_avg"] = amount / average

    # "New" means first used by the holder within the last day: not in yesterday's profile
    # and not in the history older than a day (for holders without a profile), so every
    # transaction of a same-day burst from a stolen device counts as on a new device.
    pair_key, merchant_key = (pairs_c << 32) | now, (merchants_c << 32) | now
    seen_device = _count(by_pair, pair_key, WEEK) > _count(by_pair, pair_key, DAY)
    seen_merchant = _count(by_merchant, merchant_key, WEEK) > _count(by_merchant, merchant_key, DAY)
    features["new_device"] = ~(seen_device | _listed(candidates, "device_id", "profile_devices"))
    features["new_merchant"] = ~(
        seen_merchant | _listed(candidates, "merchant_id", "profile_merchants")
    )
    features["device_txns_by_others_24h"] = (
        features["device_txn_count_24h"] - _count(by_pair, pair_key, DAY)
    )
    # NULL (no profile) comparisons stay NULL, hence NaN: unknown, not "at home".
    features["foreign_country"] = _floats(
        pc.not_equal(candidates["country"], candidates["profile_home_country"])
    )
    features["category_risk"] = _floats(candidates["category_risk"])
    features["channel_online"] = _floats(pc.equal(candidates["channel"], "online"))
    features["channel_mobile"] = _floats(pc.equal(candidates["channel"], "mobile"))
    features["profile_transactions"] = _floats(candidates["profile_transactions"])
    features["profile_days_active"] = _floats(candidates["profile_days_active"])

    columns = {"event_id": candidates["event_id"]}
    columns.update({name: pa.array(np.asarray(features[name], dtype=np.float32))
                    for name in SIGNALS})
    return pa.table(columns)


def feature_matrix(features: pa.Table) -> np.ndarray:
    """The `FEATURES` columns as one float32 matrix (rows x features) for the model."""
    return np.column_stack([features[name].to_numpy() for name in FEATURES]).astype(np.float32)


def _seconds(times: pa.ChunkedArray | pa.Array) -> np.ndarray:
    micros = pc.cast(times, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return micros.to_numpy(zero_copy_only=False) // 1_000_000


def _floats(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Numbers as float64 with NULL as NaN."""
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _codes(history: pa.ChunkedArray, candidates: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 codes for the values of both columns, shared between them."""
    both = pa.chunked_array(history.chunks + candidates.chunks, type=history.type)
    codes = pc.dictionary_encode(both).combine_chunks().indices.to_numpy(zero_copy_only=False)
    codes = codes.astype(np.int64)
    return codes[: len(history)], codes[len(history):]


def _pair_codes(history: tuple[np.ndarray, np.ndarray],
                candidates: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of (a, b) pairs, shared between history and candidates."""
    width = int(max(history[1].max(initial=0), candidates[1].max(initial=0))) + 1
    combined = np.concatenate([history[0] * width + history[1],
                               candidates[0] * width + candidates[1]])
    _, codes = np.unique(combined, return_inverse=True)
    return codes[: history[0].size], codes[history[0].size:]


def _sorted(groups: np.ndarray, seconds: np.ndarray) -> _Windows:
    keys = (groups << 32) | seconds
    order = np.argsort(keys, kind="stable")
    return _Windows(keys[order], order)


def _count(windows: _Windows, keys: np.ndarray, window: int) -> np.ndarray:
    """History rows of the same group in [t - window, t) for each candidate key."""
    return (np.searchsorted(windows.keys, keys, "left")
            - np.searchsorted(windows.keys, keys - window, "left"))


def _sum(windows: _Windows, keys: np.ndarray, window: int, values: np.ndarray) -> np.ndarray:
    """Sum of `values` over the same rows as `_count`, by prefix sums."""
    prefix = np.concatenate([[0.0], np.cumsum(values[windows.order])])
    return (prefix[np.searchsorted(windows.keys, keys, "left")]
            - prefix[np.searchsorted(windows.keys, keys - window, "left")])


def _previous(windows: _Windows, keys: np.ndarray) -> np.ndarray:
    """Sorted position of the same group's latest strictly earlier row, or -1."""
    if windows.keys.size == 0:
        return np.full(keys.size, -1)
    position = np.searchsorted(windows.keys, keys, "left") - 1
    same_group = (position >= 0) & ((windows.keys[np.maximum(position, 0)] >> 32) == (keys >> 32))
    return np.where(same_group, position, -1)


def _listed(candidates: pa.Table, column: str, lists: str) -> np.ndarray:
    """Whether each candidate's `column` value is in its `lists` value (NULL list: no)."""
    values = candidates[lists].combine_chunks()
    owner = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(values)
    wanted = candidates[column].combine_chunks().take(pa.array(owner))
    hits = pc.equal(flat, wanted).to_numpy(zero_copy_only=False).astype(bool)
    found = np.zeros(candidates.num_rows, dtype=bool)
    np.logical_or.at(found, owner[hits], True)
    return found
