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

import itertools
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

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
    name
    for name in SIGNALS
    if name.startswith(("txn_count", "amount_sum", "device_", "profile_"))
    or name
    in (
        "seconds_since_last",
        "km_from_last",
        "geo_velocity_kmh",
        "amount_zscore",
        "amount_to_avg",
        "new_device",
        "new_merchant",
        "foreign_country",
    )
)

FIVE_MINUTES, HOUR, DAY, WEEK = 300, 3600, 86_400, 7 * 86_400
RISK_DAYS = 30
# A (category, channel) pair's fraud rate is shrunk towards the overall rate as if it had
# this many more transactions at that rate: a quiet pair cannot look risky by chance.
RISK_PRIOR_TRANSACTIONS = 2_000
_MICROS = pa.timestamp("us", tz="UTC")
_SIGNAL_ROW = {name: index for index, name in enumerate(SIGNALS)}
Column = pa.Array | pa.ChunkedArray | Sequence[Any] | np.ndarray
"""One column of `Columns`: Arrow, or plain values (a list, a tuple, a NumPy array)."""


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


class _Windows:
    """History sorted by (group, time) for one grouping, searchable by composite key, with
    each candidate's upper bound searched once for all the windows that end at it, and
    each window's lower bound once for its count and its sum."""

    def __init__(
        self, groups: np.ndarray, seconds: np.ndarray, candidates: np.ndarray, now: np.ndarray
    ) -> None:
        keys = (groups << 32) | seconds
        self.order = np.argsort(keys, kind="stable")  # history row of each sorted position
        self.keys = keys[self.order]  # group code << 32 | seconds since the origin, sorted
        self.wanted = (candidates << 32) | now
        self.upper = np.searchsorted(self.keys, self.wanted, "left")
        self._prefix: np.ndarray | None = None
        self._lower: dict[int, np.ndarray] = {}

    def lower(self, window: int) -> np.ndarray:
        """Sorted position of each candidate's first row in [t - window, t)."""
        if window not in self._lower:
            self._lower[window] = np.searchsorted(self.keys, self.wanted - window, "left")
        return self._lower[window]

    def count(self, window: int) -> np.ndarray:
        """History rows of the same group in [t - window, t) for each candidate."""
        return self.upper - self.lower(window)

    def total(self, window: int, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (one per history row, the same on every call) over the rows
        `count` counts, by prefix sums."""
        if self._prefix is None:
            self._prefix = np.concatenate([[0.0], np.cumsum(values[self.order])])
        return self._prefix[self.upper] - self._prefix[self.lower(window)]

    def previous(self) -> np.ndarray:
        """Sorted position of the same group's latest strictly earlier row, or -1."""
        if self.keys.size == 0:
            return np.full(self.wanted.size, -1)
        position = self.upper - 1
        same = (position >= 0) & ((self.keys[np.maximum(position, 0)] >> 32) == (self.wanted >> 32))
        return np.where(same, position, -1)


Columns = pa.Table | Mapping[str, Sequence[Any] | np.ndarray]
"""What the features read: an Arrow table (training's days of payments: one kernel per
column), or plain columns by name (the decision service's few rows: Python values or
NumPy arrays, no table to build), with `event_time` as epoch microseconds (integers)
and NULL as None. Both give the same signals to the bit (tests pin it)."""


class Signals:
    """`SIGNALS` (float32, NaN where unknown) for each candidate, as one block with a row
    per signal: what `compute_signals` gives the decision service, which hands the model
    and the rules views of it rather than a table. Read like a table: `signals[name]`,
    `num_rows`."""

    def __init__(self, block: np.ndarray) -> None:
        self.block = block

    @property
    def num_rows(self) -> int:
        """How many candidates."""
        return self.block.shape[1]

    def __getitem__(self, name: str) -> np.ndarray:
        """The signal `name` for every candidate (a view of the block)."""
        return self.block[_SIGNAL_ROW[name]]

    def matrix(self) -> np.ndarray:
        """The `FEATURES` as one float32 matrix (rows x features), as `feature_matrix`
        makes it from `transaction_features`' table."""
        return np.ascontiguousarray(self.block[: len(FEATURES)].T)

    def forget(self, names: tuple[str, ...]) -> None:
        """Set `names` to NaN (unknown) in place: the state they come from was not read."""
        self.block[[_SIGNAL_ROW[name] for name in names]] = np.nan


def transaction_features(candidates: pa.Table, history: pa.Table) -> pa.Table:
    """`event_id` plus `SIGNALS` (float32, NaN where unknown) for every candidate: the
    model's `FEATURES` and the rules' `AGGREGATES`; `compute_signals` as a table.

    `candidates` carry `TRANSACTION_COLUMNS` and `CONTEXT_COLUMNS`; `history` carries
    `TRANSACTION_COLUMNS` and may include the candidates themselves (only strictly
    earlier rows count). It must cover the week before the earliest candidate for the
    windows to be complete.
    """
    block = compute_signals(candidates, history).block
    columns = [candidates["event_id"], *(pa.array(row) for row in block)]
    return pa.Table.from_arrays(columns, names=["event_id", *SIGNALS])


def compute_signals(candidates: Columns, history: Columns) -> Signals:
    """The definition of every signal (see `transaction_features` for what the inputs
    carry), from Arrow tables or plain columns (`Columns`; both inputs the same kind).

    The decision service calls this for every few payments, so per-call overhead counts:
    each column is converted once, each window's upper bound is searched once, and plain
    columns skip building Arrow tables only to take them apart again.
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
    by_user = _Windows(users_h, seconds, users_c, now)
    by_device = _Windows(devices_h, seconds, devices_c, now)
    by_pair = _Windows(pairs_h, seconds, pairs_c, now)
    by_merchant = _Windows(merchants_h, seconds, merchants_c, now)

    amount_h = _floats(history["amount"])
    amount = _floats(candidates["amount"])
    features: dict[str, np.ndarray] = {"amount": amount}
    for name, window in (("5m", FIVE_MINUTES), ("1h", HOUR), ("24h", DAY), ("7d", WEEK)):
        features[f"txn_count_{name}"] = by_user.count(window)
    for name, window in (("1h", HOUR), ("24h", DAY), ("7d", WEEK)):
        features[f"amount_sum_{name}"] = by_user.total(window, amount_h)
        features[f"device_txn_count_{name}"] = by_device.count(window)
    features["device_amount_sum_24h"] = by_device.total(DAY, amount_h)

    previous = by_user.previous()
    found = previous >= 0
    if found.any():
        row = by_user.order[np.where(found, previous, 0)]
        elapsed = np.where(found, now - seconds[row], np.nan)
        distance = np.where(
            found,
            haversine_km(
                _floats(candidates["latitude"]),
                _floats(candidates["longitude"]),
                _floats(history["latitude"])[row],
                _floats(history["longitude"])[row],
            ),
            np.nan,
        )
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
    pair_day = by_pair.count(DAY)
    seen_device = by_pair.count(WEEK) > pair_day
    seen_merchant = by_merchant.count(WEEK) > by_merchant.count(DAY)
    features["new_device"] = ~(seen_device | _listed(candidates, "device_id", "profile_devices"))
    features["new_merchant"] = ~(
        seen_merchant | _listed(candidates, "merchant_id", "profile_merchants")
    )
    features["device_txns_by_others_24h"] = features["device_txn_count_24h"] - pair_day
    # NULL (no profile) comparisons stay NULL, hence NaN: unknown, not "at home".
    features["foreign_country"] = _differs(
        candidates["country"], candidates["profile_home_country"]
    )
    features["category_risk"] = _floats(candidates["category_risk"])
    features["channel_online"] = _equals(candidates["channel"], "online")
    features["channel_mobile"] = _equals(candidates["channel"], "mobile")
    features["profile_transactions"] = _floats(candidates["profile_transactions"])
    features["profile_days_active"] = _floats(candidates["profile_days_active"])

    # One float32 block, one contiguous row per signal: each column is then a view.
    block = np.empty((len(SIGNALS), now.size), dtype=np.float32)
    for index, name in enumerate(SIGNALS):
        block[index] = features[name]
    return Signals(block)


def feature_matrix(features: pa.Table) -> np.ndarray:
    """The `FEATURES` columns as one float32 matrix (rows x features) for the model."""
    return np.column_stack([features[name].to_numpy() for name in FEATURES]).astype(np.float32)


def _seconds(times: Column) -> np.ndarray:
    """Epoch seconds (floored) of timestamps, or of plain epoch microseconds."""
    if not isinstance(times, pa.Array | pa.ChunkedArray):
        return np.asarray(times, dtype=np.int64) // 1_000_000
    if times.type != _MICROS:
        times = pc.cast(times, _MICROS)
    return times.to_numpy(zero_copy_only=False).view(np.int64) // 1_000_000


def _floats(values: Column) -> np.ndarray:
    """Numbers (or booleans) as float64 with NULL (None) as NaN."""
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        return np.asarray(values, dtype=np.float64)
    kind = values.type
    numeric = pa.types.is_floating(kind) or pa.types.is_integer(kind)
    if numeric or (pa.types.is_boolean(kind) and values.null_count == 0):
        # Arrow turns numeric NULLs into NaN itself; a cast first would cost a kernel call.
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _codes(history: Column, candidates: Column) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 codes for the values of both columns, shared between them, numbered in
    order of first appearance (history first) whatever the input: the order of the
    windows' sort, hence of their sums, follows the codes."""
    if isinstance(history, pa.ChunkedArray) and isinstance(candidates, pa.ChunkedArray):
        both = pa.chunked_array(history.chunks + candidates.chunks, type=history.type)
        encoded = pc.dictionary_encode(both).combine_chunks().indices
        codes = encoded.to_numpy(zero_copy_only=False).astype(np.int64)
    else:  # C-level loops only: a dict of the values in order of first appearance
        values = [*history, *candidates]
        code = dict(zip(dict.fromkeys(values), itertools.count()))
        codes = np.fromiter(map(code.__getitem__, values), dtype=np.int64, count=len(values))
    return codes[: len(history)], codes[len(history) :]


def _pair_codes(
    history: tuple[np.ndarray, np.ndarray], candidates: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of (a, b) pairs, shared between history and candidates, under 2**31 (they
    share an int64 with the seconds): a * width + b while that fits, else made dense."""
    width = int(max(history[1].max(initial=0), candidates[1].max(initial=0))) + 1
    height = int(max(history[0].max(initial=0), candidates[0].max(initial=0))) + 1
    combined = np.concatenate(
        [history[0] * width + history[1], candidates[0] * width + candidates[1]]
    )
    if height * width >= 2**31:
        combined = np.unique(combined, return_inverse=True)[1]
    return combined[: history[0].size], combined[history[0].size :]


def _listed(candidates: Columns, column: str, lists: str) -> np.ndarray:
    """Whether each candidate's `column` value is in its `lists` value (NULL list: no)."""
    if not isinstance(candidates, pa.Table):
        return np.array(
            [
                listed is not None and value in listed
                for value, listed in zip(candidates[column], candidates[lists], strict=True)
            ],
            dtype=bool,
        )
    values = candidates[lists].combine_chunks()
    owner = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(values)
    wanted = candidates[column].combine_chunks().take(pa.array(owner))
    hits = pc.equal(flat, wanted).to_numpy(zero_copy_only=False).astype(bool)
    return np.bincount(owner[hits], minlength=candidates.num_rows) > 0


def _differs(left: Column, right: Column) -> np.ndarray:
    """1.0 where the values differ, 0.0 where equal, NaN where either is NULL."""
    if isinstance(left, pa.Array | pa.ChunkedArray):
        return _floats(pc.not_equal(left, right))
    return np.array(
        [
            np.nan if a is None or b is None else float(a != b)
            for a, b in zip(left, right, strict=True)
        ],
        dtype=np.float64,
    )


def _equals(values: Column, wanted: str) -> np.ndarray:
    """1.0 where the value is `wanted`, 0.0 where not, NaN where NULL."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return _floats(pc.equal(values, wanted))
    return np.array(
        [np.nan if value is None else float(value == wanted) for value in values], dtype=np.float64
    )
