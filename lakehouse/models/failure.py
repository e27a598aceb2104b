"""Failure prediction for IoT devices: will this machine fail within the next hours?

Every device-hour of gold.sensor_hourly becomes one row: its features
(`lakehouse.features.iot`, the same code the alert service runs) and its label, whether
the device fails within `HORIZON_HOURS` after the end of the hour (when the hour's
aggregates are complete and an alert could go out). Failure times are the generator's
ground truth: the `label_failure_at` of the precursor readings in silver.
gold.device_health_daily is not an input: a day's health summarises hours after the one
being scored (a leak), and the day before's adds nothing the 24-hour baseline lacks.

The split is by time, because the model will always score hours later than any it learnt
from: the last `TEST_SHARE` of the hours is the test set, the last `VALIDATION_SHARE` of
the rest chooses the alert thresholds (scores the model never fit on), the remainder
trains. Between the parts, the `HORIZON_HOURS` before each boundary are left out, so no
training label peeks at a failure in the period it is evaluated on.

The model is judged against what a plant would run without one: a threshold on the
largest deviation of any sensor type from the device's own baseline. Both alert at the
threshold that keeps validation false alarms within `ALERT_FPR` of device-hours; on the
test hours we report PR-AUC, recall at that threshold, and per failure (event-level)
whether any alert came within the horizon before it and how early.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS
from lakehouse.delta import current_versions
from lakehouse.features.iot import (
    ALERT_FEATURES,
    ALERT_LOOKBACK_HOURS,
    FEATURES,
    HOURLY_COLUMNS,
    LOOKBACK_HOURS,
    SENSOR_TYPES,
    device_hour_alert_features,
    device_hour_features,
    feature_matrix,
)
from lakehouse.models import evaluation, plots
from lakehouse.models.registry import ModelVersion, load_artifact
from lakehouse.models.trained import TrainedModel, zip_artifact
from lakehouse.schemas import TIMESTAMP
from lakehouse.settings import Settings
from lakehouse.transforms.alerts import alerts_open_during
from lakehouse.transforms.tables import read_days, run_sql

MODEL_NAME = "iot_failure"
HORIZON_HOURS = 6
ALERT_FPR = 0.01
"""False alarms allowed per healthy device-hour at the alert threshold (1%)."""
TEST_SHARE = 0.3
"""The latest share of the hours, held out to test on."""
VALIDATION_SHARE = 0.2
"""The latest share of the hours before the test, where the alert thresholds are chosen."""
HOUR_US = 3_600_000_000

HYPERPARAMETERS: dict[str, Any] = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "min_child_weight": 2.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "eval_metric": "aucpr",
    "seed": 7,
    "nthread": 1,
}
BOOSTING_ROUNDS = 150

LABEL_COLUMNS = ["device_id", "event_time", "label_failure_at"]
"""The silver.sensor_readings columns the ground truth comes from."""
INPUTS = (GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS)

_LABELS_SQL = """
WITH failures AS (
    SELECT DISTINCT device_id, label_failure_at AS failure_at
    FROM readings WHERE label_failure_at IS NOT NULL
),
per_hour AS (
    SELECT k.device_id, k.hour,
           min(f.failure_at) FILTER (WHERE f.failure_at >= k.hour + INTERVAL 1 HOUR)
               AS failure_at,
           coalesce(bool_or(f.failure_at < k.hour + INTERVAL 1 HOUR), false) AS failed_in_hour
    FROM keys AS k
    LEFT JOIN failures AS f
      ON f.device_id = k.device_id
     AND f.failure_at >= k.hour
     AND f.failure_at < k.hour + to_hours(1 + $horizon)
    GROUP BY k.device_id, k.hour
)
SELECT device_id, hour, failure_at, failure_at IS NOT NULL AS label,
       NOT failed_in_hour
       AND (failure_at IS NOT NULL
            OR hour + to_hours(1 + $horizon) <= (SELECT max(event_time) FROM readings)) AS known
FROM per_hour
ORDER BY device_id, hour
"""

LABEL_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("hour", TIMESTAMP),
        ("failure_at", TIMESTAMP),
        ("label", pa.bool_()),
        ("known", pa.bool_()),
    ]
)


def failure_labels(
    keys: pa.Table, readings: pa.Table, horizon_hours: int = HORIZON_HOURS
) -> pa.Table:
    """Per (device_id, hour) of `keys`, sorted by them: whether the device fails within
    `horizon_hours` after the end of the hour (`label`, with the first such `failure_at`),
    and whether that label is `known`.

    `readings` are silver readings (`LABEL_COLUMNS`) of the hours and the horizon after
    them. A label is unknown for an hour in which the device failed (too late to warn) and
    for a negative whose horizon runs past the last reading (a failure there may not be
    known yet).
    """
    return run_sql(
        _LABELS_SQL,
        LABEL_SCHEMA,
        {"horizon": horizon_hours},
        keys=keys.select(["device_id", "hour"]),
        readings=readings.select(LABEL_COLUMNS),
    )


def training_data_versions(settings: Settings) -> dict[str, int]:
    """The Delta version of each input table as it stands, for the registry."""
    return current_versions(INPUTS, settings)


@dataclass(frozen=True)
class Split:
    """Row masks of the three time periods, and where they start."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_start: datetime
    test_start: datetime


def time_split(hours: np.ndarray, first: date, last: date, horizon_hours: int) -> Split:
    """Split rows by their hour (int64 µs): train, validation, test in time order, with the
    `horizon_hours` before each later part's start left out of the earlier part."""
    start = _midnight(first)
    total = 24 * ((last - first).days + 1)
    test_start = start + timedelta(hours=total - math.ceil(TEST_SHARE * total))
    fit_hours = (test_start - start) // timedelta(hours=1)
    validation_start = test_start - timedelta(hours=math.ceil(VALIDATION_SHARE * fit_hours))
    validation_us, test_us = _us(validation_start), _us(test_start)
    label_end = hours + (1 + horizon_hours) * HOUR_US
    return Split(
        train=label_end <= validation_us,
        validation=(hours >= validation_us) & (label_end <= test_us),
        test=hours >= test_us,
        validation_start=validation_start,
        test_start=test_start,
    )


def baseline_score(features: pa.Table) -> np.ndarray:
    """The threshold baseline's score: the largest |deviation| of any sensor type's hourly
    mean from the device's baseline, in noise units (0 without a baseline)."""
    deviations = feature_matrix(features, tuple(f"{t}_deviation" for t in SENSOR_TYPES))
    return np.nan_to_num(np.abs(deviations), nan=0.0).max(axis=1)


def labelled_device_hours(
    settings: Settings,
    first: date,
    last: date,
    horizon_hours: int = HORIZON_HOURS,
    features: tuple[str, ...] = FEATURES,
) -> pa.Table:
    """Features and known labels of every device-hour of `first`..`last`, sorted by device
    and hour; positive rows also say which failure they precede (`failure_id`) and how many
    hours before it their hour ends (`lead_hours`).

    Reads gold.sensor_hourly from the day before `first` (so the first hours have a
    baseline) and the ground truth of silver readings up to the horizon after `last`;
    when `features` include any of `ALERT_FEATURES`, also gold.iot_alert_history from
    `ALERT_LOOKBACK_HOURS` before `first`.
    """
    hourly = read_days(
        settings, GOLD_SENSOR_HOURLY, HOURLY_COLUMNS, first - timedelta(days=1), last
    )
    start, end = _midnight(first), _midnight(last + timedelta(days=1))
    rows = device_hour_features(hourly).filter(
        (pc.field("hour") >= start) & (pc.field("hour") < end)
    )
    if set(features) & set(ALERT_FEATURES):
        alerts = alerts_open_during(settings, start - timedelta(hours=ALERT_LOOKBACK_HOURS), end)
        rows = run_sql(
            "SELECT * FROM hours JOIN alerts USING (device_id, hour) ORDER BY device_id, hour",
            deterministic=True,
            hours=rows,
            alerts=device_hour_alert_features(rows, alerts),
        )
    readings = read_days(
        settings,
        SILVER_SENSOR_READINGS,
        LABEL_COLUMNS,
        first,
        last + timedelta(days=math.ceil((1 + horizon_hours) / 24)),
    )
    return run_sql(
        _LABELLED_SQL,
        deterministic=True,
        features=rows,
        labels=failure_labels(rows, readings, horizon_hours),
    )


_LABELLED_SQL = """
SELECT f.*, l.label,
       CASE WHEN l.label THEN dense_rank() OVER (ORDER BY f.device_id, l.failure_at) END
           AS failure_id,
       (epoch(l.failure_at) - epoch(f.hour)) / 3600 - 1 AS lead_hours
FROM features AS f JOIN labels AS l USING (device_id, hour)
WHERE l.known
ORDER BY f.device_id, f.hour
"""


def train_failure_model(
    settings: Settings,
    first: date,
    last: date,
    *,
    horizon_hours: int = HORIZON_HOURS,
    alert_fpr: float = ALERT_FPR,
    features: tuple[str, ...] = FEATURES,
) -> TrainedModel:
    """Train the failure model on the device-hours of `first`..`last` and evaluate it
    against the threshold baseline on the test hours (see the module docstring).

    `features` are the model's inputs: the device-hour features by default; the
    comparison with the alert history adds `ALERT_FEATURES` (docs/models.md).

    Raises ValueError when the training or the test period has no failure, or the
    validation period no hours (too few days).
    """
    rows = labelled_device_hours(settings, first, last, horizon_hours, features)
    labels = rows["label"].to_numpy(zero_copy_only=False)
    split = time_split(pc.cast(rows["hour"], pa.int64()).to_numpy(), first, last, horizon_hours)
    _check_split(labels, split)
    matrix = feature_matrix(rows, features)
    booster, seconds = _fit(matrix[split.train], labels[split.train], features)

    scores = {"model": booster.inplace_predict(matrix), "baseline": baseline_score(rows)}
    thresholds = {
        name: evaluation.threshold_for_fpr(
            score[split.validation], labels[split.validation], alert_fpr
        )
        for name, score in scores.items()
    }
    metrics = _split_metrics(labels, _column(rows, "failure_id"), split)
    for name, score in scores.items():
        metrics |= _evaluate(name, score, rows, split.test, thresholds[name], alert_fpr)
    metrics["pr_auc"] = metrics["model_pr_auc"]

    importance = _gain_importance(booster, features)
    test = {name: (score[split.test], labels[split.test]) for name, score in scores.items()}
    return TrainedModel(
        name=MODEL_NAME,
        artifact=FailureModel(booster, thresholds["model"], features, horizon_hours).to_bytes(),
        params=_params(first, last, split, horizon_hours, alert_fpr, features),
        metrics=metrics,
        promotion_metric="pr_auc",
        seconds=seconds,
        charts=_charts(test, importance),
        tables={
            "model vs threshold baseline (test hours)": _comparison(metrics),
            "feature importance (gain)": [
                {"feature": name, "gain": gain}
                for name, gain in sorted(importance.items(), key=lambda item: -item[1])
            ],
        },
    )


def _fit(
    matrix: np.ndarray, labels: np.ndarray, features: tuple[str, ...]
) -> tuple[Any, float]:
    """The XGBoost booster (deterministic: fixed seed and thread count) and the seconds
    the fit took, the import of xgboost excluded."""
    import xgboost

    started = time.perf_counter()
    booster = xgboost.train(
        HYPERPARAMETERS,
        xgboost.DMatrix(matrix, labels, feature_names=list(features)),
        num_boost_round=BOOSTING_ROUNDS,
    )
    return booster, time.perf_counter() - started


def _check_split(labels: np.ndarray, split: Split) -> None:
    """Refuse to train without a failure to learn from and one to be tested on, or
    without validation hours to choose the thresholds on."""
    missing = [name for name in ("train", "test") if not labels[getattr(split, name)].any()]
    if missing:
        raise ValueError(
            f"no failure within the horizon in the {' and '.join(missing)} period "
            f"(validation starts {split.validation_start:%Y-%m-%d %H:%M}, test "
            f"{split.test_start:%Y-%m-%d %H:%M}): train on more days or more devices"
        )
    if not split.validation.any():
        raise ValueError(
            "no validation hours to choose the alert thresholds on: train on more days"
        )


def _split_metrics(labels: np.ndarray, failure_ids: np.ndarray, split: Split) -> dict[str, float]:
    """Rows, positive rate and failures of each period."""
    metrics: dict[str, float] = {}
    for name in ("train", "validation", "test"):
        mask = getattr(split, name)
        metrics[f"{name}_rows"] = float(mask.sum())
        metrics[f"{name}_positive_rate"] = float(labels[mask].mean()) if mask.any() else 0.0
        metrics[f"{name}_failures"] = float(np.unique(failure_ids[mask & labels]).size)
    return metrics


def _evaluate(
    name: str,
    score: np.ndarray,
    rows: pa.Table,
    test: np.ndarray,
    threshold: float,
    alert_fpr: float,
) -> dict[str, float]:
    """`name`_-prefixed test metrics of one scorer: per device-hour and per failure."""
    labels = rows["label"].to_numpy(zero_copy_only=False)
    result = evaluation.evaluate_binary(score[test], labels[test], threshold, alert_fpr)
    positive = test & labels
    recall, lead = event_recall(
        _column(rows, "failure_id")[positive].astype(np.int64),
        _column(rows, "lead_hours")[positive],
        score[positive] > threshold,
    )
    return result.metrics(f"{name}_") | {
        f"{name}_event_recall": recall,
        f"{name}_median_lead_hours": lead,
    }


def event_recall(
    failure_ids: np.ndarray, lead_hours: np.ndarray, alerted: np.ndarray
) -> tuple[float, float]:
    """Per failure, from its positive rows (which failure each precedes, how many hours
    before it the row's hour ends, whether it alerted): the share of failures with at
    least one alert, and the median lead of the earliest alert (0 when none alerted)."""
    failures, which = np.unique(failure_ids, return_inverse=True)
    earliest = np.full(failures.size, -np.inf)
    np.maximum.at(earliest, which[alerted], lead_hours[alerted])
    caught = np.isfinite(earliest)
    recall = float(caught.mean()) if failures.size else 0.0
    return recall, float(np.median(earliest[caught])) if caught.any() else 0.0


def _column(rows: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, NULL as NaN."""
    return rows[name].to_numpy(zero_copy_only=False).astype(np.float64)


def _gain_importance(booster: Any, features: tuple[str, ...]) -> dict[str, float]:
    gains = booster.get_score(importance_type="gain")
    return {name: float(gains.get(name, 0.0)) for name in features}


def _charts(
    test: dict[str, tuple[np.ndarray, np.ndarray]], importance: dict[str, float]
) -> dict[str, bytes]:
    """PR curves and lift of model and baseline on the test hours, and the gain per feature."""
    return {
        "precision-recall": plots.pr_curves(test),
        "lift": plots.lift(
            {name: evaluation.lift_table(*pair) for name, pair in test.items()}
        ),
        "feature importance": plots.importance(importance, "Feature importance (gain)"),
    }


def _comparison(metrics: dict[str, float]) -> list[dict[str, Any]]:
    names = (
        "pr_auc",
        "roc_auc",
        "recall",
        "precision",
        "false_positive_rate",
        "event_recall",
        "median_lead_hours",
        "threshold",
    )
    return [
        {"metric": name, "model": metrics[f"model_{name}"], "baseline": metrics[f"baseline_{name}"]}
        for name in names
    ]


def _params(
    first: date,
    last: date,
    split: Split,
    horizon_hours: int,
    alert_fpr: float,
    features: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "horizon_hours": horizon_hours,
        "alert_fpr": alert_fpr,
        "split": {
            "test_share": TEST_SHARE,
            "validation_share": VALIDATION_SHARE,
            "validation_start": split.validation_start.isoformat(),
            "test_start": split.test_start.isoformat(),
            "gap_hours": horizon_hours,
        },
        "hyperparameters": {**HYPERPARAMETERS, "num_boost_round": BOOSTING_ROUNDS},
        "features": list(features),
        "lookback_hours": LOOKBACK_HOURS,
        "baseline": "max |deviation| of any sensor type from the device's 24 h baseline",
    }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --- the artifact and its loader ---------------------------------------------------------


@dataclass(frozen=True)
class FailureModel:
    """A trained failure model as the alert service uses it: scores device-hour feature
    rows (`lakehouse.features.iot`) and alerts above the validated threshold."""

    booster: Any  # xgboost.Booster: xgboost is imported only where a model is used
    threshold: float
    features: tuple[str, ...]
    horizon_hours: int

    def score(self, features: pa.Table) -> np.ndarray:
        """The probability of a failure within the horizon, per row of `features`."""
        if features.num_rows == 0:
            return np.zeros(0)
        return self.booster.inplace_predict(feature_matrix(features, self.features))

    def alerts(self, features: pa.Table) -> pa.Table:
        """The rows (device_id, hour, score) whose score is above the alert threshold."""
        score = self.score(features)
        keys = features.select(["device_id", "hour"]).append_column("score", pa.array(score))
        return keys.filter(pa.array(score > self.threshold))

    def to_bytes(self) -> bytes:
        """A zip of the booster (XGBoost JSON) and `meta.json`, byte-identical for an
        identical model, so the registry's content address dedupes retrains."""
        meta = {
            "threshold": self.threshold,
            "features": list(self.features),
            "horizon_hours": self.horizon_hours,
        }
        return zip_artifact({
            "model.json": bytes(self.booster.save_raw("json")),
            "meta.json": json.dumps(meta, sort_keys=True).encode(),
        })


def load_failure_model(artifact: bytes, nthread: int = 1) -> FailureModel:
    """The model stored in an artifact of `train_failure_model`."""
    import xgboost

    with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
        meta = json.loads(archive.read("meta.json"))
        booster = xgboost.Booster(params={"nthread": nthread})
        booster.load_model(bytearray(archive.read("model.json")))
    return FailureModel(
        booster, float(meta["threshold"]), tuple(meta["features"]), int(meta["horizon_hours"])
    )


def rescore(settings: Settings, champion: ModelVersion, first: date, last: date,
            horizon_hours: int = HORIZON_HOURS) -> float | None:
    """A registered model's PR-AUC on the test hours a model trained on `first`..`last`
    is judged on, so a challenger and the champion are compared on the same rows; None
    when the champion's own test hours began later (it learnt from some of these)."""
    features = tuple(champion.params["features"])  # the champion's inputs, alerts or not
    rows = labelled_device_hours(settings, first, last, horizon_hours, features)
    split = time_split(pc.cast(rows["hour"], pa.int64()).to_numpy(), first, last, horizon_hours)
    if datetime.fromisoformat(champion.params["split"]["test_start"]) > split.test_start:
        return None  # the champion trained on some of these test hours
    model = load_failure_model(load_artifact(settings, champion))
    labels = rows["label"].to_numpy(zero_copy_only=False)[split.test]
    return evaluation.pr_auc(model.score(rows)[split.test], labels)
