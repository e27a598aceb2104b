"""Which recommender to trust on real shoppers: ALS against the other well-known
implicit-feedback models on UCI Online Retail, chosen on validation, reported on test.

Split (`monthly_splits`), by invoice time, never shuffled: the test month is the last
month of the data (by default the month before the last invoice's day), the validation
month the month before it. Validation fits on everything before the validation month and
judges each customer's new items in it (items they had not bought before the month);
test fits on everything before the test month (train and validation) and judges each
customer's new items in the test month. Test-month events never reach any fit that
chooses anything.

Candidates, each with a small grid judged on validation precision@10:

- ALS (`implicit`, the daily asset's own fit and confidence weighting): factors,
  regularization, iterations;
- item-kNN (`implicit.nearest_neighbours`, cosine and BM25 item-item similarity): K;
- BPR (`implicit`'s CPU Bayesian personalised ranking): factors, learning rate;
- EASE (Steck 2019, closed form): lambda, one dense item x item inverse (3,624 items
  before Online Retail's test month: a 3,624 x 3,624 float64 inverse, 105 MB);
- the fair popularity baseline (`BASELINE`: items by distinct buyers before the cut).

Every candidate is scored by one matrix product per block of users, loses the items the
user already bought before the cut (the same mask for all), and is judged by the
project's `evaluate` (precision@10, recall@10, coverage). The champion is the candidate
with the best validation precision@10; every candidate's chosen settings are then refit
once on train + validation and judged once on the test month, for information only.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.features.ecommerce import weigh_events
from lakehouse.models import plots
from lakehouse.models.recommender import (
    BASELINE,
    TOP_K,
    ALSParams,
    Evaluation,
    InteractionMatrix,
    evaluate,
    fit_recommender,
    interaction_matrix,
    top_k,
)

Scorer = Callable[[np.ndarray], np.ndarray]
"""A fitted candidate: training-matrix user rows in, their dense item scores out."""
_BLOCK_USERS = 1024
"""Users scored per matrix product: 1,024 x 3,624 items is 30 MB of float64 scores."""
SEED = 7


@dataclass(frozen=True)
class Split:
    """The events a fit learns from and the month it is judged on."""

    fit: pa.Table
    judged: pa.Table
    start: datetime
    """The first instant judged (events before it fit, events from it to `end` judge)."""
    end: datetime | None
    """The first instant no longer judged; None: to the end of the data."""


@dataclass(frozen=True)
class MonthlySplits:
    """Validation (chooses) and test (reports) months, the validation month first."""

    validation: Split
    test: Split


def month_before(day: date) -> date:
    """The same day a calendar month earlier (the month's last day where it is shorter):
    month boundaries a reader can check against the invoices' dates."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    last = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
    return date(year, month, min(day.day, last))


def monthly_splits(events: pa.Table, test_start: date | None = None) -> MonthlySplits:
    """Split `INTERACTION_EVENTS` rows into a validation month and the test month after
    it (`test_start`, by default a month before the last event's day), each judged
    against everything before it: the time-based protocol of the module docstring."""
    if events.num_rows == 0:
        raise ValueError("no events to split")
    last = pc.max(events["event_time"]).as_py().date()
    test_day = test_start or month_before(last)
    test_cut = _midnight(test_day)
    validation_cut = _midnight(month_before(test_day))
    return MonthlySplits(
        validation=Split(
            fit=_between(events, None, validation_cut),
            judged=_between(events, validation_cut, test_cut),
            start=validation_cut,
            end=test_cut,
        ),
        test=Split(
            fit=_between(events, None, test_cut),
            judged=_between(events, test_cut, None),
            start=test_cut,
            end=None,
        ),
    )


@dataclass
class ScoredModel:
    """Any fitted candidate as `evaluate` takes it (`Ranker`): the training matrix (its
    ids, and the items each user already bought, never recommended again) and a scorer.
    With `popularity`, `top_items` ranks by distinct buyers instead (`BASELINE`)."""

    matrix: InteractionMatrix
    score: Scorer

    @property
    def item_ids(self) -> np.ndarray:
        """The training matrix's product ids, in column order."""
        return self.matrix.item_ids

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """The row of each user id, -1 for users the fit has not met."""
        return _positions(self.matrix.user_ids, user_ids)

    def item_indices(self, product_ids: np.ndarray) -> np.ndarray:
        """The column of each product id, -1 for products the fit has not met."""
        return _positions(self.matrix.item_ids, product_ids)

    def seen_keys(self) -> np.ndarray:
        """Every bought (row, column) pair as `row * items + column`."""
        return self.matrix.rows * self.matrix.item_ids.size + self.matrix.cols

    def top_items(
        self, rows: np.ndarray, k: int = TOP_K, *, popularity: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's `k` best unseen columns and scores, best first, one matrix product
        per block of users (-1: a slot left empty)."""
        items = np.empty((rows.size, k), dtype=np.int64)
        scores = np.empty((rows.size, k), dtype=np.float64)
        for start in range(0, rows.size, _BLOCK_USERS):
            block = rows[start : start + _BLOCK_USERS]
            matrix = self._popular(block.size) if popularity else self.score(block)
            matrix = np.array(matrix, dtype=np.float64)
            which, where = self.matrix.matrix[block].nonzero()
            matrix[which, where] = -np.inf
            top, values = top_k(matrix, k)
            items[start : start + block.size] = top
            scores[start : start + block.size] = values
        return items, scores

    def _popular(self, users: int) -> np.ndarray:
        return np.tile(self.matrix.distinct_users(), (users, 1))


def bought(matrix: InteractionMatrix) -> Any:
    """The user x item 0/1 matrix (CSR float32) that BPR, item-kNN and EASE learn from:
    they model who bought what, not how many lines."""
    binary = matrix.matrix.astype(np.float32, copy=True)
    binary.data[:] = 1.0
    return binary


def ease_weights(binary: Any, lam: float) -> np.ndarray:
    """EASE's item x item weights in closed form (Steck 2019): `P = (XᵀX + λI)⁻¹`,
    `B = I - P diag(1 / diag P)`, so `B_ij = -P_ij / P_jj` off the diagonal and 0 on it."""
    gram = np.asarray((binary.T @ binary).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


CandidateFit = Callable[[pa.Table, InteractionMatrix], Scorer]
"""A candidate's fit: weighted interactions and their matrix in, a scorer out."""


def fit_als(params: ALSParams) -> CandidateFit:
    """ALS as the daily asset fits it (confidence-weighted, `fit_recommender`)."""

    def fit(interactions: pa.Table, _matrix: InteractionMatrix) -> Scorer:
        model, _ = fit_recommender(interactions, params)
        return lambda rows: model.user_factors[rows] @ model.item_factors.T

    return fit


def fit_item_knn(similarity: str, neighbours: int) -> CandidateFit:
    """Item-kNN from `implicit` ("cosine" or "bm25" item-item similarity, `neighbours`
    kept per item): a user's score is the sum of similarities to what they bought."""

    def fit(_interactions: pa.Table, matrix: InteractionMatrix) -> Scorer:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        from implicit.utils import ParameterWarning

        kinds = {"cosine": CosineRecommender, "bm25": BM25Recommender}
        binary = bought(matrix)
        model = kinds[similarity](K=neighbours, num_threads=2)
        with warnings.catch_warnings():
            # implicit's own cosine and BM25 weighting hand its item-item fit a COO matrix,
            # which it then warns about converting to CSR: nothing we pass in, nothing to fix.
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(binary, show_progress=False)
        return lambda rows: (binary[rows] @ model.similarity).toarray()

    return fit


def fit_bpr(factors: int, learning_rate: float) -> CandidateFit:
    """BPR from `implicit` (CPU, seeded, one thread: its parallel SGD is not
    reproducible) on who bought what; its item factors carry the item bias, its user
    factors a matching column of ones."""

    def fit(_interactions: pa.Table, matrix: InteractionMatrix) -> Scorer:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=factors, learning_rate=learning_rate, random_state=SEED, num_threads=1
        )
        model.fit(bought(matrix), show_progress=False)
        return lambda rows: model.user_factors[rows] @ model.item_factors.T

    return fit


def fit_ease(lam: float) -> CandidateFit:
    """EASE with L2 weight `lam`: scores are the bought-items row times `ease_weights`."""

    def fit(_interactions: pa.Table, matrix: InteractionMatrix) -> Scorer:
        binary = bought(matrix)
        weights = ease_weights(binary, lam)
        return lambda rows: binary[rows] @ weights

    return fit


def fit_popularity(_interactions: pa.Table, matrix: InteractionMatrix) -> Scorer:
    """The fair baseline: every user gets the items with the most distinct buyers."""
    counts = matrix.distinct_users()
    return lambda rows: np.tile(counts, (rows.size, 1))


@dataclass(frozen=True)
class Candidate:
    """One model family with one setting of its grid."""

    family: str
    settings: dict[str, Any]
    fit: CandidateFit


def default_grid() -> list[Candidate]:
    """The grids searched on validation, small enough that the whole evaluation of
    Online Retail runs in about a minute on two cores."""
    als = [
        Candidate("ALS", {"factors": f, "regularization": r, "iterations": i},
                  fit_als(ALSParams(factors=f, regularization=r, iterations=i)))
        for f in (32, 64) for r in (10.0, 100.0) for i in (15, 30)
    ]  # fmt: skip
    knn = [
        Candidate("item-kNN", {"similarity": s, "K": k}, fit_item_knn(s, k))
        for s in ("cosine", "bm25") for k in (20, 100, 500)
    ]  # fmt: skip
    bpr = [
        Candidate("BPR", {"factors": f, "learning_rate": lr}, fit_bpr(f, lr))
        for f in (32, 64) for lr in (0.005, 0.01)
    ]  # fmt: skip
    ease = [Candidate("EASE", {"lambda": lam}, fit_ease(lam)) for lam in (100, 300, 1000)]
    return [*als, *knn, *bpr, *ease, Candidate(BASELINE, {}, fit_popularity)]


@dataclass(frozen=True)
class Trial:
    """A candidate judged on one split, with the seconds its fit took."""

    candidate: Candidate
    evaluation: Evaluation
    fit_seconds: float


@dataclass(frozen=True)
class Prepared:
    """A split weighed and indexed once, shared by every candidate judged on it."""

    interactions: pa.Table
    matrix: InteractionMatrix
    heldout: pa.Table


def prepare(split: Split) -> Prepared:
    """Weigh and index `split.fit`, weigh `split.judged`: the same inputs for all."""
    interactions = weigh_events(split.fit)
    return Prepared(interactions, interaction_matrix(interactions), weigh_events(split.judged))


def judge(candidate: Candidate, prepared: Prepared) -> Trial:
    """Fit `candidate` on the split's past and judge it on the new items of its month."""
    started = time.perf_counter()
    scorer = candidate.fit(prepared.interactions, prepared.matrix)
    seconds = time.perf_counter() - started
    evaluation = evaluate(ScoredModel(prepared.matrix, scorer), prepared.heldout)
    return Trial(candidate, evaluation, seconds)


def best_per_family(trials: Sequence[Trial]) -> dict[str, Trial]:
    """Each family's trial with the highest precision@10 (the first of equals, in grid
    order): the settings validation chooses."""
    best: dict[str, Trial] = {}
    for trial in trials:
        family = trial.candidate.family
        if family not in best or trial.evaluation.precision > best[family].evaluation.precision:
            best[family] = trial
    return best


def champion_family(validation: dict[str, Trial]) -> str:
    """The family whose validation precision@10 is highest: only validation figures
    are looked at, so the test month stays unseen by every choice."""
    return max(validation, key=lambda family: validation[family].evaluation.precision)


@dataclass(frozen=True)
class FamilyResult:
    """A family's validation-chosen settings with its validation and test figures."""

    family: str
    settings: dict[str, Any]
    validation: Evaluation
    test: Evaluation
    fit_seconds: float


@dataclass(frozen=True)
class RetailEvaluation:
    """Every family's figures, the champion, every validation trial and the split."""

    families: list[FamilyResult]
    champion: str
    trials: list[Trial]
    validation_start: datetime
    test_start: datetime

    def result(self, family: str) -> FamilyResult:
        """The figures of `family`."""
        return next(result for result in self.families if result.family == family)

    def ratio_over_popularity(self, family: str, split: str = "test") -> float:
        """`family`'s precision@10 over the popularity baseline's on `split`."""
        mine = getattr(self.result(family), split).precision
        baseline = getattr(self.result(BASELINE), split).precision
        return mine / baseline if baseline > 0 else float("inf")


def evaluate_candidates(
    events: pa.Table,
    candidates: Sequence[Candidate] | None = None,
    test_start: date | None = None,
) -> RetailEvaluation:
    """Judge every candidate on validation, keep each family's best settings, pick the
    champion on validation precision@10, then refit each family's chosen settings on
    everything before the test month and judge it once on the test month."""
    splits = monthly_splits(events, test_start)
    validation, test = prepare(splits.validation), prepare(splits.test)
    trials = [judge(candidate, validation) for candidate in candidates or default_grid()]
    chosen = best_per_family(trials)
    families = []
    for family, trial in chosen.items():
        tested = judge(trial.candidate, test)
        families.append(
            FamilyResult(
                family=family,
                settings=trial.candidate.settings,
                validation=trial.evaluation,
                test=tested.evaluation,
                fit_seconds=tested.fit_seconds,
            )
        )
    return RetailEvaluation(
        families=families,
        champion=champion_family(chosen),
        trials=trials,
        validation_start=splits.validation.start,
        test_start=splits.test.start,
    )


def comparison_rows(result: RetailEvaluation) -> list[dict[str, Any]]:
    """One row per family: chosen settings, validation and test figures, test ratio over
    popularity; what the asset's table and the benchmark print."""
    return [
        {
            "candidate": family.family,
            "champion": family.family == result.champion,
            "settings": ", ".join(f"{k}={v}" for k, v in family.settings.items()) or "-",
            "validation_precision_at_10": family.validation.precision,
            "validation_recall_at_10": family.validation.recall,
            "validation_coverage": family.validation.coverage,
            "test_precision_at_10": family.test.precision,
            "test_recall_at_10": family.test.recall,
            "test_coverage": family.test.coverage,
            "test_over_popularity": result.ratio_over_popularity(family.family),
            "validation_users": family.validation.users,
            "test_users": family.test.users,
            "test_fit_seconds": family.fit_seconds,
        }
        for family in result.families
    ]


def _between(events: pa.Table, start: datetime | None, end: datetime | None) -> pa.Table:
    times = events["event_time"]
    keep = pa.array(np.ones(events.num_rows, dtype=bool))
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(times, pa.scalar(start, times.type)))
    if end is not None:
        keep = pc.and_(keep, pc.less(times, pa.scalar(end, times.type)))
    return events.filter(keep)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(sorted_ids, ids)
    clipped = np.minimum(positions, sorted_ids.size - 1)
    return np.where(sorted_ids[clipped] == ids, clipped, -1)


def charts(result: RetailEvaluation) -> dict[str, bytes]:
    """Precision@10 of every family on validation (what chose) and on test (what is
    reported), as PNG bars for the asset's metadata."""
    return {
        f"{split} precision@10 per candidate": plots.bars(
            {family.family: getattr(family, split).precision for family in result.families},
            f"Online Retail, {split} month: new items per customer",
            "precision@10 (mean per customer)",
        )
        for split in ("validation", "test")
    }
