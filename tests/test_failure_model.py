"""The failure model: labels and features on hand-computed rows, then four generated days
of a fleet whose failing machines show precursors, landed bronze to silver to gold, on
which the model must find the failures ahead of time, beat the threshold baseline, score
the same after a round trip through its artifact, and see on one device's recent hours
exactly the features the batch computed (no training/serving skew)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.iot.models import failure_model
from assets.resources import platform_resources
from lakehouse.catalog import GOLD_SENSOR_HOURLY, IOT_ALERTS, SILVER_SENSOR_READINGS
from lakehouse.features.iot import (
    ALERT_FEATURES,
    FEATURES,
    HOURLY_COLUMNS,
    LOOKBACK_HOURS,
    device_hour_alert_features,
    device_hour_features,
)
from lakehouse.models.evaluation import evaluate_binary
from lakehouse.models.failure import (
    ALERT_FPR,
    HORIZON_HOURS,
    INPUTS,
    LABEL_COLUMNS,
    MODEL_NAME,
    event_recall,
    failure_labels,
    labelled_device_hours,
    load_failure_model,
    time_split,
    train_failure_model,
    training_data_versions,
)
from lakehouse.models.registry import champion
from lakehouse.models.trained import TrainedModel
from lakehouse.schemas import IOT_ALERT_HISTORY, SENSOR_HOURLY, TIMESTAMP
from lakehouse.settings import Settings
from lakehouse.transforms.alerts import build_alert_history_partition
from lakehouse.transforms.iot import build_sensor_hourly_partition
from lakehouse.transforms.silver import build_silver_partition
from lakehouse.transforms.tables import read_days
from streaming.generators import make_generator
from tests.support.iot_alerts import alerts_for
from tests.support.landing import land_in_bronze, land_messages

FIRST, LAST = date(2026, 11, 20), date(2026, 11, 23)
DAY = date(2026, 11, 23)


def at(hour: float, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)


# --- hand-computed rows ---------------------------------------------------------------------


def hourly(
    device: str, hour: float, mean: float, top: float, stddev: float, readings: int = 2
) -> dict[str, object]:
    return {
        "device_id": device,
        "sensor_id": f"{device}-temperature",
        "sensor_type": "temperature",
        "plant": "plant-pune",
        "hour": at(hour),
        "event_date": at(hour).date(),
        "readings": readings,
        "avg_value": mean,
        "min_value": mean - 1.0,
        "max_value": top,
        "stddev_value": stddev,
    }


def features_row(device: str, hour: float, **values: float | None) -> dict[str, object]:
    return {"device_id": device, "hour": at(hour), **dict.fromkeys(FEATURES), **values}


def test_device_hour_features_compare_each_hour_with_the_devices_previous_24_hours() -> None:
    rows = [
        hourly("a", -25, mean=1000.0, top=1000.0, stddev=50.0),  # outside every window below
        hourly("a", 0, mean=10.0, top=11.0, stddev=1.0),
        hourly("a", 1, mean=10.0, top=11.0, stddev=1.0),
        hourly("a", 2, mean=12.0, top=13.0, stddev=1.0),
        hourly("a", 3, mean=16.0, top=17.0, stddev=2.0),
        hourly("b", 3, mean=90.0, top=95.0, stddev=3.0),
    ]
    features = device_hour_features(pa.Table.from_pylist(rows, schema=SENSOR_HOURLY))
    by_key = {(r["device_id"], r["hour"]): r for r in features.to_pylist()}
    assert len(by_key) == 6
    # Hour 0: nothing in its 24 hours before (hour -25 is 25 hours back).
    assert by_key["a", at(0)] == features_row("a", 0, baseline_hours=0.0)
    # Hour 2: level median(10, 10) = 10, noise median(1, 1) = 1; no hour -1 for a trend.
    assert by_key["a", at(2)] == features_row(
        "a",
        2,
        temperature_deviation=2.0,
        temperature_peak=3.0,
        temperature_volatility=1.0,
        coverage=1.0,
        baseline_hours=2.0,
    )
    # Hour 3: level median(10, 10, 12) = 10, noise 1; three hours before, the mean was 10.
    assert by_key["a", at(3)] == features_row(
        "a",
        3,
        temperature_deviation=6.0,
        temperature_peak=7.0,
        temperature_volatility=2.0,
        temperature_trend_3h=6.0,
        coverage=1.0,
        baseline_hours=3.0,
    )
    # Device b is judged against its own past only (it has none), never against a's.
    assert by_key["b", at(3)] == features_row("b", 3, baseline_hours=0.0)


def test_alert_features_count_only_what_was_known_when_the_hour_ended() -> None:
    def alert(device: str, rule: str, opened: float, closed: float | None,
              severity: str = "warning") -> dict[str, object]:  # fmt: skip
        return {"device_id": device, "rule": rule, "severity": severity, "opened_at": at(opened),
                "closed_at": None if closed is None else at(closed)}  # fmt: skip

    alerts = pa.Table.from_pylist(
        [
            alert("a", "zscore", 0.5, 1.2),  # within hour 0, closed during hour 1
            alert("a", "device_health", 1.5, None, "critical"),  # opens in hour 1, stays open
            alert("a", "zscore", -30, -29),  # a day and more before: only in the 7-day count
            alert("a", "above_limit", 2.5, 3.0),  # after every hour scored below: not there
            alert("b", "zscore", -200, None),  # older than 7 days, still open
        ],
        schema=IOT_ALERT_HISTORY,
    )
    keys = pa.table({"device_id": ["a", "a", "b", "c"],
                     "hour": pa.array([at(0), at(1), at(1), at(1)], TIMESTAMP)})  # fmt: skip
    rows = device_hour_alert_features(keys, alerts)
    got = [
        {name: row[name] for name in ALERT_FEATURES if row[name]} for row in rows.to_pylist()
    ]
    assert got == [
        {"zscore_alerts_24h": 1.0, "zscore_alerts_7d": 2.0, "alerts_open": 1.0},
        {"zscore_alerts_24h": 1.0, "zscore_alerts_7d": 2.0, "device_health_alerts_24h": 1.0,
         "device_health_alerts_7d": 1.0, "critical_alerts_7d": 1.0, "alerts_open": 1.0},
        {"alerts_open": 1.0},
        {},
    ]  # fmt: skip


def test_failure_labels_look_the_horizon_ahead_of_each_hour_end() -> None:
    keys = pa.Table.from_pylist(
        [{"device_id": d, "hour": at(h)} for d in ("a", "b") for h in range(10)]
    )
    fails_at = at(7.5)
    readings = pa.Table.from_pylist(
        [
            {"device_id": "a", "event_time": at(4), "label_failure_at": fails_at},
            {"device_id": "a", "event_time": at(7), "label_failure_at": fails_at},
            {"device_id": "b", "event_time": at(9.99), "label_failure_at": None},
        ],
        schema=pa.schema(
            [("device_id", pa.string()), ("event_time", TIMESTAMP), ("label_failure_at", TIMESTAMP)]
        ),
    )
    labels = failure_labels(keys, readings, horizon_hours=6).to_pylist()
    got = [(r["device_id"], r["hour"].hour, r["label"], r["known"]) for r in labels]
    # a fails at 07:30: hours ending 02:00..07:00 have it within 6 h; during hour 7 it is too
    # late; hours 8 and 9 (and b's from 3 on) would need readings past 09:59 to be negative.
    assert got == [
        ("a", 0, False, True),
        *(("a", h, True, True) for h in range(1, 7)),
        *(("a", h, False, False) for h in (7, 8, 9)),
        *(("b", h, False, True) for h in range(3)),
        *(("b", h, False, False) for h in range(3, 10)),
    ]
    assert {r["failure_at"] for r in labels if r["label"]} == {fails_at}


def test_event_recall_counts_failures_with_an_alert_and_the_lead_of_the_earliest() -> None:
    # Failure 1 is warned of 3 and 1 hours ahead (not 5); failures 2 and 3 never.
    recall, lead = event_recall(
        failure_ids=np.array([1, 1, 1, 2, 2, 3]),
        lead_hours=np.array([5.0, 3.0, 1.0, 4.0, 2.0, 6.0]),
        alerted=np.array([False, True, True, False, False, False]),
    )
    assert (recall, lead) == (1 / 3, 3.0)


# --- a generated fleet ----------------------------------------------------------------------


def land_generated_fleet(
    settings: Settings, machines: int, failure_rate: float, readings_per_hour: int
) -> None:
    """The IoT generator's traffic over FIRST..LAST landed in bronze, then silver and
    gold.sensor_hourly day by day: one fleet over all the days, so each machine keeps its
    baseline from day to day and fails at most once."""
    days = (LAST - FIRST).days + 1
    generator = make_generator(
        "iot",
        seed=2,
        start=at(0, FIRST),
        span=timedelta(days=days),
        n_machines=machines,
        failure_rate=failure_rate,
    )
    land_in_bronze(settings, generator, machines * 4 * 24 * days * readings_per_hour)
    for offset in range(days):
        day = FIRST + timedelta(days=offset)
        build_silver_partition(settings, "sensor_readings", day)
        build_sensor_hourly_partition(settings, day)


def lake(root: Path) -> Settings:
    return Settings(lakehouse_root=str(root / "lake"), lakehouse_home=root / "home")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """80 machines, 6 readings per sensor and hour, 24 failing over the four days: about 14
    failures fall in the training hours and 8 in the test hours (seed 2)."""
    settings = lake(tmp_path_factory.mktemp("failure-fleet"))
    land_generated_fleet(settings, machines=80, failure_rate=0.3, readings_per_hour=6)
    return settings


@pytest.fixture(scope="module")
def trained(fleet: Settings) -> TrainedModel:
    return train_failure_model(fleet, FIRST, LAST)


def test_the_model_warns_of_the_injected_failures_and_beats_the_threshold_baseline(
    trained: TrainedModel,
) -> None:
    m = trained.metrics
    assert m["train_failures"] >= 8 and m["test_failures"] >= 5
    # (Nearly) every failure gets an alert within the horizon before it, hours ahead.
    assert m["model_event_recall"] >= 0.8
    assert m["model_median_lead_hours"] >= 1.0
    # Ranking: far above chance, at least as good as the threshold baseline. The first two
    # of the six positive hours end before the 4-hour precursor starts, so about 0.6 is
    # the most PR-AUC there is to get.
    assert m["pr_auc"] == m["model_pr_auc"] >= 10 * m["test_positive_rate"]
    assert m["model_pr_auc"] >= m["baseline_pr_auc"]
    # The threshold chosen on validation holds its false-alarm budget on the test hours.
    assert m["model_false_positive_rate"] <= 3 * ALERT_FPR
    assert trained.promotion_metric == "pr_auc"
    assert trained.params["horizon_hours"] == HORIZON_HOURS
    assert trained.params["features"] == list(FEATURES)
    assert all(png.startswith(b"\x89PNG") for png in trained.charts.values())
    assert len(trained.charts) == 3
    table = trained.tables["model vs threshold baseline (test hours)"]
    comparison = {row["metric"]: row for row in table}
    assert comparison["pr_auc"]["model"] == m["model_pr_auc"]


def test_the_artifact_round_trips_and_scores_the_test_hours_as_evaluated(
    fleet: Settings, trained: TrainedModel
) -> None:
    model = load_failure_model(trained.artifact)
    assert model.to_bytes() == trained.artifact
    assert model.threshold == trained.metrics["model_threshold"]
    assert model.features == FEATURES
    rows = labelled_device_hours(fleet, FIRST, LAST)
    split = time_split(pc.cast(rows["hour"], pa.int64()).to_numpy(), FIRST, LAST, HORIZON_HOURS)
    scores = model.score(rows.filter(pa.array(split.test)))
    labels = rows["label"].to_numpy(zero_copy_only=False)[split.test]
    evaluated = evaluate_binary(scores, labels, model.threshold, ALERT_FPR).metrics("model_")
    assert evaluated == {name: trained.metrics[name] for name in evaluated}
    assert set(training_data_versions(fleet)) == {table.key for table in INPUTS}


def test_one_devices_recent_hours_give_the_batch_features_and_an_alert_before_it_fails(
    fleet: Settings, trained: TrainedModel
) -> None:
    gold = read_days(fleet, GOLD_SENSOR_HOURLY, HOURLY_COLUMNS, FIRST, LAST)
    batch = device_hour_features(gold)
    truth = read_days(fleet, SILVER_SENSOR_READINGS, LABEL_COLUMNS, FIRST, LAST)
    failure = truth.filter(pc.is_valid(truth["label_failure_at"])).sort_by(
        [("label_failure_at", "descending")]
    )
    device, fails_at = failure["device_id"][0].as_py(), failure["label_failure_at"][0].as_py()
    last_hour = fails_at.replace(minute=0, second=0, microsecond=0)
    first_hour = last_hour - timedelta(hours=HORIZON_HOURS)

    # What the alert service holds: the device's hours back to LOOKBACK_HOURS before the
    # first hour it scores, and nothing of any other device.
    recent = gold.filter(
        (pc.field("device_id") == device)
        & (pc.field("hour") >= first_hour - timedelta(hours=LOOKBACK_HOURS))
        & (pc.field("hour") <= last_hour)
    )
    window = (pc.field("device_id") == device) & (pc.field("hour") >= first_hour)
    online = device_hour_features(recent).filter(window)
    expected = batch.filter(window & (pc.field("hour") <= last_hour))
    assert online.num_rows == HORIZON_HOURS + 1
    assert online.equals(expected)

    # The service warns of it: an hour that ended before the failure alerts.
    alerts = load_failure_model(trained.artifact).alerts(online)
    assert any(hour < last_hour for hour in alerts["hour"].to_pylist())


def test_the_model_trains_with_alert_features_and_its_artifact_carries_them(
    fleet: Settings,
) -> None:
    """The comparison's path (docs/models.md): the fleet's alerts (one per labelled spike
    from the stand-in) through bronze, silver and gold.iot_alert_history, then a model
    with the alert features whose artifact and params carry them."""
    readings = read_days(fleet, SILVER_SENSOR_READINGS, None, FIRST, LAST).to_pylist()
    land_messages(fleet, IOT_ALERTS.name, alerts_for(readings))
    for offset in range((LAST - FIRST).days + 2):
        day = FIRST + timedelta(days=offset)
        build_silver_partition(fleet, IOT_ALERTS.name, day)
        build_alert_history_partition(fleet, day)
    features = FEATURES + ALERT_FEATURES
    rows = labelled_device_hours(fleet, FIRST, LAST, features=features)
    assert rows.num_rows == labelled_device_hours(fleet, FIRST, LAST).num_rows
    assert pc.sum(rows["zscore_alerts_24h"]).as_py() > 0
    trained = train_failure_model(fleet, FIRST, LAST, features=features)
    model = load_failure_model(trained.artifact)
    assert model.features == features and trained.params["features"] == list(features)
    assert model.score(rows).shape == (rows.num_rows,)


def test_training_without_a_failure_to_learn_from_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = lake(tmp_path_factory.mktemp("failure-free-fleet"))
    land_generated_fleet(settings, machines=10, failure_rate=0.0, readings_per_hour=2)
    with pytest.raises(ValueError, match="no failure within the horizon in the train and test"):
        train_failure_model(settings, FIRST, LAST)


def test_the_asset_registers_a_model_and_keeps_the_champion_when_a_retrain_only_ties(
    fleet: Settings,
) -> None:
    resources = platform_resources(fleet.lakehouse_root)
    runs = [
        dg.materialize([failure_model], partition_key=LAST.isoformat(), resources=resources)
        for _ in range(2)
    ]
    assert all(run.success for run in runs)
    first, second = (run.asset_materializations_for_node("models__iot_failure")[0].metadata
                     for run in runs)
    assert first["model_version"].value == 1 and first["promoted"].value is True
    assert first["model_pr_auc"].value > first["baseline_pr_auc"].value
    assert "base64," in first["chart: precision-recall"].value
    assert "table: model vs threshold baseline (test hours)" in first
    assert first["training_data"].value["gold.sensor_hourly"] >= 0
    # The retrain is the same model on the same rows: a tie is not a win.
    assert second["model_version"].value == 2 and second["promoted"].value is False
    assert "on the same held-out data" in second["decision"].value
    assert champion(fleet, MODEL_NAME).version == 1
