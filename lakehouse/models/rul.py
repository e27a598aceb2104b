"""Remaining useful life (RUL): how many cycles an engine has left, judged on NASA C-MAPSS.

The failure model (`lakehouse.models.failure`) answers "will this machine fail within the
next hours?" on generated telemetry. This regression mode answers "how long has it got?"
on real run-to-failure data, the turbofan engines of C-MAPSS subset FD001 (one operating
condition, one fault mode), where published results say what good looks like.

Training engines run until they fail: a cycle's label is the cycles left until the
unit's last one, capped at `RUL_CAP` (125) as the literature does, since early in life
wear is not yet visible and "a long time" is all that can be said. Test engines stop some
time before failure; each is judged once, at its last observed cycle, against NASA's
true RUL, with the RMSE and NASA's asymmetric score (a late prediction costs more than an
early one), on the true RUL as given and capped at `RUL_CAP`.

Features of a (unit, cycle) come from that cycle and earlier ones only (the value of each
informative sensor and its trailing mean and least-squares slope over `WINDOW_CYCLES`),
so the model could run on a live engine. Sensors that do not vary on the training data
are dropped. XGBoost's hyper-parameters and rounds are chosen on a validation split of
the training engines (by unit, never by row: an engine's cycles are strongly related),
then the model is refit on every training engine; the test engines are scored once.
A linear regression on the same features and a constant (the mean capped training RUL)
are judged the same way, so the model is compared with something simple.

Loading is separate from training and evaluation on per-cycle tables (`evaluate_rul`):
the platform reads FD001 from the lake (`load_engine_cycles`: silver `engine_cycles`, as
`lakehouse import cmapss` sends it and the medallion lands it), the bench from the files
(`load_fd001`, no services needed); both give the same `Fd001`. `trained_model` turns a
report into what the registry stores (model `cmapss_rul`, promoted on the test RMSE, lower
being better).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import ENGINE_CYCLES, SILVER_ENGINE_CYCLES
from lakehouse.delta import open_table
from lakehouse.models import plots
from lakehouse.models.trained import TrainedModel, zip_artifact
from lakehouse.schemas import ENGINE_CYCLE_SENSORS, ENGINE_CYCLE_SETTINGS, VOCABULARIES
from lakehouse.settings import Settings
from lakehouse.transforms.tables import run_sql

MODEL_NAME = "cmapss_rul"
PROMOTION_METRIC = "model_rmse"
"""The registry promotes on the test RMSE as given, the figure the literature reports:
lower is better, so it registers with `higher_is_better=False`."""
HIGHER_IS_BETTER = False

RUL_CAP = 125
"""Training labels (and the capped test metrics) stop at 125 cycles, as the literature's."""
WINDOW_CYCLES = 20
"""Trailing window of the rolling mean and slope features, in cycles (current included)."""
VALIDATION_SHARE = 0.2
"""Share of the training engines held out to choose the hyper-parameters."""
SEED = 7

CMAPSS = Path("cmapss")
FD001_FILES = ("train_FD001.txt", "test_FD001.txt", "RUL_FD001.txt")
TRAIN, TEST = VOCABULARIES[ENGINE_CYCLES.name]["split"]
"""The `split` of a training engine (run to failure) and of a test engine (stopped before)."""
SPLIT_FILES = {TRAIN: FD001_FILES[0], TEST: FD001_FILES[1]}
FD001_DEVICES = "cmapss-fd001"
"""The prefix of FD001's engines' device ids (`device_id`), which other data sets' lack."""
SETTING_COLUMNS = ENGINE_CYCLE_SETTINGS
SENSOR_COLUMNS = ENGINE_CYCLE_SENSORS
COLUMNS = ("unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS)
CYCLE_SCHEMA = pa.schema(
    [("unit", pa.int32()), ("cycle", pa.int32())]
    + [(name, pa.float64()) for name in (*SETTING_COLUMNS, *SENSOR_COLUMNS)]
)
"""The per-cycle table: one row per engine cycle, as the files and the lake hold it."""

BASE_HYPERPARAMETERS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "eval_metric": "rmse",
    "seed": SEED,
    "nthread": 1,
}
GRID: tuple[dict[str, Any], ...] = tuple(
    {"max_depth": depth, "min_child_weight": weight}
    for depth in (3, 5, 7)
    for weight in (1.0, 10.0)
)
"""The hyper-parameters tried on the validation engines, on top of `BASE_HYPERPARAMETERS`."""
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 50

PUBLISHED_RMSE: tuple[tuple[str, float], ...] = (
    ("MLP (Babu et al. 2016)", 37.56),
    ("CNN (Babu et al. 2016)", 18.45),
    ("LSTM (Zheng et al. 2017)", 16.14),
    ("deep LSTM (Wu et al. 2018)", 13.65),
    ("AGCNN (Liu et al. 2020)", 12.42),
    ("random forest baseline (about)", 16.65),
)
"""FD001 test RMSE as published (../shared/data/real/PROVENANCE.md), lower is better."""


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fd001:
    """C-MAPSS FD001: run-to-failure training cycles, truncated test cycles, and the true
    RUL of each test engine at its last cycle (in unit order: unit 1 first)."""

    train: pa.Table
    test: pa.Table
    test_rul: np.ndarray


def load_fd001(settings: Settings) -> Fd001:
    """FD001 from `REAL_DATA_DIR`/cmapss, where the platform keeps the public data sets."""
    directory = settings.real_data_dir / CMAPSS
    missing = [name for name in FD001_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"C-MAPSS FD001 is not complete at {directory} (missing {', '.join(missing)}); "
            "set REAL_DATA_DIR to the folder holding cmapss/"
        )
    return read_fd001(directory)


def device_id(split: str, unit: int) -> str:
    """An FD001 engine's device id: `cmapss-fd001-train-001` (C-MAPSS numbers the
    engines of each file from 1, so the split keeps train and test engine 1 apart)."""
    return f"{FD001_DEVICES}-{split}-{unit:03d}"


def read_fd001(directory: Path) -> Fd001:
    """The three FD001 files of `directory`, checked to agree: one true RUL per test
    engine, the test engines numbered 1..N."""
    train, test = (read_cycles(directory / name) for name in FD001_FILES[:2])
    rul_path = directory / FD001_FILES[2]
    test_rul = read_true_rul(rul_path)
    units = np.unique(test["unit"].to_numpy())
    if not np.array_equal(units, np.arange(1, test_rul.size + 1)):
        raise ValueError(
            f"{rul_path} has {test_rul.size} true RULs but the test engines are "
            f"{units.size} units numbered {units.min()}..{units.max()}: they must be 1..N"
        )
    return Fd001(train, test, test_rul)


def read_true_rul(path: Path) -> np.ndarray:
    """`RUL_FD001.txt`: each test engine's true remaining cycles after its last one, in
    unit order; a line that is not one whole number >= 0 raises ValueError naming it."""
    values = _read_numbers(path, 1)[:, 0]
    _check_integral(values, path, "RUL", minimum=0)
    return values.astype(np.int64)


def read_cycles(path: Path) -> pa.Table:
    """One C-MAPSS cycles file (space-separated unit, cycle, 3 settings, 21 sensors) as
    `CYCLE_SCHEMA`; a malformed line raises ValueError naming the file and line."""
    values = _read_numbers(path, len(COLUMNS))
    _check_integral(values[:, 0], path, "unit", minimum=1)
    _check_integral(values[:, 1], path, "cycle", minimum=1)
    arrays = [pa.array(values[:, index]) for index in range(len(COLUMNS))]
    return pa.Table.from_arrays(arrays, names=list(COLUMNS)).cast(CYCLE_SCHEMA)


def _read_numbers(path: Path, width: int) -> np.ndarray:
    """The file's non-blank lines as a float matrix of `width` columns."""
    numbered = [
        (number, line.split())
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.strip()
    ]
    for number, fields in numbered:
        if len(fields) != width:
            raise ValueError(f"{path}, line {number}: {len(fields)} fields, expected {width}")
    try:
        values = np.array([fields for _, fields in numbered], dtype=np.float64)
    except ValueError:
        number, fields = next(item for item in numbered if not _numeric(item[1]))
        raise ValueError(f"{path}, line {number}: not all numbers: {' '.join(fields)}") from None
    if values.size == 0:
        raise ValueError(f"{path} has no data lines")
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}, line {numbered[int(np.argmax(bad))][0]}: not a finite number")
    return values


def _numeric(fields: Sequence[str]) -> bool:
    try:
        np.array(fields, dtype=np.float64)
    except ValueError:
        return False
    return True


def _check_integral(values: np.ndarray, path: Path, name: str, minimum: int) -> None:
    """Units, cycles and RULs are whole numbers of at least `minimum`."""
    bad = (values != np.round(values)) | (values < minimum)
    if bad.any():
        raise ValueError(
            f"{path}: data line {int(np.argmax(bad)) + 1} has {name} {values[bad][0]:g}, "
            f"expected a whole number >= {minimum}"
        )


# --- from the lake --------------------------------------------------------------------------


class NoEngineCyclesError(LookupError):
    """Silver holds no FD001 engine cycles to train or judge on."""


@dataclass(frozen=True)
class LakeFd001:
    """FD001 as read from silver `engine_cycles`, with the Delta version it was read at."""

    data: Fd001
    version: int


def load_engine_cycles(settings: Settings) -> LakeFd001:
    """FD001 from silver `engine_cycles` at its current version (rows and version from one
    snapshot), as `from_engine_cycles` reads it; NoEngineCyclesError, saying how to fill
    it, when the table is absent or holds no FD001 engine of a split."""
    table = open_table(SILVER_ENGINE_CYCLES, settings)
    how = (
        f"{SILVER_ENGINE_CYCLES.key} holds no C-MAPSS FD001 {{what}}: run `lakehouse import "
        "cmapss`, land it (`lakehouse ingest --topics engine_cycles --until-idle`) and "
        f"materialize {'/'.join(SILVER_ENGINE_CYCLES.path)} for its days (docs/events.md)"
    )
    if table is None:
        raise NoEngineCyclesError(how.format(what="cycles (the table does not exist)"))
    columns = ["device_id", "split", *COLUMNS, "label_failure_cycle"]
    rows = table.to_pyarrow_table(columns=columns)
    for split in (TRAIN, TEST):
        if not pc.any(pc.equal(_fd001(rows)["split"], split)).as_py():
            raise NoEngineCyclesError(how.format(what=f"{split} engines"))
    return LakeFd001(from_engine_cycles(rows), table.version())


def _fd001(rows: pa.Table) -> pa.Table:
    """The rows of FD001's engines (by their device ids)."""
    return rows.filter(pc.starts_with(rows["device_id"], f"{FD001_DEVICES}-"))


def from_engine_cycles(rows: pa.Table) -> Fd001:
    """FD001 from `engine_cycles` rows (silver's, or any with its columns): each split's
    cycles as `CYCLE_SCHEMA` sorted by unit and cycle, and each test engine's true RUL,
    its `label_failure_cycle` minus its last cycle, in unit order: what `read_fd001`
    gives for the same engines. Refuses (ValueError) an engine without one failure cycle
    on all its rows, and a training engine whose last cycle is not its failure cycle (a
    partial import), since its labels would end too early."""
    fd001 = _fd001(rows)
    tables, lasts = {}, {}
    for split in (TRAIN, TEST):
        part = fd001.filter(pc.equal(fd001["split"], split))
        tables[split] = (
            part.select(list(COLUMNS))
            .cast(CYCLE_SCHEMA)
            .sort_by([("unit", "ascending"), ("cycle", "ascending")])
        )
        engines = run_sql(
            """SELECT unit, max(cycle) AS last, min(label_failure_cycle) AS failure,
                      count(DISTINCT label_failure_cycle) AS failures,
                      count(*) - count(label_failure_cycle) AS unlabelled
               FROM part GROUP BY unit ORDER BY unit""",
            part=part,
        ).to_pylist()
        ambiguous = [e["unit"] for e in engines if e["failures"] != 1 or e["unlabelled"]]
        if ambiguous:
            raise ValueError(
                f"{split} engines {ambiguous[:5]} do not carry one label_failure_cycle on "
                "every cycle: their remaining life is not known"
            )
        lasts[split] = engines
    partial = [e for e in lasts[TRAIN] if e["last"] != e["failure"]]
    if partial:
        first = partial[0]
        raise ValueError(
            f"{len(partial)} training engines do not run to failure: unit {first['unit']} "
            f"ends at cycle {first['last']} but fails at {first['failure']} (a partial "
            "import: import FD001 whole, without --limit, and materialize every day it "
            "lands on)"
        )
    test_rul = np.array([e["failure"] - e["last"] for e in lasts[TEST]], dtype=np.int64)
    return Fd001(tables[TRAIN], tables[TEST], test_rul)


# --- labels and features ------------------------------------------------------------------


def rul_labels(cycles: pa.Table, cap: int = RUL_CAP) -> np.ndarray:
    """Per row of run-to-failure `cycles` (unit, cycle): the cycles left until the unit's
    last, capped at `cap`; the training target."""
    units = cycles["unit"].to_numpy()
    cycle = cycles["cycle"].to_numpy().astype(np.float64)
    _, which = np.unique(units, return_inverse=True)
    last = np.zeros(int(which.max()) + 1 if which.size else 0)
    np.maximum.at(last, which, cycle)
    return np.minimum(last[which] - cycle, cap)


def informative_sensors(train: pa.Table) -> tuple[str, ...]:
    """The sensors that take more than two distinct values on the training cycles: in
    FD001, 14 of 21; the others are constant or flip between two adjacent readings
    (sensor 6: 21.60 or 21.61) and say nothing about wear. Decided on training data
    only, then applied to the test engines. The three operational settings are not
    inputs either: FD001 runs at one operating condition, they are noise around it."""
    return tuple(name for name in SENSOR_COLUMNS if np.unique(train[name].to_numpy()).size > 2)


def feature_names(sensors: Sequence[str]) -> tuple[str, ...]:
    """The model's inputs: the cycle count, and per sensor its value, trailing mean and
    trailing slope."""
    return ("cycle", *(f"{s}{suffix}" for s in sensors for suffix in ("", "_mean", "_slope")))


def rul_features(cycles: pa.Table, sensors: Sequence[str], window: int = WINDOW_CYCLES) -> pa.Table:
    """Per (unit, cycle), sorted by them: unit, cycle and `feature_names(sensors)`, from
    that cycle and the `window - 1` before it only (a unit's first cycles use what there
    is; the slope of a single cycle is 0), so they are the same on a live engine."""
    columns = ",\n       ".join(
        f"{s}, avg({s}) OVER w AS {s}_mean, "
        f"CASE WHEN count(*) OVER w > 1 THEN regr_slope({s}, cycle) OVER w ELSE 0 END "
        f"AS {s}_slope"
        for s in sensors
    )
    sql = f"""
SELECT unit, cycle, {columns}
FROM cycles
WINDOW w AS (PARTITION BY unit ORDER BY cycle
             RANGE BETWEEN {int(window) - 1} PRECEDING AND CURRENT ROW)
ORDER BY unit, cycle
"""
    return run_sql(sql, deterministic=True, cycles=cycles.select(["unit", "cycle", *sensors]))


def last_cycles(rows: pa.Table) -> pa.Table:
    """Each unit's last row (rows sorted by unit and cycle): where a test engine is judged."""
    units = rows["unit"].to_numpy()
    last = np.append(units[1:] != units[:-1], True) if units.size else np.zeros(0, bool)
    return rows.filter(pa.array(last))


def matrix(rows: pa.Table, names: Sequence[str]) -> np.ndarray:
    """The named columns as a float64 matrix, one row per table row."""
    return np.column_stack([rows[name].to_numpy().astype(np.float64) for name in names])


# --- metrics ------------------------------------------------------------------------------


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error in cycles, the literature's headline figure."""
    errors = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(errors**2)))


def nasa_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """NASA's PHM08 score, sum of exp(-d/13) - 1 for early (d < 0) and exp(d/10) - 1 for
    late predictions (d = predicted - true): a late one, which lets an engine fly past
    its end, costs more. Lower is better."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0), np.exp(d / 10.0)) - 1.0))


def rul_metrics(name: str, predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """`name`_-prefixed RMSE and NASA score on the true RUL as given and capped at
    `RUL_CAP` (`_capped`), the two conventions papers report."""
    capped = np.minimum(true, RUL_CAP)
    return {
        f"{name}_rmse": rmse(predicted, true),
        f"{name}_nasa_score": nasa_score(predicted, true),
        f"{name}_rmse_capped": rmse(predicted, capped),
        f"{name}_nasa_score_capped": nasa_score(predicted, capped),
    }


# --- validation split and model choice ----------------------------------------------------


def unit_split(
    units: np.ndarray, share: float = VALIDATION_SHARE, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (train, validation) putting a seeded random `share` of the units, with
    all their cycles, in validation: never one unit on both sides."""
    distinct = np.unique(units)
    count = max(1, round(share * distinct.size))
    if count >= distinct.size:
        raise ValueError(f"{distinct.size} units cannot leave any to train after validation")
    held = np.random.default_rng(seed).permutation(distinct)[:count]
    validation = np.isin(units, held)
    return ~validation, validation


@dataclass(frozen=True)
class Choice:
    """The hyper-parameters chosen on the validation engines, with the rounds early
    stopping found and every candidate's validation RMSE."""

    hyperparameters: dict[str, Any]
    rounds: int
    validation_rmse: float
    trials: list[dict[str, Any]]


def choose_hyperparameters(
    features: np.ndarray,
    labels: np.ndarray,
    units: np.ndarray,
    names: Sequence[str],
    grid: Sequence[dict[str, Any]] = GRID,
) -> Choice:
    """Fit each candidate of `grid` on the training engines, stop early on the validation
    engines' RMSE (every cycle, capped labels), and keep the best: the test engines never
    take part."""
    import xgboost

    train, validation = unit_split(units)
    fit = xgboost.DMatrix(features[train], labels[train], feature_names=list(names))
    held = xgboost.DMatrix(features[validation], labels[validation], feature_names=list(names))
    trials = []
    for candidate in grid:
        booster = xgboost.train(
            BASE_HYPERPARAMETERS | candidate,
            fit,
            num_boost_round=MAX_ROUNDS,
            evals=[(held, "validation")],
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            verbose_eval=False,
        )
        trials.append(
            {
                **candidate,
                "rounds": booster.best_iteration + 1,
                "validation_rmse": float(booster.best_score),
            }
        )
    best = min(trials, key=lambda trial: trial["validation_rmse"])
    return Choice(
        hyperparameters=BASE_HYPERPARAMETERS | {key: best[key] for key in grid[0]},
        rounds=int(best["rounds"]),
        validation_rmse=float(best["validation_rmse"]),
        trials=trials,
    )


def fit_xgboost(
    features: np.ndarray, labels: np.ndarray, names: Sequence[str], choice: Choice
) -> tuple[Any, float]:
    """The booster refit on every training engine with the chosen hyper-parameters and
    rounds, and the seconds the fit took (the import of xgboost excluded)."""
    import xgboost

    started = time.perf_counter()
    booster = xgboost.train(
        choice.hyperparameters,
        xgboost.DMatrix(features, labels, feature_names=list(names)),
        num_boost_round=choice.rounds,
    )
    return booster, time.perf_counter() - started


def linear_baseline(features: np.ndarray, labels: np.ndarray) -> Any:
    """Ordinary least squares on the same features: the simplest model that uses them."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(features, labels)


# --- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RulReport:
    """How the RUL model and its baselines do on the test engines.

    `metrics` are flat floats (`model_rmse`, `linear_nasa_score_capped`, ...);
    `predictions` hold each scorer's RUL per test engine, in unit order, beside
    `true_rul`; `comparison` sets them beside the published figures; `charts` are PNGs.
    """

    metrics: dict[str, float]
    comparison: list[dict[str, Any]]
    choice: Choice
    sensors: tuple[str, ...]
    predictions: dict[str, np.ndarray]
    true_rul: np.ndarray
    fit_seconds: float
    charts: dict[str, bytes]
    model_json: bytes
    """The refit booster in XGBoost's JSON format: what the registry stores."""


def evaluate_rul(
    train: pa.Table,
    test: pa.Table,
    test_rul: np.ndarray,
    grid: Sequence[dict[str, Any]] = GRID,
) -> RulReport:
    """Train on the run-to-failure `train` cycles (`CYCLE_SCHEMA`), choose on a split of
    its engines, and judge the model and the baselines on each `test` engine's last cycle
    against `test_rul` (in unit order). See the module docstring."""
    sensors = informative_sensors(train)
    names = feature_names(sensors)
    train_rows = rul_features(train, sensors)
    test_rows = last_cycles(rul_features(test, sensors))
    if test_rows.num_rows != len(test_rul):
        raise ValueError(f"{test_rows.num_rows} test engines but {len(test_rul)} true RULs")
    features, labels = matrix(train_rows, names), rul_labels(train_rows)
    units = train_rows["unit"].to_numpy()
    choice = choose_hyperparameters(features, labels, units, names, grid)
    booster, seconds = fit_xgboost(features, labels, names, choice)
    test_features = matrix(test_rows, names)
    predictions = {
        "model": booster.inplace_predict(test_features),
        "linear": linear_baseline(features, labels).predict(test_features),
        "constant": np.full(test_rows.num_rows, labels.mean()),
    }
    predictions = {name: np.clip(values, 0.0, None) for name, values in predictions.items()}
    true = np.asarray(test_rul, dtype=np.float64)
    metrics = {"validation_rmse": choice.validation_rmse, "rounds": float(choice.rounds)}
    for name, predicted in predictions.items():
        metrics |= rul_metrics(name, predicted, true)
    return RulReport(
        metrics=metrics,
        comparison=comparison(metrics),
        choice=choice,
        sensors=sensors,
        predictions=predictions,
        true_rul=true,
        fit_seconds=seconds,
        charts={"predicted vs true RUL": plots.predicted_vs_true(true, predictions)},
        model_json=bytes(booster.save_raw("json")),
    )


MEASURED = {
    "model": "XGBoost (this platform)",
    "linear": "linear regression, same features",
    "constant": "constant: mean capped training RUL",
}
"""The scorers `evaluate_rul` judges, by their metric prefix, as the comparison names them."""


def comparison(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The measured scorers beside the published FD001 figures, best RMSE first. Papers
    give the RMSE only; the NASA scores and the capped figures are this platform's."""
    measured = [
        {
            "model": label,
            "source": "measured",
            "rmse": metrics[f"{name}_rmse"],
            "rmse_capped": metrics[f"{name}_rmse_capped"],
            "nasa_score": metrics[f"{name}_nasa_score"],
            "nasa_score_capped": metrics[f"{name}_nasa_score_capped"],
        }
        for name, label in MEASURED.items()
    ]
    published = [
        {
            "model": label,
            "source": "published",
            "rmse": value,
            "rmse_capped": None,
            "nasa_score": None,
            "nasa_score_capped": None,
        }
        for label, value in PUBLISHED_RMSE
    ]
    return sorted(measured + published, key=lambda row: row["rmse"])


# --- registration -------------------------------------------------------------------------


def training_source(lake: LakeFd001) -> dict[str, Any]:
    """What a registered version learnt from, for its params: the silver table, the Delta
    version read (also the registry's `training_data`) and the cycles of each split."""
    return {
        "table": SILVER_ENGINE_CYCLES.key,
        "version": lake.version,
        "train_cycles": lake.data.train.num_rows,
        "test_cycles": lake.data.test.num_rows,
        "test_engines": int(lake.data.test_rul.size),
    }


def trained_model(report: RulReport, source: dict[str, Any]) -> TrainedModel:
    """The report as the registry takes it: the booster with what it needs to be used
    (features, sensors, window, cap) as deterministic zip bytes, the chosen
    hyper-parameters and what the data was (`training_source`) as params, every metric,
    the chart, and the comparison with the published figures and the validation grid as
    tables."""
    names = feature_names(report.sensors)
    meta = {
        "features": list(names),
        "sensors": list(report.sensors),
        "window_cycles": WINDOW_CYCLES,
        "rul_cap": RUL_CAP,
    }
    artifact = zip_artifact(
        {"model.json": report.model_json, "meta.json": json.dumps(meta, sort_keys=True).encode()}
    )
    params = {
        **report.choice.hyperparameters,
        "rounds": report.choice.rounds,
        "sensors": list(report.sensors),
        "window_cycles": WINDOW_CYCLES,
        "rul_cap": RUL_CAP,
        "source": source,
    }
    return TrainedModel(
        name=MODEL_NAME,
        artifact=artifact,
        params=params,
        metrics=dict(report.metrics),
        promotion_metric=PROMOTION_METRIC,
        seconds=report.fit_seconds,
        charts=dict(report.charts),
        tables={
            "comparison with published FD001 results": report.comparison,
            "validation grid": report.choice.trials,
        },
    )
