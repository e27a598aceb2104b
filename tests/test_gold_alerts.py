"""IoT alerts gold: the alert history and the daily roll-up per device from hand-built
silver alert records (an alert across midnight, one still open, overlapping alerts, a
duplicate record), a later close reaching its opening day's partition, idempotent
rebuilds, the quality checks refusing a broken table, and both assets through Dagster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from assets.iot.gold import gold_device_alerts_daily, gold_iot_alert_history
from assets.resources import platform_resources
from lakehouse.catalog import (
    GOLD_DEVICE_ALERTS_DAILY,
    GOLD_DEVICE_HEALTH_DAILY,
    GOLD_IOT_ALERT_HISTORY,
    SILVER_IOT_ALERTS,
    TableSpec,
    table_uri,
)
from lakehouse.delta import replace_partition
from lakehouse.schemas import DEVICE_HEALTH_DAILY
from lakehouse.settings import Settings
from lakehouse.transforms.alerts import (
    alert_history,
    build_alert_history_partition,
    build_device_alerts_partition,
    device_alerts_daily,
)
from quality.gate import BlockedWrite, QualityGate

D1, D2 = date(2026, 11, 21), date(2026, 11, 22)
LANDED = datetime(2026, 11, 23, tzinfo=UTC)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def record(
    alert_id: str,
    state: str,
    when: datetime,
    *,
    opened: datetime | None = None,
    device: str = "dev-1",
    rule: str = "zscore",
    severity: str = "warning",
    readings: int = 1,
    zscore: float | None = 6.0,
    health: float | None = None,
    landed: datetime = LANDED,
) -> dict[str, object]:
    """One silver.iot_alerts row as the processor's record would land."""
    device_level = rule == "device_health"
    return {
        "event_id": f"{alert_id}:{state}",
        "event_time": when,
        "alert_id": alert_id,
        "state": state,
        "rule": rule,
        "severity": severity,
        "device_id": device,
        "sensor_id": None if device_level else f"{device}-s1",
        "sensor_type": None if device_level else "vibration",
        "plant": "plant-a",
        "value": 9.5,
        "zscore": zscore,
        "health_score": health,
        "readings": readings,
        "opened_at": opened or when,
        "closed_at": when if state == "close" else None,
        "reading_event_id": f"r-{alert_id}-{state}",
        "detected_at": when + timedelta(milliseconds=400),
        "_ingested_at": landed,
        "event_date": when.date(),
    }


# A (dev-1): 10:00-10:30 on D1. B (dev-1, critical): 10:15-11:00, overlapping A, so dev-1 is
# under alert 10:00-11:00. C (dev-2): 23:30 on D1 to 00:45 on D2, across midnight; its
# close landed twice (the later copy must not count). E (dev-3, device level): opens 22:00
# on D2 and is still open.
A_OPEN = record("A", "open", at(D1, 10), zscore=-7.0)
A_CLOSE = record("A", "close", at(D1, 10, 30), opened=at(D1, 10), readings=3, zscore=4.0)
B_OPEN = record("B", "open", at(D1, 10, 15), rule="above_limit", severity="critical",
                zscore=None)  # fmt: skip
B_CLOSE = record("B", "close", at(D1, 11), opened=at(D1, 10, 15), rule="above_limit",
                 severity="critical", zscore=None, readings=2)  # fmt: skip
C_OPEN = record("C", "open", at(D1, 23, 30), device="dev-2")
C_CLOSE = record("C", "close", at(D2, 0, 45), opened=at(D1, 23, 30), device="dev-2", readings=5)
C_CLOSE_AGAIN = {**C_CLOSE, "readings": 99, "_ingested_at": LANDED + timedelta(hours=1)}
E_OPEN = record("E", "open", at(D2, 22), device="dev-3", rule="device_health", zscore=None,
                health=0.42)  # fmt: skip
RECORDS = [A_OPEN, A_CLOSE, B_OPEN, B_CLOSE, C_OPEN, C_CLOSE, C_CLOSE_AGAIN, E_OPEN]


def silver(*records: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(records), schema=SILVER_IOT_ALERTS.schema)


def seed_silver(settings: Settings, day: date, *records: dict[str, object]) -> None:
    """Replace silver.iot_alerts of `day` with `records`, as the silver asset would."""
    replace_partition(SILVER_IOT_ALERTS, settings, silver(*records), f"event_date = '{day}'")


def health(day: date, *scores: tuple[str, float, str]) -> pa.Table:
    rows = [{"device_id": device, "plant": "plant-a", "event_date": day, "health_score": score,
             "status": status} for device, score, status in scores]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=DEVICE_HEALTH_DAILY)


def rows_of(settings: Settings, table: TableSpec) -> list[dict[str, object]]:
    rows = DeltaTable(table_uri(table, settings)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (r["event_date"], r.get("alert_id") or r["device_id"]))


def test_history_folds_each_alerts_records_into_one_row() -> None:
    history = alert_history(silver(*RECORDS))
    got = [
        (r["event_date"], r["alert_id"], r["device_id"], r["sensor_id"], r["rule"],
         r["severity"], r["state"], r["opened_at"], r["closed_at"], r["minutes_to_close"],
         r["readings"], r["open_zscore"], r["max_abs_zscore"], r["min_health_score"])
        for r in history.to_pylist()
    ]  # fmt: skip
    assert got == [
        (D1, "A", "dev-1", "dev-1-s1", "zscore", "warning", "closed", at(D1, 10),
         at(D1, 10, 30), 30.0, 3, -7.0, 7.0, None),
        (D1, "B", "dev-1", "dev-1-s1", "above_limit", "critical", "closed", at(D1, 10, 15),
         at(D1, 11), 45.0, 2, None, None, None),
        (D1, "C", "dev-2", "dev-2-s1", "zscore", "warning", "closed", at(D1, 23, 30),
         at(D2, 0, 45), 75.0, 5, 6.0, 6.0, None),
        (D2, "E", "dev-3", None, "device_health", "warning", "open", at(D2, 22), None, None,
         1, None, None, 0.42),
    ]  # fmt: skip
    assert history["detection_seconds"].to_pylist() == [0.4] * 4

    # A close whose open record is missing still makes the alert's row, from the close.
    (only_close,) = alert_history(silver(C_CLOSE)).to_pylist()
    assert (only_close["event_date"], only_close["state"], only_close["opened_at"],
            only_close["minutes_to_close"], only_close["detected_at"]) == (
        D1, "closed", at(D1, 23, 30), 75.0, None)  # fmt: skip


def test_daily_rollup_counts_what_was_known_by_each_days_end() -> None:
    history = alert_history(silver(*RECORDS))
    columns = ["device_id", "alerts_opened", "zscore_opened", "above_limit_opened",
               "device_health_opened", "critical_opened", "alerts_closed", "alerts_active",
               "minutes_under_alert", "open_at_end_of_day", "health_score", "status"]  # fmt: skip

    def table(day: date, health_rows: pa.Table) -> list[tuple[object, ...]]:
        daily = device_alerts_daily(history, health_rows, day)
        assert set(daily["event_date"].to_pylist()) == {day}
        return [tuple(row.values()) for row in daily.select(columns).to_pylist()]

    # dev-1: A and B overlap, 60 minutes under alert, not 75; dev-2: 30 minutes before
    # midnight and open at its end; dev-4: healthy and quiet, zeros beside its health.
    assert table(D1, health(D1, ("dev-1", 0.9, "ok"), ("dev-4", 0.95, "ok"))) == [
        ("dev-1", 2, 1, 1, 0, 1, 2, 2, 60.0, 0, 0.9, "ok"),
        ("dev-2", 1, 1, 0, 0, 0, 0, 1, 30.0, 1, None, None),
        ("dev-4", 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0.95, "ok"),
    ]
    # dev-2's alert closes 45 minutes into D2; dev-3's is open from 22:00 to the day's end.
    assert table(D2, health(D2, ("dev-3", 0.3, "critical"))) == [
        ("dev-2", 0, 0, 0, 0, 0, 1, 1, 45.0, 0, None, None),
        ("dev-3", 1, 0, 0, 1, 0, 0, 1, 120.0, 1, 0.3, "critical"),
    ]
    # D1 as it was before D2's close existed: the same rows.
    before = alert_history(silver(A_OPEN, A_CLOSE, B_OPEN, B_CLOSE, C_OPEN))
    assert device_alerts_daily(before, health(D1), D1) == device_alerts_daily(
        history, health(D1), D1
    )


def test_a_later_close_rewrites_the_opening_days_partition_idempotently(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver(settings, D1, A_OPEN, A_CLOSE, C_OPEN)
    build_alert_history_partition(settings, D1)
    build_device_alerts_partition(settings, D1)
    first = rows_of(settings, GOLD_IOT_ALERT_HISTORY)
    assert [(r["alert_id"], r["state"], r["closed_at"]) for r in first] == [
        ("A", "closed", at(D1, 10, 30)),
        ("C", "open", None),
    ]
    daily_d1 = rows_of(settings, GOLD_DEVICE_ALERTS_DAILY)

    # D2's silver holds C's close (twice) and E's open: building D2 closes C in D1's
    # partition and adds E to D2's; D1's roll-up, rebuilt, does not change.
    seed_silver(settings, D2, C_CLOSE, C_CLOSE_AGAIN, E_OPEN)
    rows = build_alert_history_partition(settings, D2)
    assert rows["alert_id"].to_pylist() == ["E"]
    after = rows_of(settings, GOLD_IOT_ALERT_HISTORY)
    assert [(r["event_date"], r["alert_id"], r["state"], r["closed_at"], r["readings"])
            for r in after] == [
        (D1, "A", "closed", at(D1, 10, 30), 3),
        (D1, "C", "closed", at(D2, 0, 45), 5),
        (D2, "E", "open", None, 1),
    ]  # fmt: skip
    build_device_alerts_partition(settings, D1)
    assert rows_of(settings, GOLD_DEVICE_ALERTS_DAILY) == daily_d1

    # Every day rebuilt again, in either order: the same tables.
    build_device_alerts_partition(settings, D2)
    both = rows_of(settings, GOLD_DEVICE_ALERTS_DAILY)
    for day in (D2, D1, D2):
        build_alert_history_partition(settings, day)
        build_device_alerts_partition(settings, day)
    assert rows_of(settings, GOLD_IOT_ALERT_HISTORY) == after
    assert rows_of(settings, GOLD_DEVICE_ALERTS_DAILY) == both
    assert DeltaTable(table_uri(GOLD_IOT_ALERT_HISTORY, settings)).to_pyarrow_table().num_rows == 3


def test_the_quality_gate_refuses_a_broken_history_and_keeps_the_good_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver(settings, D1, A_OPEN, A_CLOSE)
    build_alert_history_partition(settings, D1, QualityGate(settings))
    good = rows_of(settings, GOLD_IOT_ALERT_HISTORY)
    # A close before its open (a processor clock gone wrong that silver let through would
    # be caught there; here the gold check is the last line).
    backwards = {**A_CLOSE, "event_time": at(D1, 9), "closed_at": at(D1, 9)}
    seed_silver(settings, D1, A_OPEN, backwards)
    gate = QualityGate(settings)
    with pytest.raises(BlockedWrite, match="counts_possible"):
        build_alert_history_partition(settings, D1, gate)
    assert rows_of(settings, GOLD_IOT_ALERT_HISTORY) == good
    failed = {o.check.name for o in gate.outcomes(GOLD_IOT_ALERT_HISTORY) if not o.passed}
    assert failed == {"counts_possible"}


def test_both_assets_materialize_through_dagster_with_their_checks(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver(settings, D1, A_OPEN, A_CLOSE, B_OPEN, B_CLOSE, C_OPEN)
    seed_silver(settings, D2, C_CLOSE, E_OPEN)
    for day, scores in ((D1, [("dev-1", 0.9, "ok"), ("dev-2", 0.8, "ok")]),
                        (D2, [("dev-2", 0.7, "warn"), ("dev-3", 0.3, "critical")])):  # fmt: skip
        replace_partition(GOLD_DEVICE_HEALTH_DAILY, settings, health(day, *scores),
                          f"event_date = '{day}'")  # fmt: skip
    resources = platform_resources(settings.lakehouse_root)
    assets = [gold_iot_alert_history, gold_device_alerts_daily]
    for day in (D1, D2):
        result = dg.materialize(assets, partition_key=day.isoformat(), resources=resources)
        assert result.success
        checks = [
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        blocking_failed = [c.check_name for c in checks if not c.passed
                           and c.severity == dg.AssetCheckSeverity.ERROR]  # fmt: skip
        assert checks and not blocking_failed
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["gold/iot_alert_history"]["still_open"].value == 1
    assert metadata["gold/device_alerts_daily"]["devices_alerted"].value == 2
    history = rows_of(settings, GOLD_IOT_ALERT_HISTORY)
    assert [(r["alert_id"], r["state"]) for r in history] == [
        ("A", "closed"), ("B", "closed"), ("C", "closed"), ("E", "open"),
    ]  # fmt: skip
    daily = DeltaTable(table_uri(GOLD_DEVICE_ALERTS_DAILY, settings)).to_pyarrow_table()
    d2 = daily.filter(pc.field("event_date") == D2).sort_by("device_id").to_pylist()
    assert [(r["device_id"], r["minutes_under_alert"], r["status"]) for r in d2] == [
        ("dev-2", 45.0, "warn"), ("dev-3", 120.0, "critical"),
    ]  # fmt: skip
