"""NAB's window-based scoring and its simple reference detectors, on NAB's machine
temperature series, so that alerts the platform raises on the replayed series are judged
the way the Numenta Anomaly Benchmark judges every detector.

The method is NAB's (Lavin and Ahmad 2015; numenta/NAB, `nab/sweeper.py` and
`nab/runner.py`), re-implemented here with NumPy; docs/models.md states it with its
formula. In short, per data file:

- each labelled window is a span of rows; the first detection inside it is a true
  positive worth `A_TP * sigma(y) / sigma(-1)`, where `sigma(y) = 2 / (1 + e^(5y)) - 1`
  and `y = -(end - row + 1) / width` (-1 at the window's first row, -1/width at its last),
  so a detection on the first row is worth exactly `A_TP`; later detections in the same
  window add nothing;
- a window without a detection costs `A_FN`;
- a detection outside every window costs `A_FP * sigma(y)`, with
  `y = (row - end) / (width - 1)` measured from the end of the window before it
  (`sigma(y) = -1` once `y > 3`), and the full `-A_FP` when no window precedes it;
- the first `min(floor(0.15 * rows), 750)` rows are a probationary period: detections
  there are not scored;
- the normalised score is `100 * (raw - null) / (perfect - null)`, with the null detector
  (never fires: `-A_FN` per window) and the perfect one (`A_TP` per window).

A detector that emits scores becomes detections by a threshold (every row whose score is
at least the threshold); NAB chooses each detector's threshold by sweeping every distinct
score for the highest raw score under the profile, on the very data it then reports: so
do `sweep` and `best_threshold`, and the figures they give are in-sample by construction.

`evaluate_detectors` runs the whole evaluation, NAB's reference detectors under every
profile, and scores any named set of alert times beside them: the way in for the
platform's own alerts on the replayed series.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

MACHINE_TEMPERATURE = Path("nab") / "machine_temperature_system_failure.csv"
"""The series, relative to `REAL_DATA_DIR`."""
WINDOWS_FILE = Path("nab") / "combined_windows.json"
"""NAB's labelled anomaly windows, relative to `REAL_DATA_DIR`."""
CORPUS_KEY = "realKnownCause/machine_temperature_system_failure.csv"
"""The series' key in NAB's label files."""

PROBATIONARY_PERCENT = 0.15
PROBATIONARY_CAP_ROWS = 5000
GAUSSIAN_WINDOW = 6400
"""NAB's windowed Gaussian: the number of past values its mean and deviation cover."""
GAUSSIAN_STEP = 100
"""NAB's windowed Gaussian: once full, its window moves on by this many values at a time."""
GAUSSIAN_MIN_STD = 1e-6
_FLOAT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_NS = "datetime64[ns]"


@dataclass(frozen=True)
class Profile:
    """One of NAB's application profiles: the weights of the raw score (`tn` is part of
    NAB's cost matrix but never enters the score)."""

    name: str
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
REWARD_LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
PROFILES = {profile.name: profile for profile in (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)}
"""NAB's three profiles, as in its `config/profiles.json`."""


@dataclass(frozen=True)
class Window:
    """A labelled anomaly window: its first and last timestamps, both inclusive."""

    start: np.datetime64
    end: np.datetime64


@dataclass(frozen=True)
class Series:
    """A NAB data file: timestamps (naive, as in the file), values and its windows."""

    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class WindowOutcome:
    """How one window was scored: hit or missed, the first detection in it and what the
    window added to the raw score (`-A_FN` when missed)."""

    start: np.datetime64
    end: np.datetime64
    hit: bool
    first_detection: np.datetime64 | None
    contribution: float


@dataclass(frozen=True)
class NabScore:
    """A detector's NAB score on one file: raw and normalised, windows hit (true
    positives) and missed (false negatives), scored detections outside every window
    (false positives, one per row) and the outcome of each window."""

    profile: str
    raw: float
    normalised: float
    null: float
    perfect: float
    true_positives: int
    false_positives: int
    false_negatives: int
    false_positive_cost: float
    windows: tuple[WindowOutcome, ...]


@dataclass(frozen=True)
class Sweep:
    """The raw score at every candidate threshold, highest threshold first; `inf` stands
    for "never fire" (the null detector)."""

    thresholds: np.ndarray
    raw: np.ndarray


def load_series(real_data_dir: Path) -> Series:
    """The machine temperature series and its windows from `real_data_dir` (the
    settings' `REAL_DATA_DIR`), with a clear error naming that setting when absent."""
    series_path = real_data_dir / MACHINE_TEMPERATURE
    windows_path = real_data_dir / WINDOWS_FILE
    for path in (series_path, windows_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"NAB's {path.name} is not at {path}; set REAL_DATA_DIR to the folder "
                f"holding {MACHINE_TEMPERATURE} and {WINDOWS_FILE}"
            )
    timestamps, values = read_series_csv(series_path)
    return Series(timestamps, values, read_windows(windows_path, CORPUS_KEY))


def read_series_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NAB `timestamp,value` file as datetime64[ns] and float64 arrays, rows in file
    order (NAB scores rows by position). Any malformed line (wrong field count, bad
    timestamp or number) is an error naming its line number, since a silently skipped row
    would move every window boundary the score depends on. Times need not increase: the
    machine temperature file repeats the hour from 2014-01-07 02:00 (lines 10139-10162),
    and NAB keeps both copies."""
    invalid: list[int | None] = []

    def reject(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=["timestamp", "value"], skip_rows=1, use_threads=False
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=reject, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={"timestamp": pa.string(), "value": pa.string()}
        ),
    )
    if invalid:
        raise ValueError(f"{path}: line {_line_of(invalid[0])} does not have 2 fields")
    return _parse_columns(path, table["timestamp"], table["value"])


def _line_of(row_number: int | None) -> str:
    """The file line of a row pyarrow rejected (single-threaded, it counts file lines)."""
    return "?" if row_number is None else str(row_number)


def _parse_columns(
    path: Path, texts: pa.ChunkedArray, numbers: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and values parsed in batch, the first bad row reported by its line."""
    parsed = pc.strptime(texts, format=_TIMESTAMP_FORMAT, unit="s", error_is_null=True)
    bad_value = pc.invert(pc.fill_null(pc.match_substring_regex(numbers, _FLOAT), False))
    bad = pc.or_(pc.is_null(parsed), bad_value).to_numpy(zero_copy_only=False)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{path}: line {row + 2} is not 'YYYY-MM-DD HH:MM:SS,number': "
            f"{texts[row]},{numbers[row]}"
        )
    seconds = pc.cast(parsed, pa.int64()).to_numpy()
    values = pc.cast(pc.utf8_trim_whitespace(numbers), pa.float64()).to_numpy()
    return seconds.astype("datetime64[s]").astype(_NS), values


def read_windows(path: Path, key: str) -> tuple[Window, ...]:
    """One file's windows from NAB's `combined_windows.json`, in time order."""
    windows = json.loads(path.read_text()).get(key)
    if windows is None:
        raise KeyError(f"{path} has no windows for {key}")
    bounds = [(np.datetime64(start, "ns"), np.datetime64(end, "ns")) for start, end in windows]
    return tuple(Window(start, end) for start, end in sorted(bounds))


def probationary_rows(rows: int) -> int:
    """NAB's probationary period: the first 15% of the rows, at most 750, unscored."""
    return int(
        min(math.floor(PROBATIONARY_PERCENT * rows), PROBATIONARY_PERCENT * PROBATIONARY_CAP_ROWS)
    )


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """NAB's `2 / (1 + e^(5y)) - 1`: 0.98661 at y = -1, 0 at y = 0, -1 beyond y = 3."""
    position = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


def as_datetime64(moments: Sequence[datetime | np.datetime64 | str] | np.ndarray) -> np.ndarray:
    """Detection times as datetime64[ns]; aware datetimes are taken in UTC, the clock of
    the replayed series (NAB's own timestamps are naive)."""
    if isinstance(moments, np.ndarray) and np.issubdtype(moments.dtype, np.datetime64):
        return moments.astype(_NS)
    naive = [
        m.astimezone(UTC).replace(tzinfo=None) if isinstance(m, datetime) and m.tzinfo else m
        for m in moments
    ]
    return np.asarray(naive, dtype=_NS)


def window_rows(windows: Sequence[Window], timestamps: np.ndarray) -> np.ndarray:
    """Each window's first and last row, shape (windows, 2): the rows whose timestamps
    lie within the window's limits. There must be windows, ordered, apart and not empty."""
    if not windows:
        raise ValueError("NAB scores a file against at least one window")
    order, ordered = _time_order(timestamps)
    starts = np.array([w.start for w in windows], dtype=_NS)
    ends = np.array([w.end for w in windows], dtype=_NS)
    first = np.searchsorted(ordered, starts, side="left")
    last = np.searchsorted(ordered, ends, side="right") - 1
    if (last < first).any():
        raise ValueError("a window holds no row of the series")
    rows = np.stack([order[first], order[last]], axis=1)
    if (rows[1:, 0] <= rows[:-1, 1]).any():
        raise ValueError("windows overlap or are out of order")
    return rows.reshape(-1, 2)


def detection_rows(detections: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """The distinct rows detections fall on: each detection belongs to the last row at or
    before its time (the reading it was raised on), as NAB scores rows, not alerts. A
    time the file holds twice is taken as its later copy."""
    order, ordered = _time_order(timestamps)
    positions = np.searchsorted(ordered, detections, side="right") - 1
    if (positions < 0).any():
        raise ValueError("a detection comes before the first row of the series")
    return np.unique(order[positions])


def _time_order(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows in time order (ties in file order) and their timestamps, for look-ups."""
    order = np.argsort(timestamps, kind="stable")
    return order, timestamps[order]


def score(
    detections: Sequence[datetime | np.datetime64 | str] | np.ndarray,
    windows: Sequence[Window],
    timestamps: np.ndarray,
    profile: Profile = STANDARD,
    probation: int | None = None,
) -> NabScore:
    """NAB's score of detections (alert times) against a file's windows: what the
    replayed platform's alerts are judged by. `probation` defaults to NAB's period."""
    timestamps = np.asarray(timestamps).astype(_NS)
    bounds, first_scored = _scored_windows(windows, timestamps, probation)
    rows = detection_rows(as_datetime64(detections), timestamps)
    rows = rows[rows >= first_scored]
    which, inside = _locate(rows, bounds)
    outcomes = _window_outcomes(rows[inside], which[inside], bounds, timestamps, profile)
    fp_cost = float(_false_positive_weights(rows[~inside], which[~inside], bounds, profile).sum())
    raw = sum(o.contribution for o in outcomes) + fp_cost
    null, perfect = null_raw(len(windows), profile), perfect_raw(len(windows), profile)
    hits = sum(o.hit for o in outcomes)
    return NabScore(
        profile=profile.name,
        raw=raw,
        normalised=normalise(raw, null, perfect),
        null=null,
        perfect=perfect,
        true_positives=hits,
        false_positives=int((~inside).sum()),
        false_negatives=len(windows) - hits,
        false_positive_cost=fp_cost,
        windows=outcomes,
    )


def _scored_windows(
    windows: Sequence[Window], timestamps: np.ndarray, probation: int | None
) -> tuple[np.ndarray, int]:
    """The windows' rows and the first scored row (NAB's probation unless given); a
    window inside the probation is refused, as NAB's own labels never place one there."""
    bounds = window_rows(windows, timestamps)
    first_scored = probationary_rows(timestamps.size) if probation is None else probation
    if bounds[0, 0] < first_scored:
        raise ValueError("a window starts inside the probationary period")
    return bounds, first_scored


def _locate(rows: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the last window starting at or before it (-1: none) and whether the
    row lies inside that window."""
    which = np.searchsorted(bounds[:, 0], rows, side="right") - 1
    inside = (which >= 0) & (rows <= bounds[np.maximum(which, 0), 1])
    return which, inside


def _true_positive_weights(rows: np.ndarray, start: int, end: int, profile: Profile) -> np.ndarray:
    """The worth of a detection on each of `rows` inside the window [start, end]."""
    width = end - start + 1
    return profile.tp * scaled_sigmoid(-(end - rows + 1) / width) / scaled_sigmoid(-1.0)


def _false_positive_weights(
    rows: np.ndarray, which: np.ndarray, bounds: np.ndarray, profile: Profile
) -> np.ndarray:
    """The (negative) worth of each detection outside the windows, by its distance past
    the end of the window before it, relative to that window's width less one."""
    before = bounds[np.maximum(which, 0)]
    ends, spans = before[:, 1], before[:, 1] - before[:, 0]
    with np.errstate(divide="ignore"):
        position = np.where(spans > 0, (rows - ends) / np.maximum(spans, 1), np.inf)
    return profile.fp * np.where(which < 0, -1.0, scaled_sigmoid(position))


def _window_outcomes(
    rows: np.ndarray,
    which: np.ndarray,
    bounds: np.ndarray,
    timestamps: np.ndarray,
    profile: Profile,
) -> tuple[WindowOutcome, ...]:
    """Each window hit by its first detection, or missed at a cost of `A_FN`."""
    outcomes = []
    for index, (start, end) in enumerate(bounds):
        hits = rows[which == index]
        if hits.size:
            first = int(hits.min())
            worth = float(_true_positive_weights(np.array([first]), start, end, profile)[0])
            outcomes.append(
                WindowOutcome(timestamps[start], timestamps[end], True, timestamps[first], worth)
            )
        else:
            outcomes.append(
                WindowOutcome(timestamps[start], timestamps[end], False, None, -profile.fn)
            )
    return tuple(outcomes)


def null_raw(windows: int, profile: Profile = STANDARD) -> float:
    """The raw score of NAB's null detector, which never fires: every window missed."""
    return -profile.fn * windows


def perfect_raw(windows: int, profile: Profile = STANDARD) -> float:
    """The raw score of a perfect detector: every window hit on its first row."""
    return profile.tp * windows


def normalise(raw: float, null: float, perfect: float) -> float:
    """NAB's normalised score: 0 for the null detector, 100 for the perfect one."""
    return 100.0 * (raw - null) / (perfect - null)


def null_scores(rows: int) -> np.ndarray:
    """NAB's null detector as NAB runs it: the constant score 0.5 on every row, whose
    best threshold on any file with windows is never to fire."""
    return np.full(rows, 0.5)


def null_detections() -> np.ndarray:
    """The null detector's detections: none."""
    return np.array([], dtype=_NS)


def perfect_detections(windows: Sequence[Window], timestamps: np.ndarray) -> np.ndarray:
    """The perfect detector's detections: the first row of every window."""
    return np.asarray(timestamps).astype(_NS)[window_rows(windows, timestamps)[:, 0]]


def detections_at(scores: np.ndarray, threshold: float, timestamps: np.ndarray) -> np.ndarray:
    """A score series as NAB turns it into detections: every row whose score is at least
    the threshold (NAB's sweep counts a score equal to the threshold as a detection)."""
    return np.asarray(timestamps).astype(_NS)[np.asarray(scores) >= threshold]


def windowed_gaussian(
    values: np.ndarray, window: int = GAUSSIAN_WINDOW, step: int = GAUSSIAN_STEP
) -> np.ndarray:
    """NAB's windowed Gaussian detector, in batch: each value's score is one minus the
    Gaussian tail probability of its distance from the mean, under the mean and
    (population) deviation of the past values its window holds. The window grows with
    every value up to `window` values, then moves on by `step` values at a time, once
    `step` new ones have come; the first value scores 0. Equal to NAB's record-by-record
    loop up to float rounding (window sums come from cumulative sums here)."""
    from scipy.special import erfc

    values = np.asarray(values, dtype=np.float64)
    low, high = _gaussian_bounds(values.size, window, step)
    mean, std = _window_moments(values, low, high)
    z = np.abs(values - mean) / std
    scores = 1.0 - 0.5 * erfc(z / math.sqrt(2.0))
    return np.where(high > 0, scores, 0.0)


def _gaussian_bounds(rows: int, window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The past values `[low, high)` NAB's detector holds when each row arrives."""
    index = np.arange(rows)
    moved = np.maximum(index - window, 0) // step * step
    full = index >= window
    return np.where(full, moved, 0), np.where(full, window + moved, index)


def _window_moments(
    values: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population deviation of `values[low:high]` for every row, from sums
    taken about the first value (so a constant stretch has a deviation of exactly 0,
    which NAB replaces by 1e-6)."""
    if values.size == 0:
        return values, values
    centred = values - values[0]
    first = np.concatenate([[0.0], np.cumsum(centred)])
    second = np.concatenate([[0.0], np.cumsum(centred * centred)])
    count = np.maximum(high - low, 1)
    mean = (first[high] - first[low]) / count
    variance = np.maximum((second[high] - second[low]) / count - mean * mean, 0.0)
    std = np.sqrt(variance)
    return mean + values[0], np.where(std > 0.0, std, GAUSSIAN_MIN_STD)


def sweep(
    scores: np.ndarray,
    windows: Sequence[Window],
    timestamps: np.ndarray,
    profile: Profile = STANDARD,
    probation: int | None = None,
) -> Sweep:
    """The raw score of `detections_at(scores, t)` for every distinct scored value `t`
    (and for never firing), as NAB's threshold sweep computes it, in batch."""
    timestamps = np.asarray(timestamps).astype(_NS)
    scores = np.asarray(scores, dtype=np.float64)
    bounds, first_scored = _scored_windows(windows, timestamps, probation)
    rows = np.arange(first_scored, timestamps.size)
    thresholds = np.concatenate([[np.inf], np.unique(scores[rows])[::-1]])
    which, inside = _locate(rows, bounds)
    raw = _false_positive_sweep(
        scores[rows[~inside]],
        _false_positive_weights(rows[~inside], which[~inside], bounds, profile),
        thresholds,
    )
    for start, end in bounds:
        raw = raw + _window_sweep(scores[start : end + 1], start, end, profile, thresholds)
    return Sweep(thresholds, raw)


def _false_positive_sweep(
    scores: np.ndarray, weights: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """The summed false-positive cost at each threshold: the weights of every row outside
    the windows whose score reaches it."""
    order = np.argsort(scores, kind="stable")
    ascending = scores[order]
    tail = np.concatenate([[0.0], np.cumsum(weights[order][::-1])])
    reaching = ascending.size - np.searchsorted(ascending, thresholds, side="left")
    return tail[reaching]


def _window_sweep(
    scores: np.ndarray, start: int, end: int, profile: Profile, thresholds: np.ndarray
) -> np.ndarray:
    """One window's contribution at each threshold: the worth of its earliest row whose
    score reaches the threshold, or `-A_FN` when none does."""
    running = np.maximum.accumulate(scores)
    first = np.searchsorted(running, thresholds, side="left")
    worth = _true_positive_weights(np.arange(start, end + 1), start, end, profile)
    return np.append(worth, -profile.fn)[first]


def best_threshold(result: Sweep) -> tuple[float, float]:
    """The threshold with the highest raw score and that score; among equal scores the
    highest threshold, as NAB's optimiser keeps the first of its descending sweep."""
    best = int(np.argmax(result.raw))
    return float(result.thresholds[best]), float(result.raw[best])


NULL = "null"
PERFECT = "perfect"
GAUSSIAN = "windowed Gaussian"
REFERENCE_DETECTORS = (NULL, PERFECT, GAUSSIAN)
"""NAB's reference detectors as `evaluate_detectors` names them."""


@dataclass(frozen=True)
class DetectorRun:
    """One detector under one profile: its score, the detection times it was scored on,
    and the threshold NAB's sweep chose for it (None for a detector that gives times
    rather than scores; `inf` when the best is never to fire)."""

    detector: str
    score: NabScore
    detections: np.ndarray
    threshold: float | None


def at_best_threshold(
    detector: str, scores: np.ndarray, series: Series, profile: Profile
) -> DetectorRun:
    """A score series as NAB runs it: detections at the threshold its sweep finds best
    for `profile` on this very series (in-sample), and their score."""
    result = sweep(scores, series.windows, series.timestamps, profile)
    threshold, _ = best_threshold(result)
    detections = detections_at(scores, threshold, series.timestamps)
    return DetectorRun(
        detector,
        score(detections, series.windows, series.timestamps, profile),
        detections,
        threshold,
    )


def scored_times(
    detector: str,
    detections: Sequence[datetime | np.datetime64 | str] | np.ndarray,
    series: Series,
    profile: Profile,
) -> DetectorRun:
    """Detection times (alerts) scored as they are: nothing to sweep."""
    times = as_datetime64(detections)
    return DetectorRun(
        detector, score(times, series.windows, series.timestamps, profile), times, None
    )


def evaluate_detectors(
    series: Series,
    alerts: Mapping[str, Sequence[datetime | np.datetime64 | str] | np.ndarray] | None = None,
    profiles: Sequence[Profile] = tuple(PROFILES.values()),
) -> list[DetectorRun]:
    """NAB's null, perfect and windowed Gaussian detectors on `series` under each of
    `profiles`, and beside them each named set of `alerts` (alert times, e.g. the
    platform's alerts on the replayed series), profile by profile: what the evaluation
    asset reports. The null and the Gaussian run at their swept thresholds."""
    gaussian = windowed_gaussian(series.values)
    null = null_scores(series.values.size)
    perfect = perfect_detections(series.windows, series.timestamps)
    runs = []
    for profile in profiles:
        runs += [
            at_best_threshold(NULL, null, series, profile),
            scored_times(PERFECT, perfect, series, profile),
            at_best_threshold(GAUSSIAN, gaussian, series, profile),
        ]
        runs += [
            scored_times(name, times, series, profile) for name, times in (alerts or {}).items()
        ]
    return runs
