"""The decision service's explainer gives XGBoost's own approximate contributions: for any
booster of the kind the fraud model is, any rows (missing values and split thresholds
included), and it refuses boosters whose attributions it would not reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.models.fraud import SMALL_BATCH, FraudModel
from lakehouse.models.saabas import SaabasExplainer, Unsupported

FEATURES = 6


def _booster(seed: int, params: dict[str, object], rounds: int = 12) -> xgboost.Booster:
    """A booster trained on noisy data with missing values, the shapes the fraud model
    sees."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(600, FEATURES)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.15] = np.nan
    signal = np.nan_to_num(rows[:, 0]) + np.nan_to_num(rows[:, 1]) * np.nan_to_num(rows[:, 2])
    labels = signal + rng.normal(size=len(rows)) > 1.0
    return xgboost.train({"objective": "binary:logistic", "nthread": 1, "seed": seed, **params},
                         xgboost.DMatrix(rows, labels), rounds)


def _xgboost(booster: xgboost.Booster, rows: np.ndarray) -> np.ndarray:
    return booster.predict(xgboost.DMatrix(rows), pred_contribs=True, approx_contribs=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    depth=st.integers(1, 7),
    base_score=st.floats(0.05, 0.95),
    rounds=st.integers(1, 40),
    missing=st.floats(0.0, 0.6),
)
def test_contributions_equal_xgboosts_for_any_booster_and_rows(
    seed: int, depth: int, base_score: float, rounds: int, missing: float
) -> None:
    booster = _booster(seed, {"max_depth": depth, "base_score": base_score, "eta": 0.3}, rounds)
    rng = np.random.default_rng(seed + 1)
    rows = rng.normal(size=(50, FEATURES)).astype(np.float32) * 2
    rows[rng.random(rows.shape) < missing] = np.nan
    explainer = SaabasExplainer.of(booster)

    ours = explainer.contributions(rows)

    assert ours.dtype == np.float32 and ours.shape == (50, FEATURES + 1)
    np.testing.assert_allclose(ours, _xgboost(booster, rows), atol=2e-5)
    # Their sum is the margin, as XGBoost's are.
    margins = booster.predict(xgboost.DMatrix(rows), output_margin=True)
    np.testing.assert_allclose(ours.sum(axis=1), margins, atol=5e-5)


def test_rows_exactly_at_a_split_threshold_take_xgboosts_side() -> None:
    booster = _booster(3, {"max_depth": 4})
    explainer = SaabasExplainer.of(booster)
    thresholds = booster.trees_to_dataframe().dropna(subset=["Split"])
    rows = np.zeros((len(thresholds), FEATURES), dtype=np.float32)
    for row, (feature, split) in enumerate(zip(thresholds["Feature"], thresholds["Split"],
                                               strict=True)):
        rows[row, int(feature.lstrip("f"))] = np.float32(split)

    np.testing.assert_allclose(explainer.contributions(rows), _xgboost(booster, rows),
                               atol=2e-5)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"booster": "dart", "rate_drop": 0.3}, "only gbtree"),
        ({"objective": "multi:softprob", "num_class": 3}, "several outputs"),
    ],
)
def test_boosters_it_would_not_reproduce_are_refused(params: dict[str, object],
                                                     why: str) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300, FEATURES)).astype(np.float32)
    labels = rng.integers(0, 3 if "num_class" in params else 2, len(rows))
    booster = xgboost.train({"objective": "binary:logistic", "nthread": 1, **params},
                            xgboost.DMatrix(rows, labels), 5)

    with pytest.raises(Unsupported, match=why):
        SaabasExplainer.of(booster)


def test_a_served_model_explains_small_batches_with_the_table_and_large_ones_with_xgboost(
) -> None:
    model = FraudModel(_booster(5, {"max_depth": 5}, rounds=30), threshold=0.5)
    rng = np.random.default_rng(9)
    few = rng.normal(size=(3, FEATURES)).astype(np.float32)
    many = rng.normal(size=(SMALL_BATCH, FEATURES)).astype(np.float32)
    expected_few, expected_many = _xgboost(model.booster, few), _xgboost(model.booster, many)

    model.serve()

    assert model._saabas is not None
    np.testing.assert_allclose(model.matrix_contributions(few, approximate=True), expected_few,
                               atol=2e-5)
    np.testing.assert_array_equal(model.matrix_contributions(many, approximate=True),
                                  expected_many)
