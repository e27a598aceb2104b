"""NAB's scoring (lakehouse.models.nab) on inputs whose scores are worked out by hand from
NAB's formula, its loader on small files, and its windowed Gaussian detector against a
plain record-by-record rendering of NAB's own loop."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lakehouse.models import nab
from lakehouse.settings import Settings

STEP = np.timedelta64(5, "m")
T0 = np.datetime64("2014-01-01T00:00:00", "ns")
ROWS = 200
TIMESTAMPS = T0 + np.arange(ROWS) * STEP
WINDOW = nab.Window(TIMESTAMPS[40], TIMESTAMPS[59])
"""One window of 20 rows, 40 to 59."""
MAX_TP = 2 / (1 + math.exp(-5)) - 1
"""NAB's sigma(-1) = 2 / (1 + e^-5) - 1 = 0.98661."""


def at(*rows: int) -> np.ndarray:
    """The timestamps of the given rows, as detections."""
    return TIMESTAMPS[list(rows)]


def one_window(*rows: int, probation: int = 0) -> nab.NabScore:
    """The standard-profile score of detections on `rows` against the one window."""
    return nab.score(at(*rows), [WINDOW], TIMESTAMPS, nab.STANDARD, probation=probation)


def test_scaled_sigmoid_matches_nabs_curve() -> None:
    """sigma(-1) = 0.98661, sigma(-0.5) = 0.84828, sigma(0) = 0, -1 beyond y = 3."""
    values = nab.scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0, 3.01, 50.0]))
    np.testing.assert_allclose(
        values[:5], [0.98661, 0.84828, 0.0, -0.98661, 2 / (1 + math.exp(15)) - 1], atol=1e-5
    )
    assert values[5] == values[6] == -1.0


def test_detection_at_window_start_scores_a_full_true_positive() -> None:
    """y = -(59 - 40 + 1) / 20 = -1: sigma(-1) / sigma(-1) = exactly A_TP."""
    result = one_window(40)
    assert result.raw == pytest.approx(1.0, abs=1e-12)
    assert result.normalised == pytest.approx(100.0)
    assert (result.true_positives, result.false_positives, result.false_negatives) == (1, 0, 0)
    assert result.windows[0].hit and result.windows[0].first_detection == TIMESTAMPS[40]


def test_detection_in_the_middle_and_at_the_end_of_a_window() -> None:
    """Row 50: y = -(59 - 50 + 1) / 20 = -0.5, worth sigma(-0.5) / sigma(-1) = 0.84828 /
    0.98661 = 0.85979. Row 59, the last: y = -1/20, worth 0.12435 / 0.98661 = 0.12604."""
    middle = (2 / (1 + math.exp(5 * -0.5)) - 1) / MAX_TP
    end = (2 / (1 + math.exp(5 * -0.05)) - 1) / MAX_TP
    assert one_window(50).raw == pytest.approx(middle, abs=1e-12)
    assert middle == pytest.approx(0.85979, abs=1e-5)
    assert one_window(59).raw == pytest.approx(end, abs=1e-12)
    assert end == pytest.approx(0.12604, abs=1e-5)
    assert one_window(50).normalised == pytest.approx(100 * (middle + 1) / 2)


def test_only_the_first_detection_in_a_window_counts() -> None:
    """Later detections in a hit window add nothing and are not false positives."""
    alone = one_window(41)
    crowded = one_window(50, 41, 45, 59)
    assert crowded.raw == pytest.approx(alone.raw, abs=1e-12)
    assert (crowded.true_positives, crowded.false_positives) == (1, 0)
    assert crowded.windows[0].first_detection == TIMESTAMPS[41]


def test_false_positive_right_after_a_window_costs_little() -> None:
    """Row 60, one row past the end: y = (60 - 59) / (20 - 1), cost 0.11 * sigma(1/19)."""
    expected = 0.11 * (2 / (1 + math.exp(5 / 19)) - 1)
    result = one_window(40, 60)
    assert result.false_positive_cost == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(-0.014391, abs=1e-6)
    assert result.raw == pytest.approx(1.0 + expected, abs=1e-12)
    assert (result.true_positives, result.false_positives) == (1, 1)


def test_false_positive_far_after_a_window_or_before_any_costs_full_weight() -> None:
    """Row 117 is (117 - 59) / 19 = 3.05 widths past the window (> 3): -A_FP; so is row 10,
    before any window; row 116 (3.0 widths) still costs 0.11 * sigma(3)."""
    assert one_window(40, 117).false_positive_cost == pytest.approx(-0.11, abs=1e-12)
    assert one_window(40, 10).false_positive_cost == pytest.approx(-0.11, abs=1e-12)
    at_three = 0.11 * (2 / (1 + math.exp(15)) - 1)
    assert one_window(40, 116).false_positive_cost == pytest.approx(at_three, abs=1e-12)


def test_missed_window_costs_a_false_negative() -> None:
    """Two windows, the second missed: 1 - A_FN = 0 raw, half way from null to perfect."""
    second = nab.Window(TIMESTAMPS[120], TIMESTAMPS[139])
    result = nab.score(at(40), [WINDOW, second], TIMESTAMPS, probation=0)
    assert result.raw == pytest.approx(0.0, abs=1e-12)
    assert (result.null, result.perfect) == (-2.0, 2.0)
    assert result.normalised == pytest.approx(50.0)
    assert (result.true_positives, result.false_negatives) == (1, 1)
    assert not result.windows[1].hit and result.windows[1].contribution == -1.0


def test_null_detector_normalises_to_0_and_perfect_to_100() -> None:
    """The reference points of the normalised score, under every profile."""
    windows = [WINDOW, nab.Window(TIMESTAMPS[120], TIMESTAMPS[139])]
    for profile in nab.PROFILES.values():
        null = nab.score(nab.null_detections(), windows, TIMESTAMPS, profile)
        perfect = nab.score(
            nab.perfect_detections(windows, TIMESTAMPS), windows, TIMESTAMPS, profile
        )
        assert null.raw == -profile.fn * 2 and null.normalised == 0.0
        assert perfect.raw == pytest.approx(profile.tp * 2) and perfect.normalised == 100.0


def test_profiles_are_nabs_weights() -> None:
    """Standard A_TP 1, A_FP 0.11, A_FN 1; the low-FP profile doubles A_FP, low-FN A_FN."""
    assert (nab.STANDARD.tp, nab.STANDARD.fp, nab.STANDARD.fn) == (1.0, 0.11, 1.0)
    assert nab.REWARD_LOW_FP.fp == 0.22 and nab.REWARD_LOW_FN.fn == 2.0
    with pytest.raises(AttributeError):
        nab.STANDARD.fp = 0.5  # type: ignore[misc]


def test_probation_detections_between_rows_and_repeats() -> None:
    """NAB's default probation on 200 rows is 30 rows, unscored; a detection between two
    readings belongs to the earlier one; two on one row count once."""
    assert nab.probationary_rows(ROWS) == 30 and nab.probationary_rows(22_695) == 750
    early = nab.score(at(5), [WINDOW], TIMESTAMPS)
    assert early.false_positives == 0 and early.raw == -1.0
    between = nab.score([TIMESTAMPS[40] + np.timedelta64(2, "m")] * 2, [WINDOW], TIMESTAMPS)
    assert between.raw == pytest.approx(1.0) and between.true_positives == 1
    aware = datetime(2014, 1, 1, 3, 20, tzinfo=UTC)
    assert nab.score([aware], [WINDOW], TIMESTAMPS).windows[0].first_detection == TIMESTAMPS[40]


def write_slice(folder: Path, lines: list[str]) -> Path:
    """A NAB-shaped REAL_DATA_DIR with the given data lines and one window."""
    (folder / "nab").mkdir(parents=True)
    (folder / nab.MACHINE_TEMPERATURE).write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    windows = {nab.CORPUS_KEY: [["2013-12-02 21:25:00.000000", "2013-12-02 21:30:00.000000"]]}
    (folder / nab.WINDOWS_FILE).write_text(json.dumps(windows))
    return folder


SLICE = [
    "2013-12-02 21:15:00,73.96732207",
    "2013-12-02 21:20:00,74.93588199999998",
    "2013-12-02 21:25:00,76.12416182",
    "2013-12-02 21:30:00,78.14070732",
    "2013-12-02 21:35:00,79.32983574",
]


def test_loader_reads_a_slice(tmp_path: Path) -> None:
    """Timestamps, values and the window of a small file in NAB's layout."""
    series = nab.load_series(write_slice(tmp_path, SLICE))
    assert series.timestamps[0] == np.datetime64("2013-12-02T21:15:00", "ns")
    np.testing.assert_array_equal(
        series.values[[0, 1, 4]], [73.96732207, 74.93588199999998, 79.32983574]
    )
    assert series.windows == (
        nab.Window(
            np.datetime64("2013-12-02T21:25", "ns"), np.datetime64("2013-12-02T21:30", "ns")
        ),
    )
    np.testing.assert_array_equal(nab.window_rows(series.windows, series.timestamps), [[2, 3]])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("2013-12-02 21:25:00,76.1x", "line 4 is not"),
        ("2013-12-02 25:25:00,76.1", "line 4 is not"),
        ("2013-12-02 21:25:00,76.1,3", "line 4 does not have 2 fields"),
    ],
)
def test_loader_names_the_malformed_line(tmp_path: Path, bad: str, message: str) -> None:
    """A bad number, a bad time or a wrong field count: an error with the file's line."""
    with pytest.raises(ValueError, match=message):
        nab.load_series(write_slice(tmp_path, [*SLICE[:2], bad, *SLICE[3:]]))


def test_loader_names_real_data_dir_when_absent(tmp_path: Path) -> None:
    """A missing data set says which setting points at it."""
    with pytest.raises(FileNotFoundError, match="REAL_DATA_DIR"):
        nab.load_series(tmp_path)


def reference_gaussian(values: np.ndarray, window: int, step: int) -> np.ndarray:
    """NAB's windowed Gaussian as NAB runs it, one record at a time (its handleRecord)."""
    held: list[float] = []
    buffer: list[float] = []
    mean, std, scores = 0.0, 1.0, []
    for value in values:
        score = 0.0
        if held:
            x = 2 * mean - value if value < mean else value
            score = 1 - 0.5 * math.erfc((x - mean) / std / math.sqrt(2))
        if len(held) < window:
            held.append(value)
        else:
            buffer.append(value)
            if len(buffer) < step:
                scores.append(score)
                continue
            held, buffer = held[step:] + buffer, []
        mean, std = float(np.mean(held)), float(np.std(held)) or 1e-6
        scores.append(score)
    return np.array(scores)


def test_windowed_gaussian_equals_nabs_loop() -> None:
    """The batch version against the record-by-record one, growing and sliding window."""
    values = np.random.default_rng(7).normal(50.0, 3.0, 700)
    values[:5] = 50.0
    np.testing.assert_allclose(
        nab.windowed_gaussian(values, window=120, step=7),
        reference_gaussian(values, 120, 7),
        rtol=0,
        atol=1e-9,
    )


def test_windowed_gaussian_flags_an_obvious_spike() -> None:
    """A spike of 20 deviations on a quiet series is the one scored row past a high
    threshold, and the sweep finds it: one detection, on the window's first row. (The
    first rows score near 1 too, their window holding a value or two: NAB's probation.)"""
    rng = np.random.default_rng(3)
    values = 20.0 + rng.normal(0.0, 0.5, ROWS)
    values[150] = 30.0
    scores = nab.windowed_gaussian(values, window=100, step=10)
    scored = nab.probationary_rows(ROWS)
    assert int(np.argmax(scores[scored:])) + scored == 150 and scores[150] > 1 - 1e-12
    window = nab.Window(TIMESTAMPS[150], TIMESTAMPS[169])
    threshold, raw = nab.best_threshold(nab.sweep(scores, [window], TIMESTAMPS))
    detections = nab.detections_at(scores, threshold, TIMESTAMPS)
    np.testing.assert_array_equal(detections[detections >= TIMESTAMPS[scored]], at(150))
    result = nab.score(detections, [window], TIMESTAMPS)
    assert raw == result.raw == pytest.approx(1.0)
    assert (result.true_positives, result.false_positives) == (1, 0)


def sigma(y: float) -> float:
    """NAB's scaled sigmoid, written out: 2 / (1 + e^(5y)) - 1, and -1 beyond y = 3."""
    return -1.0 if y > 3.0 else 2 / (1 + math.exp(5 * y)) - 1


def reference_raw(
    scores: np.ndarray,
    bounds: list[tuple[int, int]],
    threshold: float,
    profile: nab.Profile,
    probation: int,
) -> float:
    """NAB's sweeper, row by row, at one threshold: each row gets its TP or FP worth as
    it is met (window rows by their place in the window, other rows by their distance
    past the last window left), then a window keeps its best detected row or -A_FN and
    every detected row outside the windows adds its cost."""
    window_worth = [-profile.fn] * len(bounds)
    total, last = 0.0, None
    for row, value in enumerate(scores):
        inside = [i for i, (start, end) in enumerate(bounds) if start <= row <= end]
        if inside:
            start, end = bounds[inside[0]]
            worth = sigma(-(end - row + 1) / (end - start + 1)) * profile.tp / sigma(-1.0)
        elif last is None:
            worth = -profile.fp
        else:
            worth = sigma(abs(last[1] - row) / (last[1] - last[0])) * profile.fp
        if row >= probation and value >= threshold:
            if inside:
                window_worth[inside[0]] = max(window_worth[inside[0]], worth)
            else:
                total += worth
        if inside and row == bounds[inside[0]][1]:
            last = bounds[inside[0]]
    return total + sum(window_worth)


def test_score_equals_nabs_sweeper_row_by_row() -> None:
    """`score` against a plain rendering of NAB's sweeper, at every threshold of random
    scores, with detections before, inside, between and after two windows."""
    scores = np.round(np.random.default_rng(5).uniform(0.0, 1.0, ROWS), 2)
    bounds = [(40, 59), (120, 139)]
    windows = [nab.Window(TIMESTAMPS[a], TIMESTAMPS[b]) for a, b in bounds]
    for threshold in np.unique(scores):
        mine = nab.score(
            nab.detections_at(scores, threshold, TIMESTAMPS), windows, TIMESTAMPS, nab.STANDARD
        )
        assert mine.raw == pytest.approx(
            reference_raw(scores, bounds, threshold, nab.STANDARD, 30), abs=1e-12
        )


def test_sweep_agrees_with_scoring_each_threshold() -> None:
    """The batch sweep's raw score at every threshold is `score` of that threshold's
    detections, and the best threshold is the best of them."""
    scores = np.round(np.random.default_rng(11).uniform(0.0, 1.0, ROWS), 2)
    windows = [WINDOW, nab.Window(TIMESTAMPS[120], TIMESTAMPS[139])]
    result = nab.sweep(scores, windows, TIMESTAMPS, nab.REWARD_LOW_FN)
    direct = [
        nab.score(
            nab.detections_at(scores, t, TIMESTAMPS), windows, TIMESTAMPS, nab.REWARD_LOW_FN
        ).raw
        for t in result.thresholds
    ]
    np.testing.assert_allclose(result.raw, direct, rtol=0, atol=1e-12)
    assert nab.best_threshold(result)[1] == pytest.approx(max(direct))


def test_machine_temperature_file_loads_with_its_four_windows() -> None:
    """The real file (beside the repository, as CI has it: missing, it fails loudly):
    22,695 rows, four windows, the repeated hour kept."""
    series = nab.load_series(Settings().real_data_dir)
    assert series.timestamps.size == 22_695 and len(series.windows) == 4
    assert np.unique(series.timestamps).size == 22_695 - 12
    rows = nab.window_rows(series.windows, series.timestamps)
    assert rows[:, 0].min() > nab.probationary_rows(22_695)


def test_bench_scores_references_and_reads_alerts(tmp_path: Path) -> None:
    """`python -m bench.nab`'s pieces on a synthetic series: the null and perfect
    detectors at 0 and 100, the Gaussian in between, alert files read in UTC."""
    from bench.nab.__main__ import read_alerts, reference_scores

    values = 20.0 + np.random.default_rng(3).normal(0.0, 0.5, ROWS)
    values[[60, 150]] = 30.0
    series = nab.Series(TIMESTAMPS, values, (WINDOW, nab.Window(TIMESTAMPS[150], TIMESTAMPS[169])))
    results = reference_scores(series, nab.STANDARD)
    assert results["null"]["score"].normalised == 0.0 and results["null"]["threshold"] == np.inf
    assert results["perfect"]["score"].normalised == 100.0
    assert 0.0 < results["windowed Gaussian"]["score"].normalised < 100.0
    alerts = tmp_path / "alerts.txt"
    alerts.write_text("2014-01-01T03:20:00\n\n2014-01-01 13:30:00+01:00\n")
    np.testing.assert_array_equal(read_alerts(alerts), at(40, 150))


def test_bench_runs_the_alert_detector_over_the_imported_readings(tmp_path: Path) -> None:
    """`python -m bench.nab --detector`: the importer's readings through the processor's
    decoder and detector, each spike one `zscore` alert opened at its reading's time, a
    reading the gateway would quarantine skipped, not fatal."""
    from bench.nab.__main__ import detector_scores

    values = 20.0 + np.random.default_rng(3).normal(0.0, 0.5, ROWS)
    values[[45, 150]] = 30.0
    times = [str(moment)[:19].replace("T", " ") for moment in TIMESTAMPS]
    lines = [f"{moment},{value}" for moment, value in zip(times, values.tolist(), strict=True)]
    lines[100] = "2014-01-01 08:20:00,not a number"
    source = tmp_path / "nab" / "machine_temperature_system_failure.csv"
    source.parent.mkdir()
    source.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    series = nab.Series(TIMESTAMPS, values, (WINDOW,))
    settings = Settings(real_data_dir=tmp_path, lakehouse_root=str(tmp_path / "lake"))
    results = detector_scores(settings, series, nab.STANDARD)
    zscore = results["detector alerts (zscore)"]
    assert zscore["detections"] == 2
    assert zscore["score"].windows[0].first_detection == TIMESTAMPS[45]
    assert zscore["score"].false_positives == 1


def test_windows_that_nab_would_not_score_are_refused() -> None:
    """A window inside the probation, overlapping windows, a window with no row, a
    detection before the series: errors, not a silently different score."""
    inside_probation = nab.Window(TIMESTAMPS[10], TIMESTAMPS[20])
    with pytest.raises(ValueError, match="probationary"):
        nab.score(at(40), [inside_probation], TIMESTAMPS)
    with pytest.raises(ValueError, match="overlap"):
        nab.score(at(40), [WINDOW, nab.Window(TIMESTAMPS[50], TIMESTAMPS[70])], TIMESTAMPS)
    empty = nab.Window(TIMESTAMPS[40] + STEP // 5, TIMESTAMPS[40] + STEP // 2)
    with pytest.raises(ValueError, match="no row"):
        nab.score(at(40), [empty], TIMESTAMPS)
    with pytest.raises(ValueError, match="before the first row"):
        nab.score([T0 - STEP], [WINDOW], TIMESTAMPS)
