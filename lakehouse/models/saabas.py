"""Saabas attributions of an XGBoost booster for a few rows at a time, from a table built
once per leaf.

The decision service explains one to three payments per call. XGBoost's approximate
contributions (`pred_contribs=True, approx_contribs=True`) cost about 300 us per call
whatever the number of rows: a fresh DMatrix, a prediction cache entry, and every tree's
node means recomputed on each call. Yet a row's Saabas attribution depends only on the
leaf it reaches in each tree: the path from the root to that leaf fixes which feature gets
which change of the node mean. So each node's attribution is tabulated once, when the
model is loaded; Treelite's GTIL (the model exchange runtime of XGBoost's own DMLC family,
which reads the booster's JSON) finds the leaves without a DMatrix; and a row's
contributions are the sum of its leaves' rows of the table. Together about 70 us for
three rows, with XGBoost's numbers: `SaabasExplainer.of` compares them with XGBoost's on
probe rows through every branch of the first tree and along random paths through the
whole forest, and refuses to serve otherwise. This is not a second definition of the
model: the trees are the booster's, read from its own JSON, and the attribution is
XGBoost's, checked against it.

Only what the fraud model is handled: numerical splits of a plain `gbtree` with one
output. Anything else raises `Unsupported`, and the caller keeps XGBoost's path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

RANDOM_PROBES = 256
"""Probe rows drawn from the forest's thresholds (see `_probe_rows`)."""
CHECK_TOLERANCE = 1e-4
"""Largest difference from XGBoost's attribution allowed on the probes, in log-odds:
float32 sums over hundreds of trees differ in their last bits, a wrong path by far more."""


class Unsupported(ValueError):
    """A booster whose attributions this table does not reproduce."""


@dataclass(frozen=True)
class SaabasExplainer:
    """XGBoost's approximate contributions of a booster, for small batches."""

    forest: Any  # treelite.Model: finds each row's leaf per tree
    table: np.ndarray  # float64, trees x nodes x (features + bias): reaching that node
    base_margin: float

    @classmethod
    def of(cls, booster: Any) -> SaabasExplainer:
        """The explainer of `booster` (an `xgboost.Booster`), checked against XGBoost's
        own approximate contributions. Raises `Unsupported`."""
        import treelite

        raw = bytes(booster.save_raw("json"))
        model = json.loads(raw)
        boosting = model["learner"]["gradient_booster"]
        if boosting.get("name") != "gbtree":
            raise Unsupported(f"booster {boosting.get('name')!r}: only gbtree is tabulated")
        trees = boosting["model"]["trees"]
        if not trees or any(output != 0 for output in boosting["model"]["tree_info"]):
            raise Unsupported("a booster without trees, or with several outputs")
        features = int(model["learner"]["learner_model_param"]["num_feature"])
        table = np.zeros((len(trees), max(len(t["left_children"]) for t in trees), features + 1))
        for tree, rows in zip(trees, table, strict=True):
            _tabulate(tree, rows, features)
        probes = _probe_rows(trees, features)
        expected = booster.predict(_dmatrix(probes), pred_contribs=True, approx_contribs=True,
                                   validate_features=False)
        # The bias column is the same for every row: the base margin plus each root's mean.
        base_margin = float(expected[0, -1] - table[:, 0, -1].sum())
        explainer = cls(treelite.frontend.from_xgboost_json(raw.decode()), table, base_margin)
        worst = float(np.abs(explainer.contributions(probes) - expected).max())
        if worst > CHECK_TOLERANCE:
            raise Unsupported(f"the table differs from XGBoost's attributions by {worst:.2e}")
        return explainer

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Rows x (features + bias) float32 log-odds contributions of float32 `rows`, as
        XGBoost's `pred_contribs=True, approx_contribs=True` gives them."""
        import treelite

        leaves = treelite.gtil.predict_leaf(self.forest, rows, nthread=1)
        leaves = leaves.reshape(len(rows), self.table.shape[0]).astype(np.intp)
        summed = self.table[np.arange(self.table.shape[0]), leaves].sum(axis=1)
        summed[:, -1] += self.base_margin
        return summed.astype(np.float32)


def _tabulate(tree: dict[str, Any], table: np.ndarray, features: int) -> None:
    """One tree's rows of the table: a node's attribution is its parent's, plus the change
    of node mean credited to the parent's split feature (as XGBoost's
    `CalculateContributionsApprox` walks it); the root holds its mean as bias."""
    if any(kind != 0 for kind in tree["split_type"]):
        raise Unsupported("a categorical split")
    left, right = tree["left_children"], tree["right_children"]
    feature, hessian = tree["split_indices"], tree["sum_hessian"]
    order = [0]  # every parent before its children
    for node in order:
        if left[node] != -1:
            order += [left[node], right[node]]
    means = np.array(tree["split_conditions"], dtype=np.float64)  # a leaf's value
    for node in reversed(order):  # a node's mean: its children's, weighted by hessian
        if left[node] != -1:
            means[node] = (means[left[node]] * hessian[left[node]]
                           + means[right[node]] * hessian[right[node]]) / hessian[node]
    table[0, features] = means[0]
    for node in order:
        if left[node] != -1:
            for child in (left[node], right[node]):
                table[child] = table[node]
                table[child, feature[node]] += means[child] - means[node]


def _probe_rows(trees: list[dict[str, Any]], features: int) -> np.ndarray:
    """Rows through every branch of the first tree (each split's feature just below its
    threshold and at it; all missing; all zero), and `RANDOM_PROBES` rows whose every
    feature is, at random, missing or just below or at one of its thresholds in any tree:
    paths through the whole forest."""
    rows = [np.full(features, np.nan, dtype=np.float32), np.zeros(features, dtype=np.float32)]
    first = trees[0]
    for node, child in enumerate(first["left_children"]):
        if child != -1:
            threshold = np.float32(first["split_conditions"][node])
            for value in (np.nextafter(threshold, np.float32(-np.inf)), threshold):
                row = np.zeros(features, dtype=np.float32)
                row[first["split_indices"][node]] = value
                rows.append(row)
    thresholds: list[list[np.float32]] = [[] for _ in range(features)]
    for tree in trees:
        for node, child in enumerate(tree["left_children"]):
            if child != -1:
                thresholds[tree["split_indices"][node]].append(
                    np.float32(tree["split_conditions"][node]))
    rng = np.random.default_rng(0)
    drawn = np.full((RANDOM_PROBES, features), np.nan, dtype=np.float32)
    for feature, values in enumerate(thresholds):
        if values:
            picked = np.array(values, dtype=np.float32)[rng.integers(len(values),
                                                                     size=RANDOM_PROBES)]
            below = np.nextafter(picked, np.float32(-np.inf))
            drawn[:, feature] = np.where(rng.random(RANDOM_PROBES) < 0.5, below, picked)
            drawn[rng.random(RANDOM_PROBES) < 0.1, feature] = np.nan
    return np.vstack([*rows, drawn])


def _dmatrix(rows: np.ndarray) -> Any:
    import xgboost

    return xgboost.DMatrix(rows, nthread=1)
