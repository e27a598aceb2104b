"""Fraud and IoT gold: hand-computed rows from small inputs, lifetime profiles equal to a
one-shot aggregation over the raw transactions with nothing leaking from later days, device
health on generated machines, idempotent partitions, and the assets through Dagster."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from assets.fraud.gold import (
    gold_fraud_daily_stats,
    gold_fraud_user_daily,
    gold_fraud_user_profiles,
)
from assets.iot.gold import gold_device_health_daily, gold_sensor_hourly
from assets.resources import platform_resources
from assets.tables import asset_key
from lakehouse.catalog import (
    CATALOG,
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_USER_DAILY,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_TRANSACTIONS,
    table_uri,
)
from lakehouse.delta import ensure_table, replace_partition
from lakehouse.schemas import (
    EVENT_SCHEMAS,
    FRAUD_PATTERNS,
    SENSOR_HOURLY,
    bronze_schema,
    silver_schema,
)
from lakehouse.settings import Settings
from lakehouse.transforms.fraud import (
    PROFILE_LIST_CAPS,
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_daily_stats,
    fraud_rate_by_category,
    fraud_user_daily,
    fraud_user_profiles,
)
from lakehouse.transforms.iot import (
    build_device_health_partition,
    build_sensor_hourly_partition,
    device_health_daily,
)
from lakehouse.transforms.silver import build_silver_partition
from streaming.generators import make_generator
from streaming.ingest.decode import BatchDecoder
from tests.test_silver import DAY, land, reading

D1, D2, D3 = date(2026, 11, 21), date(2026, 11, 22), DAY


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def txn(
    event_id: str,
    when: datetime,
    user_id: int,
    amount: float,
    *,
    country: str = "US",
    merchant: str = "m-groc-0001",
    category: str = "grocery",
    device: str = "dev-1",
    card: str = "card-1",
    channel: str = "pos",
    pattern: str | None = None,
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_time": when,
        "user_id": user_id,
        "card_id": card,
        "merchant_id": merchant,
        "merchant_category": category,
        "amount": amount,
        "currency": "USD",
        "country": country,
        "city": "Somewhere",
        "latitude": 40.0,
        "longitude": -74.0,
        "device_id": device,
        "ip_address": None,
        "channel": channel,
        "label_is_fraud": pattern is not None,
        "label_fraud_pattern": pattern,
        "_ingested_at": when + timedelta(seconds=1),
        "event_date": when.date(),
    }


def transactions(*rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=silver_schema("transactions"))


# Holder 1 pays twice at home on D1, then is defrauded from abroad on D2 (a new device);
# holder 2 pays once on D2.
SMALL = (
    txn("t1", at(D1, 9), 1, 10.0),
    txn("t2", at(D1, 18), 1, 30.0, merchant="m-rest-0002", category="restaurants"),
    txn(
        "t3",
        at(D2, 2),
        1,
        50.0,
        country="GB",
        device="dev-9",
        channel="online",
        pattern="velocity_burst",
        category="gift_cards",
        merchant="m-gift-0003",
    ),
    txn(
        "t4",
        at(D2, 3),
        1,
        70.0,
        country="GB",
        device="dev-9",
        channel="online",
        pattern="velocity_burst",
        category="gift_cards",
        merchant="m-gift-0003",
    ),
    txn("t5", at(D2, 12), 2, 5.0, card="card-2", device="dev-2"),
)


def test_user_daily_rows_match_a_hand_computation() -> None:
    rows = fraud_user_daily(transactions(*SMALL)).to_pylist()
    assert rows == [
        {
            "user_id": 1, "event_date": D1, "transactions": 2, "amount_sum": 40.0,
            "amount_sq_sum": 1000.0, "amount_min": 10.0, "amount_max": 30.0,
            "first_txn_at": at(D1, 9), "last_txn_at": at(D1, 18),
            "countries": ["US"], "country_transactions": [{"country": "US", "transactions": 2}],
            "merchants": ["m-groc-0001", "m-rest-0002"], "devices": ["dev-1"],
            "cards": ["card-1"], "channels": ["pos"],
            "fraud_transactions": 0, "fraud_amount": 0.0,
        },
        {
            "user_id": 1, "event_date": D2, "transactions": 2, "amount_sum": 120.0,
            "amount_sq_sum": 7400.0, "amount_min": 50.0, "amount_max": 70.0,
            "first_txn_at": at(D2, 2), "last_txn_at": at(D2, 3),
            "countries": ["GB"], "country_transactions": [{"country": "GB", "transactions": 2}],
            "merchants": ["m-gift-0003"], "devices": ["dev-9"],
            "cards": ["card-1"], "channels": ["online"],
            "fraud_transactions": 2, "fraud_amount": 120.0,
        },
        {
            "user_id": 2, "event_date": D2, "transactions": 1, "amount_sum": 5.0,
            "amount_sq_sum": 25.0, "amount_min": 5.0, "amount_max": 5.0,
            "first_txn_at": at(D2, 12), "last_txn_at": at(D2, 12),
            "countries": ["US"], "country_transactions": [{"country": "US", "transactions": 1}],
            "merchants": ["m-groc-0001"], "devices": ["dev-2"],
            "cards": ["card-2"], "channels": ["pos"],
            "fraud_transactions": 0, "fraud_amount": 0.0,
        },
    ]  # fmt: skip


def test_profiles_match_a_hand_computation() -> None:
    daily = fraud_user_daily(transactions(*SMALL))
    rows = fraud_user_profiles(daily, D2).to_pylist()
    # Holder 1: 10, 30, 50, 70: mean 40, sample variance (900 + 100 + 100 + 900) / 3.
    # Two transactions in the US and two in GB: the tie goes to the first name, GB.
    # Lists: most recently used first (dev-9 on D2 before dev-1 on D1).
    assert rows == [
        {
            "user_id": 1, "event_date": D2, "transactions": 4, "amount_sum": 160.0,
            "avg_amount": 40.0, "stddev_amount": pytest.approx((2000 / 3) ** 0.5, abs=1e-12),
            "max_amount": 70.0, "first_seen": at(D1, 9), "last_seen": at(D2, 3),
            "days_active": 2, "home_country": "GB", "distinct_countries": 2,
            "distinct_devices": 2, "distinct_merchants": 3, "distinct_cards": 1,
            "countries": ["GB", "US"], "devices": ["dev-9", "dev-1"],
            "merchants": ["m-gift-0003", "m-groc-0001", "m-rest-0002"], "cards": ["card-1"],
            "fraud_transactions": 2,
        },
        {
            "user_id": 2, "event_date": D2, "transactions": 1, "amount_sum": 5.0,
            "avg_amount": 5.0, "stddev_amount": None, "max_amount": 5.0,
            "first_seen": at(D2, 12), "last_seen": at(D2, 12), "days_active": 1,
            "home_country": "US", "distinct_countries": 1, "distinct_devices": 1,
            "distinct_merchants": 1, "distinct_cards": 1, "countries": ["US"],
            "devices": ["dev-2"], "merchants": ["m-groc-0001"], "cards": ["card-2"],
            "fraud_transactions": 0,
        },
    ]  # fmt: skip
    # As of D1 only holder 1's first day counts: nothing from D2 leaks in.
    (early,) = fraud_user_profiles(daily, D1).to_pylist()
    assert (early["transactions"], early["home_country"], early["devices"]) == (2, "US", ["dev-1"])
    assert early["stddev_amount"] == pytest.approx(200**0.5, abs=1e-12)
    assert early["fraud_transactions"] == 0


def test_daily_stats_match_a_hand_computation() -> None:
    rows = fraud_daily_stats(transactions(*SMALL)).to_pylist()
    zero = {f"{pattern}_transactions": 0 for pattern in FRAUD_PATTERNS}
    assert rows == [
        {"event_date": D1, "hour": 9, "merchant_category": "grocery", "channel": "pos",
         "transactions": 1, "fraud_transactions": 0, "fraud_rate": 0.0, "amount": 10.0,
         "fraud_amount": 0.0, "avg_amount": 10.0, "distinct_users": 1, **zero},
        {"event_date": D1, "hour": 18, "merchant_category": "restaurants", "channel": "pos",
         "transactions": 1, "fraud_transactions": 0, "fraud_rate": 0.0, "amount": 30.0,
         "fraud_amount": 0.0, "avg_amount": 30.0, "distinct_users": 1, **zero},
        {"event_date": D2, "hour": 2, "merchant_category": "gift_cards", "channel": "online",
         "transactions": 1, "fraud_transactions": 1, "fraud_rate": 1.0, "amount": 50.0,
         "fraud_amount": 50.0, "avg_amount": 50.0, "distinct_users": 1,
         **zero, "velocity_burst_transactions": 1},
        {"event_date": D2, "hour": 3, "merchant_category": "gift_cards", "channel": "online",
         "transactions": 1, "fraud_transactions": 1, "fraud_rate": 1.0, "amount": 70.0,
         "fraud_amount": 70.0, "avg_amount": 70.0, "distinct_users": 1,
         **zero, "velocity_burst_transactions": 1},
        {"event_date": D2, "hour": 12, "merchant_category": "grocery", "channel": "pos",
         "transactions": 1, "fraud_transactions": 0, "fraud_rate": 0.0, "amount": 5.0,
         "fraud_amount": 0.0, "avg_amount": 5.0, "distinct_users": 1, **zero},
    ]  # fmt: skip
    by_category = fraud_rate_by_category(fraud_daily_stats(transactions(*SMALL)))
    assert by_category.column("merchant_category").to_pylist() == [
        "gift_cards",
        "grocery",
        "restaurants",
    ]
    assert by_category.column("fraud_rate").to_pylist() == [1.0, 0.0, 0.0]


def random_transactions(seed: int, days: list[date], users: int, n: int) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for number in range(n):
        day = rng.choice(days)
        when = at(day, rng.randrange(24), rng.randrange(60)) + timedelta(
            microseconds=rng.randrange(60_000_000)
        )
        pattern = rng.choice((None,) * 9 + FRAUD_PATTERNS)
        rows.append(
            txn(
                f"r{number}",
                when,
                rng.randint(1, users),
                round(rng.lognormvariate(3.5, 1.2), 2),
                country=rng.choice(("US", "GB", "FR", "DE")),
                merchant=f"m-{rng.randrange(80):04d}",
                device=f"dev-{rng.randrange(30)}",
                card=f"card-{rng.randrange(12)}",
                channel=rng.choice(("pos", "online", "mobile")),
                pattern=pattern,
            )
        )
    return transactions(*rows)


def one_shot_profile(raw: list[dict[str, object]], as_of: date) -> dict[int, dict[str, object]]:
    """The profile computed directly from raw transactions, in plain Python."""
    profiles = {}
    users = sorted({row["user_id"] for row in raw if row["event_date"] <= as_of})
    for user in users:
        mine = [row for row in raw if row["user_id"] == user and row["event_date"] <= as_of]
        amounts = [row["amount"] for row in mine]
        countries = Counter(row["country"] for row in mine)
        top = max(countries.values())
        profiles[user] = {
            "transactions": len(mine),
            "avg_amount": statistics.fmean(amounts),
            "stddev_amount": statistics.stdev(amounts) if len(amounts) > 1 else None,
            "max_amount": max(amounts),
            "first_seen": min(row["event_time"] for row in mine),
            "last_seen": max(row["event_time"] for row in mine),
            "days_active": len({row["event_date"] for row in mine}),
            "home_country": min(c for c, k in countries.items() if k == top),
            "distinct_countries": len(countries),
            "distinct_devices": len({row["device_id"] for row in mine}),
            "distinct_merchants": len({row["merchant_id"] for row in mine}),
            "distinct_cards": len({row["card_id"] for row in mine}),
            "fraud_transactions": sum(bool(row["label_is_fraud"]) for row in mine),
        }
    return profiles


def test_lifetime_profiles_equal_a_one_shot_aggregation_and_ignore_later_days() -> None:
    days = [date(2026, 11, 1) + timedelta(days=k) for k in range(6)]
    raw = random_transactions(seed=11, days=days, users=25, n=600)
    # Daily rows built day by day, as the asset does, then profiles from them.
    daily = pa.concat_tables(
        fraud_user_daily(raw.filter(pc.field("event_date") == day)) for day in days
    )
    rows = raw.to_pylist()
    for as_of in (days[0], days[3], days[-1]):
        profiles = fraud_user_profiles(daily, as_of).to_pylist()
        expected = one_shot_profile(rows, as_of)
        assert [p["user_id"] for p in profiles] == sorted(expected)
        for profile in profiles:
            want = expected[profile["user_id"]]
            assert profile["event_date"] == as_of
            for name, value in want.items():
                if isinstance(value, float):
                    assert profile[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name
                else:
                    assert profile[name] == value, name
        # Nothing after `as_of` matters: dropping the later days changes nothing.
        earlier = daily.filter(pc.field("event_date") <= as_of)
        assert fraud_user_profiles(earlier, as_of).equals(fraud_user_profiles(daily, as_of))


def test_profile_lists_keep_the_most_recently_used_values() -> None:
    cap = PROFILE_LIST_CAPS["devices"]
    days = [date(2026, 10, 1) + timedelta(days=k) for k in range(cap + 5)]
    raw = transactions(
        *(txn(f"d{k}", at(day, 10), 7, 20.0, device=f"dev-{k:03d}") for k, day in enumerate(days))
    )
    (profile,) = fraud_user_profiles(fraud_user_daily(raw), days[-1]).to_pylist()
    assert profile["distinct_devices"] == cap + 5  # the count stays exact
    assert profile["devices"] == [f"dev-{k:03d}" for k in range(cap + 4, 4, -1)]


def seed_silver_transactions(settings: Settings, rows: pa.Table) -> None:
    spec = SILVER_TRANSACTIONS
    for day in sorted(set(rows.column("event_date").to_pylist())):
        part = rows.filter(pc.field("event_date") == day)
        replace_partition(spec, settings, part, f"event_date = '{day.isoformat()}'")


def gold_rows(settings: Settings, name: str) -> list[dict[str, object]]:
    table = DeltaTable(table_uri(CATALOG.table(f"gold.{name}"), settings)).to_pyarrow_table()
    rows = table.to_pylist()
    keys = [key for key in ("event_date", "user_id", "merchant_category", "channel", "device_id")
            if key in table.column_names]  # fmt: skip
    return sorted(rows, key=lambda row: tuple(row[key] for key in keys))


def test_fraud_partitions_rebuild_idempotently_and_replace_only_their_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver_transactions(settings, transactions(*SMALL))
    # The profile of D2 built before D1's daily rows exist must not see D2's later rows
    # either way; build D2's daily first to show that order does not matter.
    build_fraud_user_daily_partition(settings, D2)
    build_fraud_user_daily_partition(settings, D1)
    for day in (D1, D2):
        build_fraud_user_profiles_partition(settings, day)
        build_fraud_daily_stats_partition(settings, day)
    names = ("fraud_user_daily", "fraud_user_profiles", "fraud_daily_stats")
    first = {name: gold_rows(settings, name) for name in names}
    profiles_d1 = [row for row in first["fraud_user_profiles"] if row["event_date"] == D1]
    assert [(row["user_id"], row["transactions"]) for row in profiles_d1] == [(1, 2)]

    # Rebuilding every partition again changes nothing.
    for day in (D1, D2):
        build_fraud_user_daily_partition(settings, day)
        build_fraud_user_profiles_partition(settings, day)
        build_fraud_daily_stats_partition(settings, day)
    assert {name: gold_rows(settings, name) for name in names} == first

    # Silver's D2 changes (holder 2's payment is gone): D2 is replaced, D1 is untouched.
    seed_silver_transactions(settings, transactions(*SMALL[:4]))
    for build in (
        build_fraud_user_daily_partition,
        build_fraud_user_profiles_partition,
        build_fraud_daily_stats_partition,
    ):
        build(settings, D2)
    for name in names:
        rows = gold_rows(settings, name)
        before = first[name]
        assert [r for r in rows if r["event_date"] == D1] == [
            r for r in before if r["event_date"] == D1
        ]
        assert 2 not in {r.get("user_id") for r in rows if r["event_date"] == D2}
    stats_d2 = [r for r in gold_rows(settings, "fraud_daily_stats") if r["event_date"] == D2]
    assert [(r["hour"], r["merchant_category"], r["transactions"]) for r in stats_d2] == [
        (2, "gift_cards", 1),
        (3, "gift_cards", 1),
    ]


def test_a_table_built_before_the_catalog_added_a_column_takes_it_on_the_next_rebuild(
    make_settings: Callable[..., Settings],
) -> None:
    """gold.fraud_daily_stats gained `hour` in step 5: a lake built before keeps working."""
    settings = make_settings()
    seed_silver_transactions(settings, transactions(*SMALL))
    old_schema = GOLD_FRAUD_DAILY_STATS.schema.remove(
        GOLD_FRAUD_DAILY_STATS.schema.get_field_index("hour")
    )
    old_rows = fraud_daily_stats(transactions(*SMALL[:2])).drop_columns(["hour"])
    write_deltalake(
        table_uri(GOLD_FRAUD_DAILY_STATS, settings),
        old_rows.cast(old_schema),
        partition_by=["event_date"],
    )
    build_fraud_daily_stats_partition(settings, D2)
    rows = gold_rows(settings, "fraud_daily_stats")
    assert [(r["event_date"], r["hour"]) for r in rows] == [
        (D1, None),  # not rebuilt yet: the weekly reprocessing will fill it
        (D1, None),
        (D2, 2),
        (D2, 3),
        (D2, 12),
    ]
    build_fraud_daily_stats_partition(settings, D1)
    assert [r["hour"] for r in gold_rows(settings, "fraud_daily_stats")] == [9, 18, 2, 3, 12]


# --- IoT device health --------------------------------------------------------------------


def hourly_rows(
    device: str, sensor_type: str, means: list[float], stddevs: list[float], day: date = D3
) -> list[dict[str, object]]:
    return [
        {
            "device_id": device,
            "sensor_id": f"{device}-{sensor_type[:4]}",
            "sensor_type": sensor_type,
            "plant": "plant-a",
            "hour": at(day, hour),
            "event_date": day,
            "readings": 10,
            "avg_value": mean,
            "min_value": mean - 1,
            "max_value": mean + 1 + hour / 100,
            "stddev_value": sd,
        }
        for hour, (mean, sd) in enumerate(zip(means, stddevs, strict=True))
    ]


def label_row(
    device: str, when: datetime, failure_at: datetime | None = None, anomaly: str | None = None
) -> dict[str, object]:
    return {
        "device_id": device,
        "event_time": when,
        "event_date": when.date(),
        "label_anomaly": anomaly,
        "label_failure_at": failure_at,
    }


LABELS = pa.schema(
    [silver_schema("sensor_readings").field(name) for name in
     ("device_id", "event_time", "event_date", "label_anomaly", "label_failure_at")]
)  # fmt: skip


def test_device_health_matches_a_hand_computation() -> None:
    hourly = pa.Table.from_pylist(
        # dev-a: steady all day. dev-b: temperature climbs 6 units over 23 hours.
        # dev-c: reports 12 hours, vibration noisy in its last two (4 and 5 times usual).
        hourly_rows("dev-a", "temperature", [50.0] * 24, [1.0] * 24)
        + hourly_rows("dev-b", "temperature", [50 + 6 * h / 23 for h in range(24)], [1.0] * 24)
        + hourly_rows("dev-c", "vibration", [3.0] * 12, [1.0] * 10 + [4.0, 5.0])
        + hourly_rows("dev-c", "vibration", [9.0], [1.0], day=D3 + timedelta(days=1)),
        schema=SENSOR_HOURLY,
    )
    tomorrow = at(D3 + timedelta(days=1), 2)
    labels = pa.Table.from_pylist(
        [
            # dev-a's precursor began late in the day: it fails tomorrow at 02:00.
            label_row("dev-a", at(D3, 0)),
            label_row("dev-a", at(D3, 23), failure_at=tomorrow, anomaly="precursor"),
            # dev-b failed at 00:02, known from yesterday evening's precursor readings.
            label_row("dev-b", at(D3 - timedelta(days=1), 22), failure_at=at(D3, 0, 2)),
            label_row("dev-b", at(D3, 0, 10)),
            # dev-c fails at 12:30, 12h25m after its first reading.
            label_row("dev-c", at(D3, 0, 5), failure_at=at(D3, 12, 30), anomaly="precursor"),
            label_row("dev-c", at(D3, 11, 55), failure_at=at(D3, 12, 30), anomaly="precursor"),
        ],
        schema=LABELS,
    )
    rows = device_health_daily(hourly, labels, D3).to_pylist()
    summary = [
        (
            r["device_id"], r["readings"], r["hours_reporting"], r["sensors_reporting"],
            r["drift_score"], r["volatility_score"], r["health_score"], r["status"],
            r["anomalous_readings"], r["failed"], r["hours_to_failure"],
        )
        for r in rows
    ]  # fmt: skip
    approx = pytest.approx
    # dev-b: drift 6 -> penalty (6 - 4) / 8 = 0.25. dev-c: coverage 12/24, volatility (second
    # largest hourly stddev over the median) 4 -> penalty (4 - 2.5) / 3.5.
    assert summary == [
        ("dev-a", 240, 24, 1, approx(0.0, abs=1e-9), 1.0, approx(1.0), "ok", 1, False, 26.0),
        ("dev-b", 240, 24, 1, approx(6.0), 1.0, approx(0.75), "warn", 0, True, None),
        ("dev-c", 120, 12, 1, 0.0, 4.0, approx(0.5 * (1 - 1.5 / 3.5)), "critical", 2, True,
         approx(12 + 25 / 60)),
    ]  # fmt: skip
    dev_b, dev_c = rows[1], rows[2]
    assert dev_b["temperature_mean"] == approx(53.0)
    assert dev_b["temperature_drift"] == approx(6.0)
    assert dev_b["vibration_mean"] is None
    assert dev_c["vibration_max"] == approx(4.11)  # 3 + 1 + 11 / 100 in its last hour
    assert dev_c["vibration_max_hourly_stddev"] == 5.0
    assert (dev_c["first_reading_at"], dev_c["last_reading_at"]) == (at(D3, 0, 5), at(D3, 11, 55))
    assert {r["event_date"] for r in rows} == {D3}


def generated_silver_readings(settings: Settings, day: date, events: int, machines: int) -> None:
    """The IoT generator's traffic for one day, straight into bronze (no Kafka), then silver."""
    generator = make_generator(
        "iot", seed=5, start=at(day, 0), span=timedelta(days=1), n_machines=machines
    )
    spec = CATALOG.bronze_for_topic("sensor_readings")
    decoder = BatchDecoder(EVENT_SCHEMAS["sensor_readings"], 1 << 20)
    offset = 0
    for batch in generator.batches(events):
        table = decoder.decode(batch.values).table
        n = table.num_rows
        table = (
            table.append_column("_kafka_partition", pa.array(np.zeros(n, dtype=np.int32)))
            .append_column("_kafka_offset", pa.array(np.arange(offset, offset + n)))
            .append_column("_ingested_at", table["event_time"])
            .append_column("event_date", pc.cast(table["event_time"], pa.date32()))
        )
        offset += n
        write_deltalake(
            ensure_table(spec, settings),
            table.cast(bronze_schema(EVENT_SCHEMAS[batch.topic])),
            mode="append",
        )
    build_silver_partition(settings, "sensor_readings", day)


def test_device_health_flags_the_generated_machines_that_fail(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    # 60 machines, about 26 readings per sensor and hour (the demo's rate); 3 fail today.
    generated_silver_readings(settings, D3, events=150_000, machines=60)
    build_sensor_hourly_partition(settings, D3)
    health = build_device_health_partition(settings, D3).to_pylist()
    assert len(health) == 60
    failed = [r for r in health if r["failed"]]
    assert len(failed) == 3
    assert all(r["status"] == "critical" for r in failed)
    assert all(0 < r["hours_to_failure"] < 24 for r in failed)
    clean = [r for r in health if r["anomalous_readings"] == 0 and r["hours_to_failure"] is None]
    assert clean and all(r["status"] == "ok" for r in clean)
    ok = sum(r["status"] == "ok" for r in health)
    assert ok >= 0.8 * len(health)


def test_device_health_partitions_rebuild_idempotently_and_replace_only_their_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    yesterday = at(D3, 12) - timedelta(days=1)
    land(
        settings,
        reading("a", value=50.0, offset=1),
        reading("b", value=54.0, offset=2, when=at(D3, 13)),
        reading("old", value=40.0, offset=3, when=yesterday),
    )
    for day in (yesterday.date(), D3):
        build_silver_partition(settings, "sensor_readings", day)
        build_sensor_hourly_partition(settings, day)
        build_device_health_partition(settings, day)
    first = gold_rows(settings, "device_health_daily")
    assert [(r["event_date"], r["readings"], r["hours_reporting"]) for r in first] == [
        (yesterday.date(), 1, 1),
        (D3, 2, 2),
    ]
    build_device_health_partition(settings, D3)
    assert gold_rows(settings, "device_health_daily") == first

    land(settings, reading("c", value=51.0, offset=4, when=at(D3, 14)))
    build_silver_partition(settings, "sensor_readings", D3)
    build_sensor_hourly_partition(settings, D3)
    build_device_health_partition(settings, D3)
    rows = gold_rows(settings, "device_health_daily")
    assert rows[0] == first[0]  # yesterday untouched
    assert (rows[1]["readings"], rows[1]["hours_reporting"]) == (3, 3)


# --- Through Dagster ----------------------------------------------------------------------


def test_the_four_gold_assets_materialize_a_partition_through_dagster(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver_transactions(settings, transactions(*SMALL))
    land(settings, reading("a", value=50.0, offset=1), reading("b", value=54.0, offset=2))
    build_silver_partition(settings, "sensor_readings", D3)
    mine = [
        gold_fraud_user_daily,
        gold_fraud_user_profiles,
        gold_fraud_daily_stats,
        gold_device_health_daily,
    ]
    resources = platform_resources(settings.lakehouse_root)
    for day in (D1, D2, D3):
        result = dg.materialize(
            [gold_sensor_hourly, *mine], partition_key=day.isoformat(), resources=resources
        )
        assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert set(metadata) >= {
        f"gold/{name}"
        for name in (
            "fraud_user_daily",
            "fraud_user_profiles",
            "fraud_daily_stats",
            "device_health_daily",
        )
    }
    assert metadata["gold/device_health_daily"]["dagster/row_count"].value == 1
    assert "Devices by status" in metadata["gold/device_health_daily"]["devices_by_status"].value
    assert metadata["gold/fraud_user_profiles"]["holders"].value == 2
    profiles = gold_rows(settings, "fraud_user_profiles")
    assert [(r["event_date"], r["user_id"], r["transactions"]) for r in profiles] == [
        (D1, 1, 2), (D2, 1, 4), (D2, 2, 1), (D3, 1, 4), (D3, 2, 1),
    ]  # fmt: skip

    # Profile D maps to every daily partition up to D and none after it.
    definitions = dg.Definitions(assets=[*mine, gold_sensor_hourly], resources=resources)
    graph = definitions.resolve_asset_graph()
    profile_key = asset_key(GOLD_FRAUD_USER_PROFILES)
    daily_key = asset_key(GOLD_FRAUD_USER_DAILY)
    mapping = graph.get_partition_mapping(profile_key, daily_key)
    partitions = gold_fraud_user_daily.partitions_def
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys([D2.isoformat()]), partitions, partitions
    ).partitions_subset.get_partition_keys()
    assert upstream[0] == partitions.get_first_partition_key()
    assert upstream[-1] == D2.isoformat()
