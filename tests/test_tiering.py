"""S3 lifecycle tiering and the storage cost report, against a real local S3 (moto_server).

moto stores lifecycle rules but never runs them, so the tests apply the transitions
themselves (`copy_object` with the rule's storage class, for objects as old as the rule
says, aged by partition date) and check the tables still read through the query layer.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from lakehouse.catalog import (
    CATALOG,
    GOLD_SENSOR_HOURLY,
    STANDARD_TIERS,
    StorageClass,
    TierRule,
    table_uri,
)
from lakehouse.delta import open_table, replace_partition
from lakehouse.maintenance.costs import (
    PRICES_PER_TB_MONTH,
    SEED_TIERS,
    TB,
    cost_chart,
    cost_report,
    seed_tiering_estimate,
)
from lakehouse.maintenance.lifecycle import (
    REMOVED_TAG,
    apply_lifecycle,
    data_prefix,
    lifecycle_rules,
    live_tiers,
    tag_removed_files,
)
from lakehouse.query import run_query
from lakehouse.settings import Settings
from tests.conftest import s3_client, s3_lake_options
from tests.test_query import hourly

SPEC = GOLD_SENSOR_HOURLY
TODAY = datetime.now(UTC).date()


def write_day(settings: Settings, day: date, sensors: int, avg: float = 1.0) -> None:
    rows = hourly(day, [f"s{i}" for i in range(sensors)], avg)  # one row per sensor
    replace_partition(SPEC, settings, rows, f"event_date = '{day}'")


@pytest.fixture
def s3_lake(make_settings: Callable[..., Settings], moto_server: str, s3_bucket: str) -> Settings:
    """Settings for a lake at s3://<fresh bucket>/lake on the local moto_server."""
    return make_settings(**s3_lake_options(moto_server, s3_bucket))


def keys(client: BaseClient, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def rule_prefix(rule: dict[str, Any]) -> str:
    """The key prefix a rule's filter requires (every rule of ours has one)."""
    found = rule["Filter"].get("Prefix", rule["Filter"].get("And", {}).get("Prefix"))
    assert found, rule
    return found


def storage_class(client: BaseClient, bucket: str, key: str) -> str:
    """S3 leaves StorageClass out of HEAD for Standard objects."""
    return client.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD")


def partition_day(key: str) -> date:
    return date.fromisoformat(re.search(r"event_date=(\d{4}-\d{2}-\d{2})/", key).group(1))


def test_live_files_never_tier_into_a_class_that_needs_a_restore(s3_lake: Settings) -> None:
    assert [cls for cls in StorageClass if not cls.directly_readable] == [
        StorageClass.GLACIER,
        StorageClass.DEEP_ARCHIVE,
    ]
    # Every catalogued table gets its rules (none asks for an unreadable class)...
    assert {rule["ID"].rsplit(":", 1)[0] for rule in lifecycle_rules(s3_lake)} == {
        f"lakehouse:{table_uri(spec, s3_lake)}" for spec in CATALOG.tables.values()
    }
    # ...and the seed's Deep Archive tier is refused for the files a snapshot reads.
    with pytest.raises(ValueError, match="DEEP_ARCHIVE objects cannot be read"):
        live_tiers(replace(SPEC, tiers=SEED_TIERS), s3_lake)
    # A tier is left out when expiry comes before the class's minimum storage duration:
    # kept 150 days, expired at 180: Glacier IR at 180 would bill 90 days for none.
    assert live_tiers(replace(SPEC, retention_days=150), s3_lake) == STANDARD_TIERS[:1]
    assert live_tiers(replace(SPEC, retention_days=None), s3_lake) == STANDARD_TIERS
    # Data prefixes are strings no _delta_log key starts with.
    assert data_prefix(SPEC, s3_lake) == "lake/gold/sensor_hourly/event_date="
    assert data_prefix(replace(SPEC, partition_by=()), s3_lake) == "lake/gold/sensor_hourly/part-"


def test_rules_round_trip_skip_the_delta_log_keep_foreign_rules_and_apply_idempotently(
    s3_lake: Settings, moto_server: str, s3_bucket: str
) -> None:
    client = s3_client(moto_server)
    for age in (1, 40, 200):
        write_day(s3_lake, TODAY - timedelta(days=age), 3)
    foreign = [
        {"ID": "exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"},
         "Expiration": {"Days": 7}},
        # Ours in form, but for another lake root in the same bucket: not ours to change.
        {"ID": f"lakehouse:s3://{s3_bucket}/other/gold/x:live", "Status": "Enabled",
         "Filter": {"Prefix": "other/gold/x/event_date="}, "Expiration": {"Days": 9}},
    ]
    stale = {"ID": f"lakehouse:{s3_lake.lake_root}/gold/dropped_table:live",
             "Status": "Enabled", "Filter": {"Prefix": "lake/gold/dropped_table/event_date="},
             "Expiration": {"Days": 30}}
    client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [*foreign, stale]}
    )
    wanted = lifecycle_rules(s3_lake)
    ids = tuple(sorted(rule["ID"] for rule in wanted))

    planned = apply_lifecycle(s3_lake, dry_run=True)
    assert (planned.added, planned.removed, planned.written) == (ids, (stale["ID"],), False)
    stored = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert stored == [*foreign, stale]

    applied = apply_lifecycle(s3_lake)
    assert (applied.added, applied.changed, applied.unchanged) == (ids, (), ())
    assert (applied.removed, applied.foreign, applied.written) == ((stale["ID"],), 2, True)
    stored = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert stored == [*foreign, *wanted]  # S3 gives back exactly what was put

    # No rule's filter matches a key of any _delta_log/, and the table's data files all
    # fall under its own rules.
    table_keys = keys(client, s3_bucket, "lake/")
    log_keys = [key for key in table_keys if "/_delta_log/" in key]
    data_keys = [key for key in table_keys if "/_delta_log/" not in key]
    assert log_keys and data_keys
    for rule in stored:
        assert not [key for key in log_keys if key.startswith(rule_prefix(rule))], rule["ID"]
    table_rules = [rule for rule in wanted if table_uri(SPEC, s3_lake) + ":" in rule["ID"]]
    assert len(table_rules) == 2
    assert all(key.startswith(rule_prefix(rule)) for key in data_keys for rule in table_rules)

    again = apply_lifecycle(s3_lake)
    assert (again.added, again.changed, again.removed) == ((), (), ())
    assert (again.unchanged, again.written) == (ids, False)

    # A changed setting changes exactly the rules that depend on it; foreign rules stay.
    longer = s3_lake.model_copy(update={"lifecycle_expiry_margin_days": 45})
    moved = apply_lifecycle(longer)
    expiring = {
        rule["ID"]
        for rule in wanted
        if rule["ID"].endswith(":live") and "Expiration" in rule
    }
    assert set(moved.changed) == expiring and moved.written
    stored = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert stored[:2] == foreign


def test_tiered_files_still_read_and_archive_classes_would_not(
    s3_lake: Settings, moto_server: str, s3_bucket: str
) -> None:
    client = s3_client(moto_server)
    ages = {1: 2, 40: 3, 200: 4, 400: 5}  # partition age in days: sensors (rows)
    for age, sensors in ages.items():
        write_day(s3_lake, TODAY - timedelta(days=age), sensors)
    apply_lifecycle(s3_lake)
    rules = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    live = next(r for r in rules if r["ID"] == f"lakehouse:{table_uri(SPEC, s3_lake)}:live")

    # What S3 would do: each object as old as its partition (it lands the day after and
    # is compacted that night) goes to the class of the last transition it has reached.
    for key in keys(client, s3_bucket, rule_prefix(live)):
        age = (TODAY - partition_day(key)).days
        reached = [t for t in live["Transitions"] if t["Days"] <= age]
        if reached:
            target = max(reached, key=lambda t: t["Days"])["StorageClass"]
            client.copy_object(Bucket=s3_bucket, Key=key, StorageClass=target,
                               CopySource={"Bucket": s3_bucket, "Key": key})

    table_keys = keys(client, s3_bucket, "lake/gold/sensor_hourly/")
    classes = {
        (TODAY - partition_day(key)).days: storage_class(client, s3_bucket, key)
        for key in table_keys
        if "/_delta_log/" not in key
    }
    assert classes == {1: "STANDARD", 40: "STANDARD_IA", 200: "GLACIER_IR", 400: "GLACIER_IR"}
    assert {storage_class(client, s3_bucket, k) for k in table_keys if "/_delta_log/" in k} == {
        "STANDARD"
    }

    # Standard-IA and Glacier IR answer a plain GET: the table reads as before.
    counted = run_query(
        s3_lake,
        "SELECT date_diff('day', event_date, current_date) AS age, count(*) AS n "
        "FROM gold.sensor_hourly GROUP BY 1 ORDER BY 1",
    ).to_pylist()
    assert counted == [{"age": age, "n": n} for age, n in ages.items()]

    # A Deep Archive (or Glacier Flexible Retrieval) object does not: which is why live
    # files never go there.
    archived = {
        key: {200: "GLACIER", 400: "DEEP_ARCHIVE"}[age]
        for key in table_keys
        if "/_delta_log/" not in key and (age := (TODAY - partition_day(key)).days) >= 200
    }
    for key, archive in archived.items():
        client.copy_object(Bucket=s3_bucket, Key=key, StorageClass=archive,
                           CopySource={"Bucket": s3_bucket, "Key": key})
        with pytest.raises(ClientError, match="InvalidObjectState"):
            client.get_object(Bucket=s3_bucket, Key=key)
    with pytest.raises(duckdb.Error, match="InvalidObjectState"):
        run_query(s3_lake, "SELECT sum(readings) FROM gold.sensor_hourly")


def test_tagging_marks_exactly_the_files_vacuum_would_delete(
    s3_lake: Settings, moto_server: str, s3_bucket: str
) -> None:
    client = s3_client(moto_server)
    first, second = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
    write_day(s3_lake, first, 2)
    write_day(s3_lake, second, 2)
    write_day(s3_lake, first, 3, avg=2.0)  # a rebuild: the first file is removed
    write_day(s3_lake, first, 4, avg=3.0)  # and again
    table = open_table(SPEC, s3_lake)
    assert table is not None
    version = table.version()
    live = {f"lake/gold/sensor_hourly/{path}" for path in
            pa.table(table.get_add_actions()).column("path").to_pylist()}
    data_keys = [k for k in keys(client, s3_bucket, "lake/gold/sensor_hourly/")
                 if "/_delta_log/" not in k]
    removed = sorted(set(data_keys) - live)
    assert len(removed) == 2 and len(live) == 2
    client.put_object_tagging(Bucket=s3_bucket, Key=removed[0],
                              Tagging={"TagSet": [{"Key": "owner", "Value": "iot"}]})

    # Inside the time-travel window (the table's default retention, a week) nothing is
    # tagged: S3 counts a rule's days from creation, so a tag now would expire a file
    # that a recent version still reads.
    assert tag_removed_files(SPEC, s3_lake) == 0
    # Past it (here: a zero retention), exactly the removed files are tagged, other tags
    # kept, the log and the live files untouched; a second run tags nothing new.
    assert tag_removed_files(SPEC, s3_lake, retention_hours=0,
                             enforce_retention_duration=False) == 2
    assert tag_removed_files(SPEC, s3_lake, retention_hours=0,
                             enforce_retention_duration=False) == 0
    tagged = {
        key: client.get_object_tagging(Bucket=s3_bucket, Key=key)["TagSet"]
        for key in keys(client, s3_bucket, "lake/gold/sensor_hourly/")
    }
    assert sorted(key for key, tags in tagged.items() if REMOVED_TAG in tags) == removed
    assert tagged[removed[0]] == [{"Key": "owner", "Value": "iot"}, REMOVED_TAG]
    # The `removed` rule matches exactly those: its prefix and its tag.
    rule = next(r for r in lifecycle_rules(s3_lake)
                if r["ID"] == f"lakehouse:{table_uri(SPEC, s3_lake)}:removed")
    matched = sorted(key for key, tags in tagged.items()
                     if key.startswith(rule_prefix(rule))
                     and all(tag in tags for tag in rule["Filter"]["And"]["Tags"]))
    assert matched == removed
    # Tagging is a dry-run vacuum: no commit, and the table reads its live rows.
    table.update_incremental()
    assert table.version() == version
    assert run_query(s3_lake, "SELECT count(*) AS n FROM gold.sensor_hourly").to_pylist() == [
        {"n": 6}
    ]


def test_a_local_lake_gets_no_lifecycle(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    write_day(settings, TODAY, 1)
    result = apply_lifecycle(settings)
    assert (result.bucket, result.written, result.added) == (None, False, ())
    assert "only to a lake on S3" in result.note and "nothing done" in result.note
    assert tag_removed_files(SPEC, settings) == 0


def test_cost_report_prices_bytes_per_age_band_from_the_delta_log(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    as_of = date(2026, 12, 1)
    ages = {10: 5, 100: 20, 200: 40, 500: 80}  # days old: sensors (rows)
    for age, sensors in ages.items():
        write_day(settings, as_of - timedelta(days=age), sensors)

    report = cost_report(settings, as_of=as_of)

    # Bytes on disk per partition folder, independently of the Delta log.
    lake = Path(table_uri(SPEC, settings))
    on_disk = {
        age: sum(f.stat().st_size for f in (lake / f"event_date={as_of - timedelta(days=age)}")
                 .glob("*.parquet"))
        for age in ages
    }
    prices = {
        10: PRICES_PER_TB_MONTH[StorageClass.STANDARD],
        100: PRICES_PER_TB_MONTH[StorageClass.STANDARD_IA],
        200: PRICES_PER_TB_MONTH[StorageClass.GLACIER_IR],
        500: PRICES_PER_TB_MONTH[StorageClass.GLACIER_IR],  # not Deep Archive: still live
    }
    rows = report.rows.to_pylist()
    assert [(r["table"], r["band"], r["storage_class"], r["files"]) for r in rows] == [
        ("gold.sensor_hourly", "0-30 d", "STANDARD", 1),
        ("gold.sensor_hourly", "30-180 d", "STANDARD_IA", 1),
        ("gold.sensor_hourly", "180-365 d", "GLACIER_IR", 1),
        ("gold.sensor_hourly", "365+ d", "GLACIER_IR", 1),
    ]
    assert [r["bytes"] for r in rows] == [on_disk[age] for age in ages]
    assert [r["standard_usd"] for r in rows] == pytest.approx(
        [on_disk[age] / TB * 23.0 for age in ages]
    )
    assert [r["tiered_usd"] for r in rows] == pytest.approx(
        [on_disk[age] / TB * prices[age] for age in ages]
    )
    assert report.total_bytes == sum(on_disk.values())
    assert report.tiered_usd < report.standard_usd

    chart = cost_chart(report)
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", chart).group(1))
    assert png.startswith(b"\x89PNG")
    assert "| gold.sensor_hourly | 365+ d | GLACIER_IR | 1 |" in chart


def test_seed_arithmetic() -> None:
    seed = seed_tiering_estimate()
    # 50 TB/day for 30 days all in Standard at $23/TB-month: the seed's $34,500.
    assert (seed.stored_tb, seed.all_standard_usd) == (1_500.0, 34_500.0)
    # Tiered, that month of data over its first year (30 d Standard, 150 d IA, 185 d
    # Glacier IR): $13,582.19, not the seed's "about $12,000" (no age stated there).
    assert seed.tiered_usd == pytest.approx(1_500 * (30 * 23 + 150 * 12.5 + 185 * 4) / 365)
    assert seed.tiered_usd == pytest.approx(13_582.19, abs=0.01)
    assert seed.gap_usd == pytest.approx(1_582.19, abs=0.01)
    # Over five years: the seed's Deep Archive against the catalog's readable Glacier IR.
    assert seed_tiering_estimate(horizon_days=5 * 365).tiered_usd == pytest.approx(
        3_916.44, abs=0.01
    )
    assert seed_tiering_estimate(
        horizon_days=5 * 365, tiers=STANDARD_TIERS
    ).tiered_usd == pytest.approx(7_516.44, abs=0.01)
    # The steady state of 50 TB/day kept five years (91,250 TB), in the docs' table.
    steady = {"days": 5 * 365, "horizon_days": 5 * 365}
    assert seed_tiering_estimate(**steady).all_standard_usd == pytest.approx(2_098_750)
    assert seed_tiering_estimate(**steady).tiered_usd == pytest.approx(238_250)
    assert seed_tiering_estimate(**steady, tiers=STANDARD_TIERS).tiered_usd == pytest.approx(
        457_250
    )
    assert seed_tiering_estimate(tiers=[TierRule(StorageClass.STANDARD_IA, 0)]).tiered_usd == (
        1_500 * 12.5
    )
