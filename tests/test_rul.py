"""The remaining-useful-life mode on NASA C-MAPSS FD001: metrics, labels and features on
hand-computed rows, the loader and its errors on small files, the split by engine, and a
training on a slice of the real files that must beat the constant baseline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xgboost

from lakehouse.models.rul import (
    COLUMNS,
    CYCLE_SCHEMA,
    FD001_FILES,
    PUBLISHED_RMSE,
    RUL_CAP,
    SENSOR_COLUMNS,
    evaluate_rul,
    feature_names,
    informative_sensors,
    last_cycles,
    load_fd001,
    matrix,
    nasa_score,
    read_cycles,
    read_fd001,
    rmse,
    rul_features,
    rul_labels,
    rul_metrics,
    unit_split,
)
from lakehouse.settings import Settings


def _cycles(units: list[int], cycles: list[int], sensor_2: list[float] | None = None) -> pa.Table:
    """A per-cycle table with the given units and cycles, sensor_2 as given, zeros elsewhere."""
    columns = {name: [0.0] * len(units) for name in COLUMNS[2:]}
    if sensor_2 is not None:
        columns["sensor_2"] = sensor_2
    return pa.table({"unit": units, "cycle": cycles, **columns}).cast(CYCLE_SCHEMA)


def test_rmse_and_nasa_score_on_hand_computed_errors() -> None:
    predicted, true = np.array([10.0, 20.0, 30.0]), np.array([23.0, 20.0, 20.0])
    # d = -13 (early: exp(13/13) - 1), 0 (nothing), 10 (late: exp(10/10) - 1)
    assert nasa_score(predicted, true) == pytest.approx(2 * (math.e - 1))
    assert rmse(predicted, true) == pytest.approx(math.sqrt((169 + 0 + 100) / 3))
    # late costs more than early by the same amount
    assert nasa_score(np.array([15.0]), np.array([10.0])) > nasa_score(
        np.array([5.0]), np.array([10.0])
    )


def test_metrics_capped_and_as_given() -> None:
    metrics = rul_metrics("m", np.array([125.0, 100.0]), np.array([130.0, 100.0]))
    assert metrics["m_rmse"] == pytest.approx(math.sqrt(25 / 2))
    assert metrics["m_nasa_score"] == pytest.approx(math.exp(5 / 13) - 1)
    assert metrics["m_rmse_capped"] == 0.0
    assert metrics["m_nasa_score_capped"] == 0.0


def test_labels_count_cycles_to_the_last_and_are_capped() -> None:
    units = [1, 1, 1] + [2] * 130
    cycles = [1, 2, 3, *range(1, 131)]
    labels = rul_labels(_cycles(units, cycles))
    assert labels[:3].tolist() == [2, 1, 0]
    unit_2 = labels[3:]
    assert unit_2[:5].tolist() == [RUL_CAP] * 5  # 129..125 cycles left, capped
    assert unit_2[5] == 124
    assert unit_2[-1] == 0


def test_features_by_hand_and_never_from_later_cycles() -> None:
    table = _cycles([1, 1, 1, 1, 1, 2, 2], [1, 2, 3, 4, 5, 1, 2], [1.0, 2.0, 4.0, 8.0, 0.0, 5, 6])
    rows = rul_features(table, ["sensor_2"], window=3).to_pylist()
    assert [row["sensor_2_mean"] for row in rows[:3]] == pytest.approx([1.0, 1.5, 7 / 3])
    # least squares over cycles 1..3 of 1, 2, 4: slope 1.5; a single cycle has none
    assert [row["sensor_2_slope"] for row in rows[:3]] == pytest.approx([0.0, 1.0, 1.5])
    assert rows[3]["sensor_2_mean"] == pytest.approx(14 / 3)  # cycles 2..4 only
    assert rows[5]["sensor_2_mean"] == 5.0  # unit 2 starts afresh

    changed = _cycles(
        [1, 1, 1, 1, 1, 2, 2], [1, 2, 3, 4, 5, 1, 2], [1.0, 2.0, 4.0, 99.0, 0.0, 5, 6]
    )
    after = rul_features(changed, ["sensor_2"], window=3).to_pylist()
    assert after[:3] == rows[:3]  # cycle 4 changed: cycles 1..3 are not
    assert after[3] != rows[3]
    assert after[5:] == rows[5:]


def test_features_ignore_row_order_and_last_cycles_pick_each_unit_end() -> None:
    table = _cycles([2, 1, 1, 2], [2, 2, 1, 1], [6.0, 2.0, 1.0, 5.0])
    rows = rul_features(table, ["sensor_2"], window=3)
    assert rows.select(["unit", "cycle"]).to_pylist() == [
        {"unit": u, "cycle": c} for u, c in [(1, 1), (1, 2), (2, 1), (2, 2)]
    ]
    assert last_cycles(rows)["cycle"].to_pylist() == [2, 2]
    assert last_cycles(rows)["sensor_2_mean"].to_pylist() == [1.5, 5.5]


def _line(unit: int, cycle: int) -> str:
    return " ".join([str(unit), str(cycle)] + [f"{0.5 + i:.2f}" for i in range(24)]) + " "


def _write_fd001(directory: Path, test_lines: list[str] | None = None) -> None:
    train = [_line(u, c) for u in (1, 2) for c in (1, 2, 3)]
    test = test_lines or [_line(1, 1), _line(1, 2), _line(2, 1)]
    (directory / "train_FD001.txt").write_text("\n".join(train) + "\n")
    (directory / "test_FD001.txt").write_text("\n".join(test) + "\n")
    (directory / "RUL_FD001.txt").write_text("112 \n98 \n")


def test_loader_reads_a_small_slice(tmp_path: Path) -> None:
    _write_fd001(tmp_path)
    data = read_fd001(tmp_path)
    assert data.train.schema == CYCLE_SCHEMA
    assert data.train.num_rows == 6 and data.test.num_rows == 3
    assert data.test_rul.tolist() == [112, 98]
    first = data.train.slice(0, 1).to_pylist()[0]
    assert (first["unit"], first["cycle"], first["setting_1"], first["sensor_21"]) == (
        1,
        1,
        0.5,
        23.5,
    )


def test_loader_errors_name_the_file_and_line(tmp_path: Path) -> None:
    _write_fd001(tmp_path, [_line(1, 1), _line(1, 2).rsplit(" ", 2)[0], _line(2, 1)])
    with pytest.raises(ValueError, match=r"test_FD001\.txt, line 2: 25 fields, expected 26"):
        read_fd001(tmp_path)

    path = tmp_path / "bad.txt"
    path.write_text(_line(1, 1) + "\n" + _line(1, 2).replace("1.50", "x1.5", 1) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: not all numbers"):
        read_cycles(path)
    path.write_text(_line(1, 1) + "\n" + _line(1, 2).replace("1.50", "nan", 1) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: not a finite number"):
        read_cycles(path)
    path.write_text(_line(1, 1) + "\n" + _line(1, 0) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt: data line 2 has cycle 0"):
        read_cycles(path)

    _write_fd001(tmp_path, [_line(1, 1), _line(3, 1)])  # units 1 and 3 for two RULs
    with pytest.raises(ValueError, match=r"must be 1\.\.N"):
        read_fd001(tmp_path)


def test_missing_files_name_real_data_dir(tmp_path: Path) -> None:
    (tmp_path / "cmapss").mkdir()
    with pytest.raises(FileNotFoundError, match="REAL_DATA_DIR") as raised:
        load_fd001(Settings(real_data_dir=tmp_path))
    assert all(name in str(raised.value) for name in FD001_FILES)


def test_split_keeps_every_unit_on_one_side() -> None:
    units = np.repeat(np.arange(1, 51), 3)
    train, validation = unit_split(units, share=0.2, seed=3)
    assert not (train & validation).any() and (train | validation).all()
    assert set(units[train]).isdisjoint(units[validation])
    assert len(set(units[validation])) == 10
    assert set(units[validation]) != set(units[unit_split(units, share=0.2, seed=4)[1]])
    with pytest.raises(ValueError, match="cannot leave any to train"):
        unit_split(np.array([1, 1, 2]), share=0.9)


def test_trains_on_a_slice_of_fd001_and_beats_the_constant() -> None:
    """The first 30 training and 30 test engines of the real files, one candidate."""
    data = load_fd001(Settings())
    train = data.train.filter(pc.less_equal(data.train["unit"], 30))
    test = data.test.filter(pc.less_equal(data.test["unit"], 30))
    sensors = informative_sensors(data.train)
    dropped = {f"sensor_{i}" for i in (1, 5, 6, 10, 16, 18, 19)}  # constant on FD001
    assert set(sensors) == set(SENSOR_COLUMNS) - dropped

    report = evaluate_rul(
        train, test, data.test_rul[:30], grid=({"max_depth": 3, "min_child_weight": 1.0},)
    )
    metrics = report.metrics
    assert report.predictions["model"].shape == (30,)
    assert metrics["model_rmse"] < 0.6 * metrics["constant_rmse"]
    assert metrics["model_nasa_score"] < metrics["constant_nasa_score"]
    assert metrics["model_rmse_capped"] <= metrics["model_rmse"] + 5
    published = [row for row in report.comparison if row["source"] == "published"]
    assert [(row["model"], row["rmse"]) for row in published] == sorted(
        PUBLISHED_RMSE, key=lambda item: item[1]
    )
    assert len(report.choice.trials) == 1
    assert report.charts["predicted vs true RUL"].startswith(b"\x89PNG")
    booster = xgboost.Booster(model_file=bytearray(report.model_json))
    test_rows = last_cycles(rul_features(test, sensors))
    np.testing.assert_allclose(
        np.clip(booster.inplace_predict(matrix(test_rows, feature_names(sensors))), 0.0, None),
        report.predictions["model"],
    )
    assert len(feature_names(sensors)) == 1 + 3 * 14
