"""Per-device operating limits (`reference.device_limits`, `lakehouse iot limits`): a
device's own limits decide its `above_limit` / `below_limit`; "no limit known" silences
them for that device alone; other devices keep the catalog's; the processor picks a change
up on refresh and keeps the last good limits when a read fails; bad input writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from cli.app import app
from lakehouse.catalog import DEVICE_LIMITS, SENSOR_LIMITS, SENSOR_READINGS
from lakehouse.delta import open_table
from lakehouse.device_limits import DeviceLimit, LimitError, checked, read_limits, set_limit
from lakehouse.settings import Settings
from streaming.alerts import state
from streaming.alerts.detector import Detector, DetectorConfig
from streaming.alerts.limits import LimitsWatch, OperatingLimits
from streaming.alerts.processor import AlertOptions, AlertProcessor, _Partition

START = datetime(2026, 11, 1, tzinfo=UTC)
CONFIG = DetectorConfig()
CATALOG_HIGH = SENSOR_LIMITS["temperature"].operating[1]  # 90 degC
NAMES = [
    "event_id",
    "event_time",
    "device_id",
    "sensor_id",
    "sensor_type",
    "plant",
    "sequence",
    "value",
    "unit",
]


def readings(device: str, values: list[float], kind: str = "temperature") -> pa.Table:
    """One sensor's readings every 5 s, in order."""
    rows: list[dict[str, Any]] = [
        {
            "event_id": f"{device}-{i}",
            "event_time": START + timedelta(seconds=5 * i),
            "device_id": device,
            "sensor_id": f"{device}-{kind}",
            "sensor_type": kind,
            "plant": "plant-pune",
            "sequence": i,
            "value": value,
            "unit": SENSOR_LIMITS[kind].unit,
        }
        for i, value in enumerate(values)
    ]
    schema = SENSOR_READINGS.event.schema
    return pa.Table.from_pylist(rows, schema=pa.schema([schema.field(n) for n in NAMES]))


def overrides(*limits: DeviceLimit) -> OperatingLimits:
    rows = [
        {
            "device_id": x.device_id,
            "sensor_type": x.sensor_type,
            "low": x.low,
            "high": x.high,
            "source": x.source,
            "updated_at": START,
        }
        for x in limits
    ]
    return OperatingLimits.from_rows(pa.Table.from_pylist(rows, schema=DEVICE_LIMITS.schema), 0)


def opened(detector: Detector, table: pa.Table) -> list[tuple[str, str, float | None]]:
    return [
        (r["device_id"], r["rule"], r["limit"])
        for r in detector.process(table, 0).records
        if r["state"] == "open"
    ]


def test_a_device_override_decides_which_readings_are_above_its_limit() -> None:
    """95 degC is above the catalog's 90, not above this device's own 100; 105 is."""
    limits = overrides(DeviceLimit("dev-0001", "temperature", 20.0, 100.0))
    warm = readings("dev-0001", [95.0] * 10)
    assert opened(Detector(CONFIG), warm) == [("dev-0001", "above_limit", CATALOG_HIGH)]
    assert opened(Detector(CONFIG, limits), warm) == []
    hot = readings("dev-0001", [95.0] * 5 + [105.0] * 3)
    assert opened(Detector(CONFIG, limits), hot) == [("dev-0001", "above_limit", 100.0)]
    cold = readings("dev-0001", [15.0] * 3)
    assert opened(Detector(CONFIG, limits), cold) == [("dev-0001", "below_limit", 20.0)]


def test_no_known_limit_silences_the_limit_rules_for_that_device_only() -> None:
    """Both devices run at 95 degC and then spike: the one with no known limit raises
    only `zscore` (and health, judged as before); the other keeps the catalog's 90."""
    limits = overrides(DeviceLimit("dev-0001", "temperature", None, None))
    noise = [0.3, -0.2, 0.5, -0.4, 0.1, -0.3, 0.2, -0.1, 0.4, -0.5]
    values = [95.0 + noise[i % 10] for i in range(40)] + [150.0]
    table = pa.concat_tables([readings("dev-0001", values), readings("dev-0002", values)])
    rules = {(device, rule) for device, rule, _ in opened(Detector(CONFIG, limits), table)}
    assert ("dev-0001", "zscore") in rules and ("dev-0002", "zscore") in rules
    assert ("dev-0002", "above_limit") in rules
    assert {rule for device, rule in rules if device == "dev-0001"} <= {"zscore", "device_health"}


def test_other_sensor_types_of_the_device_keep_the_catalog_limits() -> None:
    limits = overrides(DeviceLimit("dev-0001", "temperature", None, None))
    high = SENSOR_LIMITS["vibration"].operating[1]
    table = readings("dev-0001", [high + 1] * 3, "vibration")
    assert opened(Detector(CONFIG, limits), table) == [("dev-0001", "above_limit", high)]


def test_limits_are_not_state_a_restored_detector_takes_the_current_ones() -> None:
    detector = Detector(CONFIG)
    detector.process(readings("dev-0001", [80.0] * 3), 0)
    limits = overrides(DeviceLimit("dev-0001", "temperature", 0.0, 70.0))
    restored = state.load(state.dump(detector), CONFIG, limits)
    assert restored.limit_high.tolist() == [70.0]


def test_a_refresh_picks_up_a_change_and_the_running_detectors_use_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(kafka_bootstrap_servers="127.0.0.1:1")
    processor = AlertProcessor(settings, AlertOptions(handle_signals=False, webhook=False))
    processor._refresh_limits(0.0)  # nothing recorded yet: the catalog's limits
    detector = Detector(processor.config, processor.limits.limits)
    processor.partitions[0] = _Partition(None, detector)
    hot = readings("dev-0001", [95.0] * 3)
    assert [rule for _, rule, _ in opened(detector, hot)] == ["above_limit"]

    set_limit(settings, DeviceLimit("dev-0001", "temperature", 0.0, 120.0))
    processor._refresh_limits(1.0)
    assert processor.limits.limits.version == 1
    assert detector.limit_high.tolist() == [120.0]
    later = readings("dev-0002", [95.0] * 3)  # a new sensor resolves its limits on arrival
    assert opened(detector, later) == [("dev-0002", "above_limit", CATALOG_HIGH)]
    assert detector.limit_high.tolist() == [120.0, CATALOG_HIGH]
    assert processor._limits_due == 1.0 + settings.iot_alerts_limits_refresh_seconds


def test_a_failed_refresh_keeps_the_last_limits_and_does_not_raise(
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    set_limit(settings, DeviceLimit("dev-0001", "temperature", 0.0, 120.0))
    watch = LimitsWatch(settings)
    assert watch.refresh() and not watch.refresh()  # moved once, then not again
    assert sample("iot_alerts_device_limits_version") == 1
    assert sample("iot_alerts_device_limits_overrides") == 1

    class Broken:
        def update_incremental(self) -> None:
            raise OSError("the lake's storage is away")

    failures = sample("iot_alerts_device_limits_refresh_failures_total")
    watch._watch._table = Broken()  # type: ignore[assignment]
    assert watch.refresh() is False
    assert watch.limits.version == 1 and watch.limits.high.tolist() == [120.0]
    assert "device limits not refreshed" in caplog.text
    assert sample("iot_alerts_device_limits_refresh_failures_total") == failures + 1
    assert sample("iot_alerts_device_limits_version") == 1  # the limits still in force
    set_limit(settings, DeviceLimit("dev-0001", "temperature", 0.0, 110.0))
    assert watch.refresh() and watch.limits.high.tolist() == [110.0]  # back once it is


def sample(name: str) -> float | None:
    """A metric's value in the process's Prometheus registry."""
    return REGISTRY.get_sample_value(name)


BAD_INPUT = [
    (["dev-0001", "temprature", "--low", "1", "--high", "2"], "unknown sensor type"),
    (["dev-0001", "temperature", "--low", "50", "--high", "40"], "above the high limit"),
    (["dev-0001", "temperature", "--low", "nan", "--high", "40"], "not a finite number"),
    (["dev-0001", "temperature", "--low", "1", "--high", "inf"], "not a finite number"),
    (["dev-0001", "temperature", "--low", "-1e308", "--high", "40"], "can report"),
    (["dev-0001", "temperature", "--high", "40"], "both a low and a high"),
    (["dev-0001", "temperature"], "--unknown"),
    (["dev-0001", "temperature", "--unknown", "--high", "40"], "--unknown takes no"),
    (["", "temperature", "--low", "1", "--high", "2"], "device id"),
]


@pytest.mark.parametrize(("args", "reason"), BAD_INPUT)
def test_bad_cli_input_is_refused_with_a_reason_and_writes_nothing(
    args: list[str],
    reason: str,
    make_settings: Callable[..., Settings],
    activate: Callable[[Settings], None],
) -> None:
    settings = make_settings()
    activate(settings)
    runner = CliRunner()
    good = runner.invoke(app, ["iot", "limits", "set", "dev-0009", "temperature", "--unknown"])
    assert good.exit_code == 0, good.output
    result = runner.invoke(app, ["iot", "limits", "set", *args])
    assert result.exit_code != 0
    assert reason in " ".join(result.output.split())
    table = open_table(DEVICE_LIMITS, settings)
    assert table is not None and table.version() == 1  # created (0), then the good one
    assert read_limits(settings)["device_id"].to_pylist() == ["dev-0009"]


def test_set_list_and_clear_through_the_cli(
    make_settings: Callable[..., Settings],
    activate: Callable[[Settings], None],
) -> None:
    settings = make_settings()
    activate(settings)
    runner = CliRunner()
    for args in (
        ["dev-0001", "temperature", "--low", "10", "--high", "120"],
        ["dev-0001", "temperature", "--low", "5", "--high", "110"],
        ["dev-0001", "pressure", "--unknown"],
    ):
        assert runner.invoke(app, ["iot", "limits", "set", *args]).exit_code == 0
    rows = read_limits(settings).select(["device_id", "sensor_type", "low", "high"])
    assert rows.to_pylist() == [
        {"device_id": "dev-0001", "sensor_type": "pressure", "low": None, "high": None},
        {"device_id": "dev-0001", "sensor_type": "temperature", "low": 5.0, "high": 110.0},
    ]
    listed = runner.invoke(app, ["iot", "limits", "list", "--device", "dev-0001"])
    assert listed.exit_code == 0 and "2 override(s)" in listed.output
    cleared = runner.invoke(app, ["iot", "limits", "clear", "dev-0001", "temperature"])
    assert cleared.exit_code == 0 and "cleared 1" in cleared.output
    assert read_limits(settings)["sensor_type"].to_pylist() == ["pressure"]


finite_or_not = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(
    kind=st.sampled_from([*SENSOR_LIMITS, "humidity", ""]),
    low=finite_or_not,
    high=finite_or_not,
)
def test_checked_takes_exactly_the_limits_the_detector_can_apply(
    kind: str,
    low: float | None,
    high: float | None,
) -> None:
    """Accepted iff the type is known and the limits are both absent, or both finite,
    ordered and within what the sensor can report."""
    limit = DeviceLimit("dev-0001", kind, low, high)
    if kind in SENSOR_LIMITS and low is not None and high is not None:
        lowest, highest = SENSOR_LIMITS[kind].physical
        sound = math.isfinite(low) and math.isfinite(high) and lowest <= low <= high <= highest
    else:
        sound = kind in SENSOR_LIMITS and low is None and high is None
    try:
        checked(limit)
    except LimitError:
        assert not sound
    else:
        assert sound
