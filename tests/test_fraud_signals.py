"""One definition of the fraud features, two ways in: training's Arrow tables and the
decision service's plain columns (`lakehouse.features.fraud.Columns`) must give the same
signals to the bit, whatever the payments, so serving scores exactly what training saw.
Hypothesis draws the payments: few holders, devices and merchants (so windows overlap),
times that collide to the second, missing profiles, lists and risks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.decisions.rules import load_rules
from lakehouse.features.fraud import (
    CONTEXT_COLUMNS,
    FEATURES,
    SIGNALS,
    STATE_SIGNALS,
    TRANSACTION_COLUMNS,
    compute_signals,
    feature_matrix,
    transaction_features,
)
from lakehouse.online.fraud_state import event_micros, history_columns
from tests.support.fraud import ARROW_TYPES

START = 1_772_000_000 * 1_000_000  # epoch microseconds, March 2026

DEVICES = [f"d{k}" for k in range(4)]
MERCHANTS = [f"m{k}" for k in range(4)]
COUNTRIES = ["FR", "DE", "US"]


@st.composite
def payments(draw: st.DrawFn, count: tuple[int, int]) -> list[dict[str, Any]]:
    """Payments within a week, two seconds apart at most often enough to collide."""
    rows = []
    for k in range(draw(st.integers(*count))):
        second = draw(st.one_of(st.integers(0, 40), st.integers(0, 7 * 86_400)))
        rows.append(
            {
                "event_id": f"e{k}-{draw(st.integers(0, 10**6))}",
                "event_time": START + second * 1_000_000 + draw(st.sampled_from([0, 1, 999_999])),
                "user_id": draw(st.integers(1, 3)),
                "merchant_id": draw(st.sampled_from(MERCHANTS)),
                "merchant_category": draw(st.sampled_from(["grocery", "gift_cards"])),
                "amount": draw(st.floats(0.01, 5_000, allow_nan=False)),
                "country": draw(st.sampled_from(COUNTRIES)),
                "latitude": draw(st.floats(-90, 90, allow_nan=False)),
                "longitude": draw(st.floats(-180, 180, allow_nan=False)),
                "device_id": draw(st.sampled_from(DEVICES)),
                "channel": draw(st.sampled_from(["pos", "online", "mobile"])),
            }
        )
    return rows


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    """A candidate's context: a profile (or none) and a risk (or none)."""
    known = draw(st.booleans())
    return {
        "profile_transactions": draw(st.integers(1, 500)) if known else None,
        "profile_days_active": draw(st.integers(1, 60)) if known else None,
        "profile_avg_amount": draw(st.floats(1, 500)) if known else None,
        "profile_stddev_amount": draw(st.none() | st.floats(0, 300)) if known else None,
        "profile_home_country": draw(st.sampled_from(COUNTRIES)) if known else None,
        "profile_devices": draw(st.lists(st.sampled_from(DEVICES))) if known else None,
        "profile_merchants": (
            draw(st.none() | st.lists(st.sampled_from(MERCHANTS))) if known else None
        ),
        "category_risk": draw(st.none() | st.floats(0, 0.05)),
    }


def arrow(rows: list[dict[str, Any]], names: list[str]) -> pa.Table:
    """The reference side: rows as a typed Arrow table, as training reads them."""
    return pa.table(
        {name: pa.array([row[name] for row in rows], ARROW_TYPES[name]) for name in names}
    )


def plain(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    """The service's side: the same rows as plain columns."""
    return {name: [row[name] for row in rows] for name in names}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(earlier=payments((0, 40)), batch=payments((1, 6)), data=st.data())
def test_plain_columns_give_the_tables_signals_to_the_bit(
    earlier: list[dict[str, Any]], batch: list[dict[str, Any]], data: st.DataObject
) -> None:
    candidates = [
        {**row, "event_id": f"c{k}", **data.draw(contexts())} for k, row in enumerate(batch)
    ]
    history = earlier + candidates  # the service appends the batch, as here
    names = [*TRANSACTION_COLUMNS, *CONTEXT_COLUMNS]
    reference = transaction_features(arrow(candidates, names), arrow(history, TRANSACTION_COLUMNS))
    served = compute_signals(plain(candidates, names), plain(history, TRANSACTION_COLUMNS))
    assert served.num_rows == len(candidates)
    for name in SIGNALS:
        np.testing.assert_array_equal(served[name], reference[name].to_numpy(), err_msg=name)
    assert served.matrix().tobytes() == feature_matrix(reference).tobytes()
    rules = load_rules()
    assert (rules.signal_hits(served) == rules.signal_hits(reference)).all()


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        ),
    )
)
def test_a_candidates_time_is_the_microsecond_arrow_would_store(moment: datetime) -> None:
    stored = pa.array([moment], pa.timestamp("us", tz="UTC")).cast(pa.int64())[0].as_py()
    assert event_micros(moment) == stored


def test_remembered_history_decodes_each_payment_once_in_order() -> None:
    rows = [
        [f"e{k}", START + k, k % 2, "m", "grocery", 1.5, "FR", 1.0, 2.0, "d", "pos"]
        for k in range(3)
    ]
    members = [orjson.dumps(rows[k]) for k in (2, 0, 2, 1, 0)]
    decoded = history_columns(members)
    assert list(decoded) == TRANSACTION_COLUMNS
    assert decoded["event_id"] == ("e2", "e0", "e1")
    assert decoded["event_time"] == (START + 2, START, START + 1)
    assert history_columns([]) == dict.fromkeys(TRANSACTION_COLUMNS, ())


def test_unknown_state_is_nan_and_the_rest_stays() -> None:
    row = dict(
        zip(
            TRANSACTION_COLUMNS,
            ["e", START, 1, "m", "grocery", 12.5, "FR", 48.8, 2.3, "d", "online"],
            strict=True,
        )
    )
    candidate = {**plain([row], TRANSACTION_COLUMNS), **{name: [None] for name in CONTEXT_COLUMNS}}
    signals = compute_signals(candidate, candidate)
    before = signals.block.copy()
    signals.forget(STATE_SIGNALS)
    for index, name in enumerate(SIGNALS):
        if name in STATE_SIGNALS:
            assert np.isnan(signals[name]).all(), name
        else:
            np.testing.assert_array_equal(signals[name], before[index], err_msg=name)
    assert signals.matrix().shape == (1, len(FEATURES))
