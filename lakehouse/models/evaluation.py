"""Held-out evaluation shared by every model: the same metric means the same thing for the
fraud model, the failure model and their baselines, so they can be compared honestly.

Binary scorers are judged the way their operators use them: an alert threshold is chosen
on validation data for a false-positive budget (the fraud seed's 0.1%), then recall,
precision and the false-positive rate are measured at that threshold on test data the
threshold never saw. Ranking metrics (PR-AUC), calibration and lift complete the picture.
scikit-learn computes the curves; only the budgeted threshold is ours, because sklearn
has no "highest-recall threshold under an FPR cap" helper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BinaryEvaluation:
    """How a scorer does on held-out data at its alert threshold and across thresholds."""

    rows: int
    positives: int
    pr_auc: float
    roc_auc: float
    threshold: float
    recall: float
    precision: float
    false_positive_rate: float
    recall_at_budget: float
    brier: float
    expected_calibration_error: float

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat `{prefix}{name}: value` floats, as the registry and Dagster metadata take."""
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()}


def pr_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The area under the precision-recall curve (average precision): the promotion metric
    of the fraud and failure models, and what a champion is re-scored on."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(labels, dtype=bool), scores))


def threshold_for_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold (flag when `score > threshold`) whose false-positive rate on
    these rows is at most `max_fpr`: the most recall the budget allows."""
    negatives = np.sort(np.asarray(scores, dtype=np.float64)[~np.asarray(labels, bool)])[::-1]
    if negatives.size == 0:
        return float(np.min(scores)) - 1.0
    allowed = int(np.floor(max_fpr * negatives.size))
    return float(negatives[allowed]) if allowed < negatives.size else float(negatives[-1]) - 1.0


def evaluate_binary(
    scores: np.ndarray, labels: np.ndarray, threshold: float, max_fpr: float
) -> BinaryEvaluation:
    """Score `scores` against `labels` at `threshold` (chosen elsewhere, on validation).

    `recall_at_budget` is the recall of the best threshold for `max_fpr` on these very
    rows: an upper bound that shows how much the validation-chosen threshold gives away.
    Brier and calibration error are meaningful for probabilities; for a rule count they
    are reported on the count scaled to [0, 1].
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError("held-out data needs both positive and negative rows to be evaluated")
    flagged = scores > threshold
    true_positives = int((flagged & labels).sum())
    budget = threshold_for_fpr(scores, labels, max_fpr)
    probabilities = _unit_scale(scores)
    return BinaryEvaluation(
        rows=int(labels.size),
        positives=int(labels.sum()),
        pr_auc=pr_auc(scores, labels),
        roc_auc=float(roc_auc_score(labels, scores)),
        threshold=float(threshold),
        recall=true_positives / int(labels.sum()),
        precision=true_positives / max(int(flagged.sum()), 1),
        false_positive_rate=int((flagged & ~labels).sum()) / int((~labels).sum()),
        recall_at_budget=float((scores[labels] > budget).mean()),
        brier=float(brier_score_loss(labels, probabilities)),
        expected_calibration_error=expected_calibration_error(probabilities, labels),
    )


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 10) -> float:
    """Mean |predicted - observed| over equal-width probability bins, weighted by rows."""
    table = calibration_table(probabilities, labels, bins)
    total = sum(row["rows"] for row in table)
    return float(sum(row["rows"] * abs(row["predicted"] - row["observed"]) for row in table)
                 / max(total, 1))


def calibration_table(probabilities: np.ndarray, labels: np.ndarray,
                      bins: int = 10) -> list[dict[str, float]]:
    """Per non-empty probability bin: rows, mean predicted probability, observed rate."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(labels, dtype=bool)
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    rows = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=probabilities, minlength=bins)
    observed = np.bincount(which, weights=labels.astype(np.float64), minlength=bins)
    return [
        {"bin": float(b), "rows": float(rows[b]), "predicted": predicted[b] / rows[b],
         "observed": observed[b] / rows[b]}
        for b in range(bins) if rows[b]
    ]


def lift_table(scores: np.ndarray, labels: np.ndarray, groups: int = 10) -> list[dict[str, float]]:
    """Rows ranked by score and cut into `groups` equal groups (deciles by default): each
    group's positive rate over the overall rate, and the share of positives caught so far."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked = np.asarray(labels, dtype=bool)[order]
    overall = max(ranked.mean(), 1e-12)
    caught = 0
    table = []
    for index, part in enumerate(np.array_split(ranked, groups)):
        caught += int(part.sum())
        table.append({
            "group": float(index + 1),
            "lift": float(part.mean() / overall) if part.size else 0.0,
            "cumulative_recall": caught / max(int(ranked.sum()), 1),
        })
    return table


def _unit_scale(scores: np.ndarray) -> np.ndarray:
    """Probabilities as they are; any other score (a rule count) min-max scaled to [0, 1]."""
    if scores.size and scores.min() >= 0.0 and scores.max() <= 1.0:
        return scores
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
