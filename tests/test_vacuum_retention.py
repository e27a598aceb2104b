"""VACUUM keeps what time travel inside its window needs and deletes what lies outside;
retention deletes only the partitions past the catalog's retention. Real Delta tables."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pydantic import ValidationError

from lakehouse.catalog import (
    BRONZE_TRANSACTIONS,
    MODEL_REGISTRY,
    SILVER_SENSOR_READINGS,
    TableSpec,
    table_uri,
)
from lakehouse.delta import replace_partition
from lakehouse.maintenance.locks import MaintenanceBusy, exclusive
from lakehouse.maintenance.retention import (
    ExpiredPartition,
    apply_retention,
    expired_partitions,
    retention_cutoff,
)
from lakehouse.maintenance.vacuum import vacuum_table
from lakehouse.settings import Settings
from tests.conftest import s3_client, s3_lake_options

TODAY = date(2026, 11, 23)
DAY = date(2026, 11, 20)
TEN_DAYS_MS = 10 * 24 * 3600 * 1000


def day_rows(spec: TableSpec, day: date, count: int, value: float = 1.0) -> pa.Table:
    """`count` rows of one day in the table's schema (the columns maintenance ignores
    left null)."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    rows = [
        {
            "event_id": f"{day}-{i}",
            "event_time": noon + timedelta(seconds=i),
            "device_id": "machine-0001",
            "value": value,
            "amount": value,
            "event_date": day,
        }
        for i in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=spec.schema)


def write_day(spec: TableSpec, settings: Settings, day: date, count: int, value: float) -> int:
    return replace_partition(
        spec, settings, day_rows(spec, day, count, value), f"event_date = '{day}'"
    )


def values_at(spec: TableSpec, settings: Settings, version: int) -> set[float]:
    table = DeltaTable(table_uri(spec, settings), version=version)
    return set(table.to_pyarrow_table(columns=["value"])["value"].to_pylist())


def age_commits(log: Path, versions: range, by_ms: int) -> None:
    """Make commits as old as if written `by_ms` ago: their removes' `deletionTimestamp`
    (what VACUUM ages files by), commit timestamp and file modification time (what the
    log listing ages commits by). Nothing else in them changes."""
    for version in versions:
        path = log / f"{version:020d}.json"
        actions = [json.loads(line) for line in path.read_text().splitlines()]
        for action in actions:
            if "remove" in action:
                action["remove"]["deletionTimestamp"] -= by_ms
            if "commitInfo" in action:
                action["commitInfo"]["timestamp"] -= by_ms
        mtime = path.stat().st_mtime - by_ms / 1000
        path.write_text("".join(json.dumps(action) + "\n" for action in actions))
        os.utime(path, (mtime, mtime))


def test_vacuum_keeps_the_window_and_deletes_what_only_older_versions_read(
    make_settings: Callable[..., Settings],
) -> None:
    # Waiting a week is not possible, so versions 0-2 are aged ten days the way time
    # would age them (age_commits); version 3 is committed now. The default 7-day
    # retention must then delete version 1's file (removed by version 2, ten days ago)
    # and keep version 2's (removed by version 3, just now).
    settings = make_settings()
    spec = SILVER_SENSOR_READINGS
    for value in (1.0, 2.0, 3.0):
        write_day(spec, settings, DAY, 5, value)  # versions 1, 2, 3 (0 created the table)
    uri = table_uri(spec, settings)
    v1_files = pa.table(DeltaTable(uri, version=1).get_add_actions(flatten=True))
    age_commits(Path(uri) / "_delta_log", range(3), TEN_DAYS_MS)

    result = vacuum_table(spec, settings)

    assert result.retention_hours == 168
    assert result.paths == tuple(v1_files["path"].to_pylist())
    assert result.bytes_removed == sum(v1_files["size_bytes"].to_pylist()) > 0
    assert result.oldest_readable_version == 2
    assert values_at(spec, settings, 2) == {2.0}  # inside the window: still reads
    assert values_at(spec, settings, result.version) == {3.0}
    with pytest.raises(OSError):  # outside: its file is gone
        values_at(spec, settings, 1)
    assert result.checkpoint_version == result.version
    assert list((Path(uri) / "_delta_log").glob(f"{result.version:020d}.checkpoint.parquet"))
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 5
    assert result.log_files_removed == 0  # ten days is inside the 30-day log retention


def test_dry_run_deletes_nothing_then_a_short_retention_allowed_by_settings_does(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(maintenance_vacuum_retention_hours=0, maintenance_longest_run_hours=0)
    spec = SILVER_SENSOR_READINGS
    for value in (1.0, 2.0, 3.0):
        write_day(spec, settings, DAY, 4, value)

    listed = vacuum_table(spec, settings, dry_run=True)
    assert listed.files_removed == 2 and listed.bytes_removed > 0
    assert listed.checkpoint_version is None and listed.version == 3
    assert all(values_at(spec, settings, version) == {version * 1.0} for version in (1, 2, 3))

    done = vacuum_table(spec, settings)
    assert done.paths == listed.paths and done.bytes_removed == listed.bytes_removed
    assert done.oldest_readable_version == done.version
    assert values_at(spec, settings, done.version) == {3.0}
    for old in (1, 2):
        with pytest.raises(OSError):
            values_at(spec, settings, old)


def test_expired_log_is_cleaned_after_a_checkpoint_and_old_versions_stop_loading(
    make_settings: Callable[..., Settings],
) -> None:
    # Three days written 40 days ago (past the 30-day log retention), aged as above.
    # Nothing was overwritten, so the vacuum deletes nothing and commits nothing: the
    # checkpoint lands on version 3, and the commits before it are no longer needed.
    settings = make_settings()
    spec = BRONZE_TRANSACTIONS
    for offset in (1, 2, 3):
        write_day(spec, settings, DAY - timedelta(days=40 + offset), offset, 1.0)
    uri = table_uri(spec, settings)
    age_commits(Path(uri) / "_delta_log", range(4), 4 * TEN_DAYS_MS)

    result = vacuum_table(spec, settings)

    assert result.files_removed == 0
    assert result.log_files_removed == 3  # commits 0-2
    assert result.oldest_readable_version == result.checkpoint_version == 3
    assert DeltaTable(uri, version=3).to_pyarrow_table().num_rows == 6
    with pytest.raises(TableNotFoundError):  # its commit is gone
        DeltaTable(uri, version=2)


def test_settings_refuse_a_vacuum_retention_below_the_longest_run(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValidationError, match="MAINTENANCE_LONGEST_RUN_HOURS=24"):
        make_settings(maintenance_vacuum_retention_hours=12)
    settings = make_settings(maintenance_longest_run_hours=48)
    with pytest.raises(ValueError, match="below MAINTENANCE_LONGEST_RUN_HOURS=48"):
        vacuum_table(SILVER_SENSOR_READINGS, settings, retention_hours=24)


def test_retention_deletes_partitions_before_the_cutoff_and_keeps_the_cutoff_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    spec = SILVER_SENSOR_READINGS  # kept 2 years
    cutoff = retention_cutoff(spec, TODAY)
    assert cutoff == TODAY - timedelta(days=730)
    days = [cutoff - timedelta(days=2), cutoff - timedelta(days=1), cutoff, TODAY]
    for count, day in enumerate(days, start=1):
        write_day(spec, settings, day, count, 1.0)
    uri = table_uri(spec, settings)
    files = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
    days_and_sizes = zip(
        files["partition.event_date"].to_pylist(), files["size_bytes"].to_pylist(), strict=True
    )
    size = dict(days_and_sizes)

    expected = [
        ExpiredPartition(day, 1, rows, size[day]) for rows, day in ((1, days[0]), (2, days[1]))
    ]
    assert expired_partitions(spec, settings, TODAY) == expected

    listed = apply_retention(spec, settings, TODAY, dry_run=True)
    assert listed.partitions == tuple(expected) and listed.rows == 3 and listed.version == 4
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 10

    done = apply_retention(spec, settings, TODAY, dry_run=False)
    assert done.partitions == tuple(expected) and done.version == 5 and done.cutoff == cutoff
    remaining = DeltaTable(uri).to_pyarrow_table(columns=["event_date"])["event_date"]
    assert sorted(set(remaining.to_pylist())) == [cutoff, TODAY]
    operation = DeltaTable(uri).history(1)[0]
    assert operation["operation"] == "DELETE"
    assert operation["operationMetrics"]["num_added_files"] == 0  # whole files, no rewrite
    assert apply_retention(spec, settings, TODAY, dry_run=False).partitions == ()


def test_fraud_tables_keep_seven_years(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    spec = BRONZE_TRANSACTIONS
    six_years, eight_years = TODAY - timedelta(days=6 * 365), TODAY - timedelta(days=8 * 365)
    for day in (eight_years, six_years, TODAY):
        write_day(spec, settings, day, 2, 1.0)
    assert retention_cutoff(spec, TODAY) == TODAY - timedelta(days=7 * 365)
    assert [p.day for p in expired_partitions(spec, settings, TODAY)] == [eight_years]


def test_tables_without_retention_or_not_created_have_nothing_to_do(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    kept = apply_retention(MODEL_REGISTRY, settings, TODAY, dry_run=False)
    assert kept.skipped == "no retention declared" and kept.partitions == ()
    absent = apply_retention(BRONZE_TRANSACTIONS, settings, TODAY, dry_run=False)
    assert absent.skipped == "table not created yet"
    assert vacuum_table(BRONZE_TRANSACTIONS, settings).version is None


def test_retention_waits_for_a_compaction_of_the_same_table_and_lists_meanwhile(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    spec = SILVER_SENSOR_READINGS
    old = retention_cutoff(spec, TODAY) - timedelta(days=1)
    write_day(spec, settings, old, 2, 1.0)

    with exclusive(spec, settings, "compaction"):
        assert apply_retention(spec, settings, TODAY, dry_run=True).rows == 2
        with pytest.raises(MaintenanceBusy, match=r"silver\.sensor_readings"):
            apply_retention(spec, settings, TODAY, dry_run=False)

    assert apply_retention(spec, settings, TODAY, dry_run=False).rows == 2
    assert expired_partitions(spec, settings, TODAY) == []


def test_retention_deletes_only_in_production_unless_told(
    make_settings: Callable[..., Settings],
) -> None:
    assert not make_settings().retention_enforced
    assert make_settings(lakehouse_profile="production-like").retention_enforced
    assert not make_settings(
        lakehouse_profile="production-like", maintenance_retention_dry_run=True
    ).retention_enforced
    assert make_settings(maintenance_retention_dry_run=False).retention_enforced


def test_vacuum_and_retention_on_s3(
    make_settings: Callable[..., Settings], moto_server: str, s3_bucket: str
) -> None:
    settings = make_settings(
        **s3_lake_options(moto_server, s3_bucket),
        maintenance_vacuum_retention_hours=0,
        maintenance_longest_run_hours=0,
        maintenance_retention_dry_run=False,
    )
    spec = SILVER_SENSOR_READINGS
    old_day = TODAY - timedelta(days=800)
    for value in (1.0, 2.0):
        write_day(spec, settings, DAY, 3, value)
    write_day(spec, settings, old_day, 2, 1.0)
    retention = apply_retention(spec, settings, TODAY, dry_run=not settings.retention_enforced)
    assert [p.day for p in retention.partitions] == [old_day] and not retention.dry_run

    result = vacuum_table(spec, settings)

    assert result.files_removed == 2  # the first version of DAY, and the expired day
    assert result.bytes_removed > 0
    listing = s3_client(moto_server).list_objects_v2(Bucket=s3_bucket, Prefix="lake/silver/")
    keys = [entry["Key"] for entry in listing["Contents"]]
    assert any(key.endswith(f"{result.checkpoint_version:020d}.checkpoint.parquet") for key in keys)
    data = [key for key in keys if key.endswith(".parquet") and "_delta_log" not in key]
    assert len(data) == 1
    assert result.oldest_readable_version == result.version
