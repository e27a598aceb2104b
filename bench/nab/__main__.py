"""`python -m bench.nab`: NAB's scores on its machine temperature series.

Loads `nab/machine_temperature_system_failure.csv` and its four labelled windows from
`REAL_DATA_DIR` and scores, with NAB's window-based scoring (`lakehouse.models.nab`), the
null detector (a constant 0.5, whose best threshold never fires: 0 by definition), the
perfect one (every window on its first row: 100) and NAB's windowed Gaussian, the null
and the Gaussian at the threshold NAB's sweep finds best for the profile on this very
file (in-sample, as NAB chooses its thresholds on the data it reports). `--alerts FILE`
scores alert times beside them (one ISO timestamp a line, UTC when they carry an offset):
what the platform's alerts on the replayed series will be judged by; `--replay` scores the
alerts the IoT alert processor raised on `lakehouse import nab`'s device, read from
bronze.iot_alerts (`lakehouse.models.nab_replay`), all rules and each rule alone;
`--detector` runs the alert processor's detector in this process over the importer's
readings, decoded as the processor decodes them, and scores its alerts the same way: the
replay's figures without the broker, gateway, Kafka and Redis (the same alerts, since the
detector judges in event time; checked against the replay at two quiet periods), for
trying alert settings in seconds, under the per-device operating limits the lake records
(`reference.device_limits`: `lakehouse import nab` registers the machine as having none,
as `lakehouse iot limits set nab-machine-01 temperature --unknown` does; on a lake without
that row the catalog's 90 degC applies). Prints the scores and each window's hit or miss, and
writes them to bench/results/nab-<UTC time>.json.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench.envelope import envelope, write
from lakehouse.catalog import IOT_ALERTS, SENSOR_READINGS
from lakehouse.device_limits import read_limits
from lakehouse.models import nab, nab_replay
from lakehouse.models.nab_replay import REPLAY_DEVICE
from lakehouse.settings import Settings
from streaming.alerts.detector import HEALTH_RULE, SENSOR_RULES, Detector, DetectorConfig
from streaming.alerts.limits import OperatingLimits
from streaming.importers.nab import SOURCE, NabImport
from streaming.ingest.decode import BatchDecoder

REPLAY_RULES = (*SENSOR_RULES, HEALTH_RULE)
"""The alert processor's rules (docs/events.md, `iot_alerts`), scored one at a time too."""

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    profile: Annotated[str, typer.Option(help=f"NAB profile: {', '.join(nab.PROFILES)}")] = (
        nab.STANDARD.name
    ),
    alerts: Annotated[
        Path | None, typer.Option(help="Alert times to score, one ISO timestamp a line")
    ] = None,
    replay: Annotated[
        bool, typer.Option(help="Score the alert processor's alerts on the replayed device")
    ] = False,
    detector: Annotated[
        bool,
        typer.Option(help="Score the processor's detector run in this process (IOT_ALERTS_*)"),
    ] = False,
) -> None:
    """Score the reference detectors (and any alerts) and print the results."""
    if profile not in nab.PROFILES:
        raise typer.BadParameter(f"unknown profile {profile!r}; one of {', '.join(nab.PROFILES)}")
    weights = nab.PROFILES[profile]
    settings = Settings()
    series = nab.load_series(settings.real_data_dir)
    results = reference_scores(series, weights)
    if alerts is not None:
        results[f"alerts ({alerts.name})"] = {
            "score": nab.score(read_alerts(alerts), series.windows, series.timestamps, weights)
        }
    if replay:
        results.update(replay_scores(settings, series, weights))
    if detector:
        results.update(detector_scores(settings, series, weights))
    print_scores(series, weights, results)
    document = envelope(
        "nab",
        {
            "profile": profile,
            "alerts": str(alerts) if alerts else None,
            "replay": replay,
            "detector": detector,
        },
    )
    if detector:
        document["detector_config"] = vars(DetectorConfig.from_settings(settings))
        overrides = read_limits(settings, REPLAY_DEVICE).drop_columns(["updated_at"])
        document["device_limits"] = overrides.to_pylist()
        console.print(f"{REPLAY_DEVICE}'s own operating limits: {overrides.to_pylist() or 'none'}")
    document["rows"] = int(series.timestamps.size)
    document["detectors"] = {name: as_json(result) for name, result in results.items()}
    console.print(f"results: {write(document)}")


def replay_scores(
    settings: Settings, series: nab.Series, profile: nab.Profile
) -> dict[str, dict[str, Any]]:
    """The processor's alerts on the replayed device, all rules together and each rule
    that fired alone, scored at their opening times (the series' own)."""
    return scores_by_rule(
        "platform alerts",
        lambda rules: nab_replay.replay_alerts(settings, rules=rules),
        series,
        profile,
    )


def detector_scores(
    settings: Settings, series: nab.Series, profile: nab.Profile
) -> dict[str, dict[str, Any]]:
    """The alerts the processor's detector raises on the importer's readings, run here:
    the readings decoded by the processor's decoder in the import's batches of 1,000 (a
    row the gateway would quarantine is rejected by the same decoder), the records decoded
    as the ingest decodes `iot_alerts`, then scored as the replay is."""
    importer = NabImport(settings.real_data_dir / SOURCE)
    readings = BatchDecoder(SENSOR_READINGS.event, settings.ingest_max_message_bytes)
    limits = OperatingLimits.from_rows(read_limits(settings))
    detector = Detector(DetectorConfig.from_settings(settings), limits)
    records: list[bytes] = []
    for batch in importer.batches(importer.plan().selected, 1_000):
        result = detector.process(readings.decode(batch.values).table, 0)
        records += [orjson.dumps(record) for record in result.records]
    alerts = BatchDecoder(IOT_ALERTS.event, settings.ingest_max_message_bytes).decode(records)
    return scores_by_rule(
        "detector alerts",
        lambda rules: nab_replay.alert_openings(alerts.table, rules=rules),
        series,
        profile,
    )


def scores_by_rule(
    label: str,
    openings_of: Callable[[tuple[str, ...] | None], np.ndarray],
    series: nab.Series,
    profile: nab.Profile,
) -> dict[str, dict[str, Any]]:
    """Alerts scored at their opening times, all rules together and each rule that fired
    alone; `openings_of(rules)` gives the opening times of those rules' alerts."""
    results = {}
    for rules in (None, *((rule,) for rule in REPLAY_RULES)):
        openings = openings_of(rules)
        if rules is None or openings.size:
            name = label + (f" ({rules[0]})" if rules else " (all rules)")
            results[name] = {
                "score": nab.score(openings, series.windows, series.timestamps, profile),
                "detections": int(openings.size),
            }
    return results


def reference_scores(series: nab.Series, profile: nab.Profile) -> dict[str, dict[str, Any]]:
    """NAB's null, perfect and windowed Gaussian detectors, scored under `profile`: the
    null and the Gaussian as NAB runs them, at the threshold its sweep finds best (the
    Gaussian with its time to score and to sweep), the perfect one on each window's
    first row."""
    began = time.perf_counter()
    gaussian = nab.windowed_gaussian(series.values)
    detector_seconds = time.perf_counter() - began
    perfect = nab.perfect_detections(series.windows, series.timestamps)
    return {
        nab.NULL: swept(nab.NULL, series, nab.null_scores(series.values.size), profile),
        nab.PERFECT: {"score": nab.score(perfect, series.windows, series.timestamps, profile)},
        nab.GAUSSIAN: {
            **swept(nab.GAUSSIAN, series, gaussian, profile),
            "detector_seconds": detector_seconds,
        },
    }


def swept(
    detector: str, series: nab.Series, scores: np.ndarray, profile: nab.Profile
) -> dict[str, Any]:
    """A score series at its best threshold under `profile` (NAB's sweep, in-sample, as
    the evaluation asset runs it: `nab.at_best_threshold`): the threshold, the detections
    it makes, their score and the sweep's time."""
    began = time.perf_counter()
    run = nab.at_best_threshold(detector, scores, series, profile)
    return {
        "score": run.score,
        "threshold": run.threshold,
        "detections": int(run.detections.size),
        "sweep_seconds": time.perf_counter() - began,
    }


def read_alerts(path: Path) -> np.ndarray:
    """Alert times from a file, one ISO timestamp a line (blank lines skipped)."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return nab.as_datetime64([datetime.fromisoformat(line) for line in lines])


def print_scores(
    series: nab.Series, profile: nab.Profile, results: dict[str, dict[str, Any]]
) -> None:
    """One line per detector, then each window's outcome per detector that fires."""
    table = Table(
        title=f"NAB machine temperature ({series.timestamps.size:,} rows, "
        f"{len(series.windows)} windows), profile {profile.name} "
        f"(A_TP {profile.tp}, A_FP {profile.fp}, A_FN {profile.fn})"
    )
    for column in (
        "detector",
        "normalised",
        "raw",
        "windows hit",
        "missed",
        "false positives",
        "FP cost",
        "threshold",
    ):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, result in results.items():
        score: nab.NabScore = result["score"]
        table.add_row(
            name,
            f"{score.normalised:.2f}",
            f"{score.raw:.4f}",
            str(score.true_positives),
            str(score.false_negatives),
            str(score.false_positives),
            f"{score.false_positive_cost:.3f}",
            threshold_text(result.get("threshold")),
        )
    console.print(table)
    for name, result in results.items():
        if name not in (nab.NULL, nab.PERFECT):
            console.print(window_table(name, result["score"]))


def threshold_text(threshold: float | None) -> str:
    """A swept threshold as the table shows it ("never fires" above every score)."""
    if threshold is None:
        return ""
    return "never fires" if math.isinf(threshold) else f"{threshold:.10f} (swept, in-sample)"


def finite_or_none(threshold: float | None) -> float | None:
    """A threshold for JSON: none where there is none or it never fires."""
    return None if threshold is None or math.isinf(threshold) else threshold


def window_table(name: str, score: nab.NabScore) -> Table:
    """Each window of one detector: hit or missed, first detection, contribution."""
    table = Table(title=f"{name}: windows")
    for column in ("window start", "window end", "hit", "first detection", "contribution"):
        table.add_column(column)
    for window in score.windows:
        table.add_row(
            str(window.start)[:16],
            str(window.end)[:16],
            "hit" if window.hit else "missed",
            "" if window.first_detection is None else str(window.first_detection)[:16],
            f"{window.contribution:+.4f}",
        )
    return table


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    """A detector's result as plain JSON values."""
    score: nab.NabScore = result["score"]
    return {
        **{key: value for key, value in result.items() if key not in ("score", "threshold")},
        "threshold": finite_or_none(result.get("threshold")),
        "profile": score.profile,
        "raw": score.raw,
        "normalised": score.normalised,
        "null": score.null,
        "perfect": score.perfect,
        "true_positives": score.true_positives,
        "false_positives": score.false_positives,
        "false_negatives": score.false_negatives,
        "false_positive_cost": score.false_positive_cost,
        "windows": [
            {
                "start": str(w.start),
                "end": str(w.end),
                "hit": w.hit,
                "first_detection": None if w.first_detection is None else str(w.first_detection),
                "contribution": w.contribution,
            }
            for w in score.windows
        ],
    }


if __name__ == "__main__":
    app()
