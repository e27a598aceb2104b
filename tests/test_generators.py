"""Statistical properties of the synthetic generators, on fixed seeds and modest sizes.

Every stream is parsed exactly as the ingest sidecar parses it (pyarrow.json with the
event schema as explicit schema), then queried with DuckDB. Thresholds are concrete: a
generator that loses a pattern, breaks the funnel or drifts from the contract fails here.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pytest

from lakehouse.catalog import CATALOG, Domain
from lakehouse.schemas import EVENT_SCHEMAS, FRAUD_PATTERNS
from streaming.generators import EventBatch, make_generator
from streaming.generators.ecommerce import assign_variant
from streaming.generators.fraud import PATTERN_SHARE

START = datetime(2026, 11, 22, tzinfo=UTC)
SPAN = timedelta(days=1)
TIMESTAMP = re.compile(rb'"event_time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"')


def generate(domain: str, n: int, seed: int = 7, batch_size: int = 20_000,
             **options: object) -> list[EventBatch]:
    generator = make_generator(domain, seed=seed, start=START, span=SPAN, **options)
    return list(generator.batches(n, batch_size=batch_size))


def by_topic(batches: list[EventBatch]) -> dict[str, list[bytes]]:
    values: dict[str, list[bytes]] = defaultdict(list)
    for batch in batches:
        values[batch.topic].extend(batch.values)
    return dict(values)


def parse(topic: str, lines: list[bytes]) -> pa.Table:
    """Parse like the ingest sidecar: explicit schema, unknown fields are an error."""
    options = pj.ParseOptions(explicit_schema=EVENT_SCHEMAS[topic].schema,
                              unexpected_field_behavior="error")
    return pj.read_json(io.BytesIO(b"\n".join(lines)), parse_options=options)


def database(batches: list[EventBatch]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for topic, lines in by_topic(batches).items():
        table = parse(topic, lines)
        con.register(topic, table.append_column("pos", pa.array(np.arange(table.num_rows))))
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    """The first row of a query's result."""
    return con.sql(sql).fetchall()[0]


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    return one(con, sql)[0]


@pytest.fixture(scope="module")
def shop_batches() -> list[EventBatch]:
    return generate("ecommerce", 1_000_000)


@pytest.fixture(scope="module")
def shop(shop_batches: list[EventBatch]) -> duckdb.DuckDBPyConnection:
    return database(shop_batches)


@pytest.fixture(scope="module")
def cards_batches() -> list[EventBatch]:
    # Five times the default fraud rate: a few hundred transactions of every pattern, where
    # the realistic default (0.15%) would give a few dozen.
    return generate("fraud", 300_000, fraud_rate=0.0075)


@pytest.fixture(scope="module")
def cards(cards_batches: list[EventBatch]) -> duckdb.DuckDBPyConnection:
    return database(cards_batches)


@pytest.fixture(scope="module")
def plant_batches() -> list[EventBatch]:
    return generate("iot", 300_000)


@pytest.fixture(scope="module")
def plant(plant_batches: list[EventBatch]) -> duckdb.DuckDBPyConnection:
    return database(plant_batches)


# --- the contract: counts, batches, JSON, schema ------------------------------------------

@pytest.mark.parametrize("domain", ["ecommerce", "fraud", "iot"])
def test_exact_count_topics_and_batch_shape(domain: str) -> None:
    batches = generate(domain, 45_001, batch_size=7_000)
    topics = {t.name for t in CATALOG.generated_topics(Domain(domain))}
    assert sum(len(b.values) for b in batches) == 45_001
    assert {b.topic for b in batches} == topics
    for batch in batches:
        assert 0 < len(batch.values) <= 7_000
        assert len(batch.keys) == len(batch.values)


@pytest.mark.parametrize("domain", ["ecommerce", "fraud", "iot"])
def test_same_seed_same_bytes_whatever_the_batch_size(domain: str) -> None:
    first = by_topic(generate(domain, 50_000, seed=3))
    again = by_topic(generate(domain, 50_000, seed=3, batch_size=4_096))
    other = by_topic(generate(domain, 50_000, seed=4))
    assert first == again
    assert first != other


@pytest.mark.parametrize("fixture", ["shop_batches", "cards_batches", "plant_batches"])
def test_every_line_is_compact_json_in_the_event_schema(fixture: str,
                                                        request: pytest.FixtureRequest) -> None:
    batches: list[EventBatch] = request.getfixturevalue(fixture)
    for topic, lines in by_topic(batches).items():
        event = EVENT_SCHEMAS[topic]
        table = parse(topic, lines)
        assert table.num_rows == len(lines)
        assert table.schema.equals(event.schema)
        for name in event.required:
            assert table.column(name).null_count == 0, (topic, name)
        sample = lines[:: max(1, len(lines) // 500)]
        assert all(TIMESTAMP.search(line) for line in sample)
        assert all(b"\n" not in line and b": " not in line for line in sample)
        assert all(line.startswith(b'{"event_id":"') and line.endswith(b"}") for line in sample)


def test_message_keys_are_the_documented_ids(shop_batches, cards_batches, plant_batches) -> None:
    fields = {"clickstream": "user_id", "transactions": "card_id", "sensor_readings": "device_id"}
    for batches in (shop_batches, cards_batches, plant_batches):
        for batch in batches[:3]:
            if batch.topic not in fields:
                continue
            table = parse(batch.topic, batch.values)
            expected = [str(v).encode() for v in table.column(fields[batch.topic]).to_pylist()]
            assert batch.keys == expected


def test_null_is_written_as_null_not_omitted(shop_batches) -> None:
    lines = by_topic(shop_batches)["clickstream"]
    assert any(b'"product_id":null' in line for line in lines[:1000])
    assert all(line.count(b'"') % 2 == 0 and b'"referrer":' in line for line in lines[:1000])


# --- event ids and time ------------------------------------------------------------------

def test_event_ids_are_unique_in_shop_and_cards(shop, cards) -> None:
    for con, topics in ((shop, ["clickstream", "cart_events", "search", "purchases"]),
                        (cards, ["transactions"])):
        union = " union all ".join(f"select event_id from {t}" for t in topics)
        assert scalar(con, f"select count(*) - count(distinct event_id) from ({union})") == 0


def test_iot_duplicates_are_exact_later_copies(plant, plant_batches) -> None:
    lines = by_topic(plant_batches)["sensor_readings"]
    seen: dict[bytes, int] = {}
    copies = 0
    for position, line in enumerate(lines):
        event_id = line[13:45]
        if event_id in seen:
            copies += 1
            first = seen[event_id]
            assert lines[first] == line
            assert 0 < position - first <= 600
        else:
            seen[event_id] = position
    assert 0.004 <= copies / len(lines) <= 0.006
    repeats = scalar(plant, "select count(*) - count(distinct event_id) from sensor_readings")
    assert repeats == copies


@pytest.mark.parametrize("con_name,topic", [("shop", "clickstream"), ("shop", "purchases"),
                                            ("cards", "transactions"),
                                            ("plant", "sensor_readings")])
def test_event_times_inside_the_span_and_roughly_ordered(con_name: str, topic: str,
                                                         request: pytest.FixtureRequest) -> None:
    con = request.getfixturevalue(con_name)
    lo, hi = START, START + SPAN
    outside = scalar(con, f"select count(*) from {topic} where event_time < '{lo.isoformat()}'"
                          f" or event_time >= '{hi.isoformat()}'")
    assert outside == 0
    # Apart from arrival jitter (seconds) and deliberately late events, time moves forward.
    late = scalar(con, f"""
        select count(*) filter (where event_time < running - interval 5 minutes) / count(*)
        from (select event_time, max(event_time) over (order by pos rows between unbounded
              preceding and 1 preceding) running from {topic})""")
    assert late <= 0.003


def test_some_mobile_clickstream_arrives_late(shop) -> None:
    late = shop.sql("""
        select device, count(*) from (
          select device, event_time, max(event_time) over (order by pos rows between
                 unbounded preceding and 1 preceding) running from clickstream)
        where event_time < running - interval 5 minutes group by 1""").fetchall()
    counts = dict(late)
    assert set(counts) <= {"ios", "android"}
    assert 500 <= sum(counts.values()) <= 3_000  # about 0.2% of 885k clickstream events


def test_live_mode_stamps_the_wall_clock() -> None:
    generator = make_generator("iot", seed=1, live=True)
    before = datetime.now(UTC)
    batch = next(iter(generator.batches(1_000, batch_size=500)))
    after = datetime.now(UTC)
    stamps = parse("sensor_readings", batch.values).column("event_time").to_pylist()
    assert len(batch.values) == 500
    assert all(before - timedelta(seconds=1) <= t <= after for t in stamps)


# --- e-commerce ----------------------------------------------------------------------------

def test_shop_mix_is_mostly_clickstream(shop) -> None:
    counts = dict(shop.sql("""
        select 'clickstream', count(*) from clickstream union all
        select 'cart_events', count(*) from cart_events union all
        select 'search', count(*) from search union all
        select 'purchases', count(*) from purchases""").fetchall())
    total = sum(counts.values())
    assert 0.8 <= counts["clickstream"] / total <= 0.95
    assert 0.02 <= counts["cart_events"] / total <= 0.1
    assert 0.02 <= counts["search"] / total <= 0.1
    assert 0.003 <= counts["purchases"] / total <= 0.03


def test_product_popularity_is_zipf_like(shop) -> None:
    views = shop.sql("""select count(*) c from clickstream where event_type = 'product_view'
                        group by product_id order by c desc""").fetchnumpy()["c"]
    top_share = views[: len(views) // 100].sum() / views.sum()
    assert top_share >= 0.4
    ranks = np.arange(1, 1001)
    slope = np.polyfit(np.log(ranks), np.log(views[:1000]), 1)[0]
    assert -1.35 <= slope <= -0.85


def test_funnel_order_and_conversion(shop) -> None:
    # Every purchase line was added to the cart earlier in its session, every add viewed.
    orphans = scalar(shop, """
        select count(*) from purchases p where not exists (
          select 1 from cart_events c where c.session_id = p.session_id
            and c.product_id = p.product_id and c.action = 'add'
            and c.event_time <= p.event_time)""")
    assert orphans == 0
    unviewed = scalar(shop, """
        select count(*) from cart_events c where c.action = 'add' and not exists (
          select 1 from clickstream v where v.session_id = c.session_id
            and v.product_id = c.product_id and v.event_type = 'product_view'
            and v.event_time <= c.event_time)""")
    assert unviewed == 0
    removes_before_add = scalar(shop, """
        select count(*) from cart_events r where r.action = 'remove' and not exists (
          select 1 from cart_events a where a.session_id = r.session_id and a.action = 'add'
            and a.product_id = r.product_id and a.event_time <= r.event_time)""")
    assert removes_before_add == 0
    conversion = scalar(shop, """
        select count(distinct p.session_id) / count(distinct c.session_id)
        from clickstream c left join purchases p using (session_id)""")
    assert 0.02 <= conversion <= 0.07
    cart_to_order = scalar(shop, """
        select count(distinct p.session_id) / count(distinct c.session_id)
        from cart_events c left join purchases p using (session_id)""")
    assert 0.1 <= cart_to_order <= 0.4


def test_variant_is_stable_per_user_and_treatment_converts_more(shop) -> None:
    variants = shop.sql("""select user_id, count(distinct variant), any_value(variant)
                           from clickstream group by 1""").fetchnumpy()
    assert variants["count(DISTINCT variant)"].max() <= 1
    enrolled, variant = assign_variant(variants["user_id"])
    expected = np.where(enrolled, np.where(variant == 1, "treatment", "control"), None)
    assert (variants["any_value(variant)"].astype(object) == expected).all()
    rates = dict(shop.sql("""
        select s.variant, count(distinct p.session_id) / count(distinct s.session_id)
        from clickstream s left join purchases p using (session_id)
        where s.variant is not null group by 1""").fetchall())
    lift = rates["treatment"] / rates["control"] - 1
    assert 0.05 <= lift <= 0.3


def test_users_have_category_tastes(shop) -> None:
    # A user's views concentrate on a few categories (signal for collaborative filtering).
    share = scalar(shop, """
        with per_user as (select user_id, category, count(*) c from clickstream
                          where category is not null group by all),
             totals as (select user_id, sum(c) total, max(c) top from per_user group by 1
                        having sum(c) >= 20)
        select avg(top / total) from totals""")
    assert share >= 0.35  # uniform over 20 categories would be about 0.1


def test_searches_relate_to_results_and_clicks(shop) -> None:
    zero = one(shop, """select count(*), count(category), count(clicked_product_id)
                        from search where results_count = 0""")
    assert zero[0] > 0 and zero[1] == 0 and zero[2] == 0
    mismatched = scalar(shop, """
        select count(*) from search s join (select distinct product_id, category from cart_events
          union select distinct product_id, category from clickstream where product_id is not null
        ) p on p.product_id = s.clicked_product_id where p.category <> s.category""")
    assert mismatched == 0
    click_rate = scalar(shop, "select count(clicked_product_id) / count(*) from search")
    assert 0.4 <= click_rate <= 0.7


# --- fraud -----------------------------------------------------------------------------------

def test_fraud_rate_and_labels(cards) -> None:
    rate = scalar(cards, "select avg(label_is_fraud::int) from transactions")
    assert 0.0065 <= rate <= 0.0085
    # The label implies a pattern; a pattern without the label is fraud nobody reported.
    unpatterned = scalar(cards, """select count(*) from transactions
        where label_is_fraud and label_fraud_pattern is null""")
    assert unpatterned == 0
    patterns = dict(cards.sql("""select label_fraud_pattern, count(*) from transactions
                                 where label_fraud_pattern is not null group by 1""").fetchall())
    assert set(patterns) == set(FRAUD_PATTERNS)
    total = sum(patterns.values())
    for pattern, share in zip(FRAUD_PATTERNS, PATTERN_SHARE, strict=True):
        assert patterns[pattern] == pytest.approx(share * total, rel=0.25), pattern


def test_a_share_of_the_labels_is_wrong_both_ways(cards) -> None:
    unreported, friendly, labelled = one(cards, """
        with f as (select label_is_fraud labelled, label_fraud_pattern = 'friendly_fraud' friendly
                   from transactions where label_fraud_pattern is not null)
        select avg((not labelled)::int) filter (where not friendly),
               avg(labelled::int) filter (where friendly),
               avg(friendly::int) filter (where labelled)
        from f""")
    assert 0.05 <= unreported <= 0.16  # about UNREPORTED (10%) of the fraud stays labelled legit
    assert friendly == 1.0  # the holder's own payment, disputed: always labelled fraud
    assert 0.07 <= labelled <= 0.15  # about a tenth of what is labelled fraud is not fraud


def test_the_default_fraud_rate_is_realistic() -> None:
    con = database(generate("fraud", 200_000))
    assert 0.0011 <= scalar(con, "select avg(label_is_fraud::int) from transactions") <= 0.0019


def test_fraud_rate_option() -> None:
    con = database(generate("fraud", 100_000, fraud_rate=0.01))
    assert 0.009 <= scalar(con, "select avg(label_is_fraud::int) from transactions") <= 0.011


def test_velocity_bursts_are_many_transactions_within_minutes(cards) -> None:
    bursts = cards.sql("""
        with f as (select card_id, event_time, amount,
                     event_time - lag(event_time) over (partition by card_id order by event_time)
                     > interval 30 minutes as new_burst
                   from transactions where label_fraud_pattern = 'velocity_burst'),
             b as (select *, sum(coalesce(new_burst, true)::int) over (partition by card_id
                     order by event_time) burst from f)
        select count(*) n, epoch(max(event_time) - min(event_time)) / 60 span, min(amount) smallest
        from b group by card_id, burst""").fetchnumpy()
    assert len(bursts["n"]) >= 20
    assert bursts["n"].min() >= 3
    assert bursts["span"].max() <= 20
    assert 0.55 <= (bursts["smallest"] < 5).mean() <= 0.9  # most test the card first


def test_impossible_travel_exceeds_any_airliner(cards) -> None:
    n, paired, slowest = one(cards, """
        with f as (select * from transactions where label_fraud_pattern = 'impossible_travel'),
             pairs as (
               select f.event_id, max(6371 * 2 * asin(sqrt(
                   pow(sin(radians(f.latitude - l.latitude) / 2), 2)
                   + cos(radians(l.latitude)) * cos(radians(f.latitude))
                   * pow(sin(radians(f.longitude - l.longitude) / 2), 2)))
                 / (epoch(f.event_time - l.event_time) / 3600)) kmh
               from f join transactions l on l.card_id = f.card_id and not l.label_is_fraud
                 and l.event_time < f.event_time
                 and l.event_time >= f.event_time - interval 3 hours
               group by f.event_id)
        select (select count(*) from f) n, count(*) paired, min(kmh) from pairs""")
    assert n >= 100 and paired == n
    assert slowest > 900


def test_amount_spikes_are_many_times_the_users_norm(cards) -> None:
    ratios = cards.sql("""
        with norm as (select user_id, median(amount) m, count(*) n from transactions
                      where not label_is_fraud group by 1 having count(*) >= 5)
        select t.amount / norm.m r from transactions t join norm using (user_id)
        where t.label_fraud_pattern = 'amount_spike'""").fetchnumpy()["r"]
    assert len(ratios) >= 50
    assert np.median(ratios) >= 10
    assert (ratios >= 5).mean() >= 0.9


def test_compromised_devices_are_shared_by_many_users(cards) -> None:
    fraud_users = cards.sql("""select count(distinct user_id) u from transactions
        where label_fraud_pattern = 'compromised_device' group by device_id""").fetchnumpy()["u"]
    legit_users = cards.sql("""select count(distinct user_id) u from transactions
        where not label_is_fraud group by device_id""").fetchnumpy()["u"]
    assert len(fraud_users) >= 5
    assert fraud_users.min() >= 5
    assert legit_users.max() <= 4  # households share a phone, nobody else does


# What a holder's own (legitimately labelled, legit-pattern) payments look like.
HABITS = """
    with own as (select * from transactions where label_fraud_pattern is null),
         habits as (select user_id, list(distinct device_id) devices,
                           list(distinct merchant_category) categories,
                           mode(ip_address) ip, mode(country) country, median(amount) median
                    from own group by 1 having count(*) >= 5)
"""


def test_slow_card_testing_spreads_tiny_payments_over_hours(cards) -> None:
    cards_tested = cards.sql("""
        with t as (select card_id, event_time, device_id, amount,
                     epoch(event_time - lag(event_time) over (partition by card_id
                                                              order by event_time)) / 60 gap
                   from transactions where label_fraud_pattern = 'slow_card_testing')
        select count(*) n, count(distinct device_id) devices, max(amount) largest,
               epoch(max(event_time) - min(event_time)) / 3600 span_h, min(gap) closest
        from t group by card_id""").fetchnumpy()
    assert len(cards_tested["n"]) >= 30
    assert cards_tested["n"].min() >= 2 and cards_tested["largest"].max() < 5
    assert (cards_tested["devices"] == cards_tested["n"]).all()  # a fresh fingerprint each time
    assert np.median(cards_tested["span_h"]) >= 2  # hours apart, not a burst
    assert np.median(cards_tested["closest"]) >= 20  # minutes between two tests of a card


def test_account_takeover_pays_from_the_holders_own_device_and_place(cards) -> None:
    own_device, own_ip, at_home, usual_amount, resale, per_card = one(cards, HABITS + """
        select avg(list_contains(h.devices, t.device_id)::int), avg((t.ip_address = h.ip)::int),
               avg((t.country = h.country)::int), avg((t.amount <= 6 * h.median)::int),
               avg((t.merchant_category in ('electronics', 'jewelry', 'gift_cards',
                                            'digital_goods'))::int),
               count(*) / count(distinct t.card_id)
        from transactions t join habits h using (user_id)
        where t.label_fraud_pattern = 'account_takeover'""")
    assert own_device == 1.0 and own_ip == 1.0 and at_home == 1.0  # device and geo say nothing
    assert usual_amount >= 0.9  # no amount spike to see
    assert resale == 1.0 and per_card >= 3  # what changes: where, what and how often


def test_mimicry_stays_within_the_holders_habits(cards) -> None:
    n, usual_category, usual_amount, at_home, new_device = one(cards, HABITS + """
        select count(*), avg(list_contains(h.categories, t.merchant_category)::int),
               avg((t.amount between h.median / 4 and h.median * 4)::int),
               avg((t.country = h.country)::int),
               avg((not list_contains(h.devices, t.device_id))::int)
        from transactions t join habits h using (user_id)
        where t.label_fraud_pattern = 'mimicry'""")
    assert n >= 200
    assert usual_category >= 0.9 and usual_amount >= 0.9 and at_home == 1.0
    assert new_device == 1.0  # the only tell: the fraudster's own device


def test_familiar_and_friendly_fraud_look_like_the_holder(cards) -> None:
    for pattern in ("familiar_fraud", "friendly_fraud"):
        n, own_device, own_ip = one(cards, HABITS + f"""
            select count(*), avg(list_contains(h.devices, t.device_id)::int),
                   avg((t.ip_address = h.ip or t.channel = 'pos')::int)
            from transactions t join habits h using (user_id)
            where t.label_fraud_pattern = '{pattern}'""")
        assert n >= 50, pattern
        assert own_device >= 0.97 and own_ip == 1.0, pattern


def test_holders_return_to_regular_merchants(cards) -> None:
    repeat = scalar(cards, """
        with u as (select user_id, count(*) n, count(distinct merchant_id) m from transactions
                   where label_fraud_pattern is null group by 1 having count(*) >= 20)
        select avg(1 - m / n) from u""")
    assert repeat >= 0.25  # about a third of a busy holder's payments go to a merchant seen before


def test_hard_legit_cases_exist(cards) -> None:
    big = scalar(cards, """
        with norm as (select user_id, median(amount) m from transactions where not label_is_fraud
                      group by 1 having count(*) >= 5)
        select count(*) from transactions t join norm using (user_id)
        where not t.label_is_fraud and t.amount >= 5 * norm.m""")
    assert big >= 50  # legit big-ticket purchases an amount rule would flag
    abroad = scalar(cards, """
        with home as (select user_id, mode(country) c from transactions group by 1)
        select count(*) from transactions t join home using (user_id)
        where not t.label_is_fraud and t.country <> home.c""")
    assert abroad >= 100  # travellers paying abroad, legitimately
    tiny = scalar(cards, """select avg((amount < 5)::int) from transactions
                            where not label_is_fraud""")
    assert tiny >= 0.02  # app, fare and subscription payments: small is not suspicious


# --- IoT ---------------------------------------------------------------------------------------

def test_sensors_report_periodically_with_monotonic_sequences(plant) -> None:
    min_step, gaps, interval, sensors = one(plant, """
        with r as (select distinct sensor_id, sequence, event_time from sensor_readings),
             d as (select sensor_id, sequence - lag(sequence) over w ds,
                          epoch(event_time - lag(event_time) over w) dt
                   from r window w as (partition by sensor_id order by event_time))
        select min(ds), count(*) filter (where ds <> 1), median(dt), count(distinct sensor_id)
        from d where ds is not null""")
    assert min_step == 1 and gaps == 0  # downtime sends nothing, so no gap in the counter
    assert sensors == 800
    assert interval == pytest.approx(86_400 * 800 / 300_000, rel=0.02)


def test_spikes_stand_far_outside_the_noise(plant) -> None:
    z = plant.sql("""
        with normal as (select sensor_id, median(value) m, stddev(value) s from sensor_readings
                        where label_anomaly is null group by 1)
        select abs(r.value - n.m) / n.s z from sensor_readings r join normal n using (sensor_id)
        where r.label_anomaly = 'spike'""").fetchnumpy()["z"]
    assert len(z) >= 100
    assert np.median(z) >= 3


def test_drift_grows_steadily_after_its_onset(plant) -> None:
    fits = plant.sql("""
        with base as (select sensor_id, avg(value) m from sensor_readings
                      where label_anomaly is null group by 1),
             d as (select sensor_id, epoch(event_time) t, abs(value - base.m) dev
                   from sensor_readings join base using (sensor_id)
                   where label_anomaly = 'drift')
        select sensor_id, corr(t, dev) c, count(*) n from d group by 1""").fetchnumpy()
    assert len(fits["c"]) >= 5
    assert np.median(fits["c"]) >= 0.6


def test_failures_have_precursors_then_silence(plant) -> None:
    failures = plant.sql("""select device_id, min(label_failure_at) f from sensor_readings
                            where label_failure_at is not null group by 1""").fetchall()
    assert len(failures) >= 5
    for device, failure_at in failures:
        rows = plant.sql(f"""
            select sensor_type, label_anomaly, label_failure_at, event_time, value,
                   epoch(label_failure_at - event_time) / 3600 before
            from sensor_readings where device_id = '{device}'
              and event_time >= timestamptz '{failure_at.isoformat()}' - interval 4 hours
              and event_time < timestamptz '{failure_at.isoformat()}'""").fetchnumpy()
        assert (rows["label_failure_at"] == np.datetime64(failure_at.replace(tzinfo=None))).all()
        precursor = rows["label_anomaly"] == "precursor"
        assert set(rows["sensor_type"][precursor]) == {"temperature", "vibration", "current"}
        for kind in ("temperature", "vibration"):
            own = rows["sensor_type"] == kind
            early = rows["value"][own & (rows["before"] > 3)].mean()
            late = rows["value"][own & (rows["before"] < 1)].mean()
            assert late > early * 1.1, (device, kind)
        silent = scalar(plant, f"""select count(*) from sensor_readings where device_id = '{device}'
            and event_time >= timestamptz '{failure_at.isoformat()}'
            and event_time < timestamptz '{failure_at.isoformat()}' + interval 3 hours""")
        assert silent == 0


def test_precursor_labels_only_before_failures(plant) -> None:
    wrong = scalar(plant, """select count(*) from sensor_readings where
        (label_anomaly = 'precursor' and (label_failure_at is null
          or event_time >= label_failure_at or event_time < label_failure_at - interval 4 hours))
        or (label_failure_at is not null and label_failure_at - event_time > interval 4 hours)""")
    assert wrong == 0


# --- options -----------------------------------------------------------------------------------

def test_unknown_domain_and_option_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="known"):
        make_generator("weather")
    with pytest.raises(TypeError):
        make_generator("iot", n_robots=3)
    with pytest.raises(ValueError):
        make_generator("fraud", fraud_rate=0.5)
