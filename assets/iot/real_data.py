"""The IoT models judged on public data (issue 17): remaining useful life on NASA C-MAPSS
FD001, registered as the model `cmapss_rul`, and NAB's scoring on its machine temperature
series, where the platform's alerts are judged beside NAB's reference detectors.

The RUL model learns from the lake, as production data would reach it: silver
`engine_cycles`, which `lakehouse import cmapss`, the ingest and the medallion fill; the
registry records that table's Delta version. NAB's scores read the series from
`REAL_DATA_DIR` (NAB's labels are windows over the file, not events) and the replayed
alerts from bronze. Both are unpartitioned and run on demand (the `real_data_evaluations`
job, from the UI or `dagster job execute`), never on a schedule.
"""

from typing import Any

import dagster as dg
import pyarrow as pa

from assets.metadata import markdown_table
from assets.resources import LakehouseResource
from assets.tables import asset_key
from assets.training import model_key, register_trained
from lakehouse.catalog import SILVER_ENGINE_CYCLES, Domain, Layer, TableSpec
from lakehouse.models import nab, nab_replay, plots, rul
from lakehouse.models.plots import markdown_image
from lakehouse.settings import Settings

REAL_DATA_GROUP = "real_data"
EVALUATIONS = "evaluations"
NAB_EVALUATION_KEY = dg.AssetKey([EVALUATIONS, "nab_machine_temperature"])
RUL_MODEL_KEY = model_key(rul.MODEL_NAME)
CHART_PROFILE = nab.STANDARD
PLATFORM_ALERTS = "platform alerts"
"""The name the replayed alerts are scored under, beside the reference detectors."""
"""The profile whose detections the NAB chart marks (every profile is in the tables)."""

RUL_HEADLINES: dict[str, str] = {
    "model_rmse": "test RMSE (100 engines)",
    "model_nasa_score": "test NASA score (lower is better)",
    "model_rmse_capped": "test RMSE, true RUL capped",
    "linear_rmse": "linear baseline test RMSE",
    "model_version": "registry version",
    "promoted": "promoted",
}
"""The RUL materialization's headline figures (metadata name -> label): what
`lakehouse evaluate real-data` prints of it."""


def real_data_asset(
    key: dg.AssetKey, description: str, kinds: set[str], deps: tuple[TableSpec, ...] = ()
) -> dict[str, Any]:
    """`@dg.asset` arguments shared by the evaluations on public data: owned by the IoT
    team, in their own group, so the UI shows them apart from the daily lake; `deps` the
    catalogued tables an evaluation reads."""
    return {
        "key": key,
        "description": description,
        "group_name": REAL_DATA_GROUP,
        "owners": [Domain.IOT.owner],
        "kinds": kinds,
        "deps": [asset_key(table) for table in deps],
    }


@dg.asset(
    **real_data_asset(
        RUL_MODEL_KEY,
        "Remaining useful life on NASA C-MAPSS FD001 from silver engine_cycles: XGBoost on "
        "trailing-window sensor features, judged on the 100 test engines (RMSE, NASA score) "
        "against a linear and a constant baseline and the published results; registered, "
        "promoted on test RMSE.",
        kinds={"xgboost", "python"},
        deps=(SILVER_ENGINE_CYCLES,),
    ),
    tags={"layer": Layer.MODELS.value},
)
def cmapss_rul(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Train and evaluate on FD001 from silver `engine_cycles`, register the booster; fail,
    saying how to fill it, when silver holds no FD001 engines."""
    settings = lakehouse.settings()
    try:
        lake = rul.load_engine_cycles(settings)
    except rul.NoEngineCyclesError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    context.log.info(
        f"{SILVER_ENGINE_CYCLES.key} v{lake.version}: {lake.data.train.num_rows:,} training "
        f"and {lake.data.test.num_rows:,} test cycles"
    )
    report = rul.evaluate_rul(lake.data.train, lake.data.test, lake.data.test_rul)
    return register_rul(context, settings, report, lake)


def register_rul(
    context: dg.AssetExecutionContext,
    settings: Settings,
    report: rul.RulReport,
    lake: rul.LakeFd001,
) -> dg.MaterializeResult:
    """Register a RUL report's model as `cmapss_rul` (lower test RMSE is better), with
    the silver table's Delta version as its training data and what it held in its params,
    and describe it as every model asset does."""
    trained = rul.trained_model(report, rul.training_source(lake))
    return register_trained(
        context,
        settings,
        trained,
        {SILVER_ENGINE_CYCLES.key: lake.version},
        higher_is_better=rul.HIGHER_IS_BETTER,
    )


@dg.asset(
    **real_data_asset(
        NAB_EVALUATION_KEY,
        "NAB's window-based scores on its machine temperature series, under the standard, "
        "low-FP and low-FN profiles: the null (0) and perfect (100) detectors and NAB's "
        "windowed Gaussian at its swept threshold, with each window's hit or miss.",
        kinds={"python"},
    )
)
def nab_machine_temperature(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Score NAB's reference detectors on the series from `REAL_DATA_DIR`, and beside
    them the platform's own alerts on it where the lake holds a replay (`lakehouse import
    nab`, then the alert processor: bronze.iot_alerts of the replay device)."""
    settings = lakehouse.settings()
    series = nab.load_series(settings.real_data_dir)
    replayed = nab_replay.replay_alerts(settings)
    alerts = {PLATFORM_ALERTS: replayed} if replayed.size else None
    runs = nab.evaluate_detectors(series, alerts=alerts)
    context.log.info(
        ", ".join(f"{r.detector} {r.score.profile} {r.score.normalised:.2f}" for r in runs)
    )
    return dg.MaterializeResult(metadata=nab_metadata(series, runs))


def nab_metadata(series: nab.Series, runs: list[nab.DetectorRun]) -> dict[str, object]:
    """Each detector's normalised and raw score per profile as numbers (the UI plots them
    across materializations), the scores and the windows' outcomes as Markdown tables,
    and the series with its windows and the chart profile's detections. Alert sets
    passed to `nab.evaluate_detectors` appear here beside the references."""
    metadata: dict[str, object] = {
        "rows": dg.MetadataValue.int(int(series.timestamps.size)),
        "windows": dg.MetadataValue.int(len(series.windows)),
    }
    for run in runs:
        name = f"{slug(run.detector)}_{run.score.profile}"
        metadata[f"{name}_normalised"] = dg.MetadataValue.float(float(run.score.normalised))
        metadata[f"{name}_raw"] = dg.MetadataValue.float(float(run.score.raw))
    metadata["table: scores"] = dg.MetadataValue.md(markdown_table(score_rows(runs)))
    metadata["table: windows"] = dg.MetadataValue.md(markdown_table(window_rows(runs)))
    title = f"machine temperature: windows and detections ({CHART_PROFILE.name} profile)"
    metadata[f"chart: {title}"] = dg.MetadataValue.md(
        markdown_image(nab_chart(series, runs, title), title)
    )
    return metadata


def slug(detector: str) -> str:
    """A detector's name as a metadata key part (`windowed Gaussian` -> `windowed_gaussian`)."""
    return "_".join(detector.lower().split())


NAB_HEADLINES: dict[str, str] = {
    f"{slug(detector)}_{profile}_normalised": f"{detector}, {profile} profile (0-100)"
    for detector in (nab.GAUSSIAN, PLATFORM_ALERTS)
    for profile in nab.PROFILES
}
"""The NAB materialization's headline figures (metadata name -> label): the windowed
Gaussian's and, where a replay landed, the platform alerts' normalised score under every
profile, as `nab_metadata` names them."""


def score_rows(runs: list[nab.DetectorRun]) -> pa.Table:
    """One row per detector and profile: scores, windows hit and missed, false
    positives, their cost and the swept threshold (blank when never firing or unswept)."""
    return pa.Table.from_pylist(
        [
            {
                "detector": run.detector,
                "profile": run.score.profile,
                "normalised": run.score.normalised,
                "raw": run.score.raw,
                "windows hit": run.score.true_positives,
                "missed": run.score.false_negatives,
                "false positives": run.score.false_positives,
                "FP cost": run.score.false_positive_cost,
                "threshold": threshold_text(run.threshold),
            }
            for run in runs
        ]
    )


def threshold_text(threshold: float | None) -> str:
    """A threshold as the table shows it: "never fires" above every score, to 10 digits."""
    if threshold is None:
        return ""
    return "never fires" if threshold == float("inf") else f"{threshold:.10f}"


WINDOW_SCHEMA = pa.schema(
    [
        (name, pa.string())
        for name in (
            "detector",
            "profile",
            "window start",
            "window end",
            "outcome",
            "first detection",
        )
    ]
    + [("contribution", pa.float64())]
)
"""The window table's columns, fixed so that it reads the same with no row."""


def window_rows(runs: list[nab.DetectorRun]) -> pa.Table:
    """Each window's outcome for every detector that can miss or fire late (the null and
    perfect detectors are 0 and 100 by definition): hit or missed, first detection,
    and what it added to the raw score."""
    return pa.Table.from_pylist(
        [
            {
                "detector": run.detector,
                "profile": run.score.profile,
                "window start": str(window.start)[:16],
                "window end": str(window.end)[:16],
                "outcome": "hit" if window.hit else "missed",
                "first detection": ""
                if window.first_detection is None
                else str(window.first_detection)[:16],
                "contribution": window.contribution,
            }
            for run in runs
            if run.detector not in (nab.NULL, nab.PERFECT)
            for window in run.score.windows
        ],
        schema=WINDOW_SCHEMA,
    )


def nab_chart(series: nab.Series, runs: list[nab.DetectorRun], title: str) -> bytes:
    """The series, its windows shaded, and the detections of every detector that fires
    under `CHART_PROFILE` (the null never does)."""
    detections = {
        run.detector: run.detections
        for run in runs
        if run.score.profile == CHART_PROFILE.name and run.detections.size
    }
    windows = [(window.start, window.end) for window in series.windows]
    return plots.series_with_windows(series.timestamps, series.values, windows, detections, title)
