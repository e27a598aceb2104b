"""Collaborative filtering for the shop: implicit-feedback ALS over weighted interactions,
judged on the next day against recommending what is popular, and served with NumPy alone.

Training. A user's interactions with a product (`lakehouse.features.ecommerce`: views,
cart adds and orders, weighted and summed) become the confidence that the user likes it,
Hu, Koren and Volinsky's `1 + ALPHA * log(1 + weight)`: the log keeps a product viewed
forty times from drowning out everything else the user did. `implicit`'s CPU ALS
factorises the user x product confidence matrix (`ALSParams`, defaults `DEFAULT_PARAMS`).

Evaluation is on time, as the model will be used: over the `recommendation_history_days`
ending `as_of`, every day before `as_of` trains and `as_of` is held out. The users judged
are those active on both sides; the relevant products of each are those they interacted
with on the held-out day and not before (recommending what a user already saw is excluded
for every recommender, so re-finding it would be no skill). The model's top 10 and the
popularity baseline's (`BASELINE`: the products with the most distinct users over the
training days, minus the user's own) are scored on precision@10, recall@10 and catalogue
coverage. Distinct users, not summed weight: on order lines summed weight is the line
count, which favours the items a few customers reorder, a baseline that is easy to beat.
The served model is then refitted on every day, the held-out one included: tomorrow's
recommendations should know about today, and the refit changes nothing but the data (same
code, same hyperparameters), so the figures measured a moment before stand for it.

Serving. The artifact holds the factors, each user's already-seen products and the
distinct-user popularity, as `.npy` arrays in a deterministic zip. `load_recommender`
gives a `Recommender` that answers with a matrix-vector product and `argpartition` (about 0.3 ms
for 20,000 products, no `implicit` import); a user the model has not met is folded in
from their weighted events by the closed-form least-squares solve ALS makes for every user
(`Recommender.fold_in`); a user without any known product gets the popular products.

From a notebook (docs/models.md): `Recommender.fit(weigh_events(events), ALSParams(...))`,
then `recommend_many(user_ids)` for an Arrow table of every user's top k in the
interactions' own ids.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import (
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    USER_RECOMMENDATIONS,
)
from lakehouse.delta import current_versions
from lakehouse.features.ecommerce import WEIGHTS, interaction_events, silver_events, weigh_events
from lakehouse.models import plots
from lakehouse.models.registry import ModelVersion, champion, load_artifact
from lakehouse.models.trained import TrainedModel, zip_artifact
from lakehouse.settings import Settings
from lakehouse.transforms.tables import Guard, replace_day

MODEL_NAME = "recommender_als"
INPUTS = (SILVER_CLICKSTREAM, SILVER_CART_EVENTS, SILVER_PURCHASES)
TOP_K = 10
PROMOTION_METRIC = "precision_at_10"
ALPHA = 10.0
"""Confidence per unit of log-weight: a single view is 1 + 10 ln 2 = 7.9 times as sure as
an unobserved pair (which ALS treats as a weak "not interested", confidence 1)."""
BASELINE = "popularity (distinct users)"
"""The baseline every evaluation reports: products ranked by how many users chose them."""


@dataclass(frozen=True)
class ALSParams:
    """ALS hyperparameters, one object for both engines (`implicit` here, MLlib in
    `recommender_spark`), so a fit can be given other values without touching the module.

    The defaults were chosen on generated shops of 1,000 to 20,000 users: per-user
    histories are thin (a few dozen interactions), so ALS needs strong regularization (at
    0.1 it stayed below the popularity baseline; above about 200 it collapses onto
    popularity), and 64 factors fitted noise (precision fell by a tenth on 20,000 users)
    where 32 lost nothing anywhere."""

    factors: int = 32
    regularization: float = 100.0
    iterations: int = 15
    random_state: int = 7
    num_threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        """The values by name, as `implicit` takes them and the registry records them."""
        return asdict(self)


DEFAULT_PARAMS = ALSParams()
"""What the daily asset trains with."""
_BLOCK_USERS = 1024
"""Users scored per matrix product in batch: 1,024 x 20,000 products is 80 MB of scores."""
Unknown = Literal["popular", "omit"]
"""What `Recommender.recommend_many` does with users the model has not met."""

Recommendations = list[tuple[int, float]]
"""(product_id, score) pairs, best first."""
UserIds = np.ndarray | pa.Array | pa.ChunkedArray | Sequence[int]
"""User ids as a notebook holds them: a NumPy or Arrow array, or a list."""
RANKED = pa.schema(
    [
        pa.field("user_id", pa.int64()),
        pa.field("rank", pa.int64()),
        pa.field("product_id", pa.int64()),
        pa.field("score", pa.float64()),
    ]
)
"""`Recommender.recommend_many`'s rows: each user's top k, rank 1 the best."""


def confidence(weight: np.ndarray) -> np.ndarray:
    """ALS confidence of summed interaction weights: `1 + ALPHA * log(1 + weight)`."""
    return (1.0 + ALPHA * np.log1p(weight)).astype(np.float32)


@dataclass
class Recommender:
    """What the recommendation service loads: factors, seen products and popularity.

    Users and products are addressed by id; rows of `user_factors` follow the sorted
    `user_ids`, rows of `item_factors` the sorted `item_ids`. `seen_indptr` and
    `seen_indices` are the CSR structure of the training matrix: the item indices each
    user interacted with, never recommended to them again.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popularity: np.ndarray
    regularization: float
    _gram: np.ndarray = field(init=False, repr=False)
    _by_popularity: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        items = self.item_factors.astype(np.float64)
        self._gram = items.T @ items + self.regularization * np.eye(items.shape[1])
        self._by_popularity = np.argsort(-self.popularity, kind="stable")

    @classmethod
    def fit(cls, interactions: pa.Table, params: ALSParams = DEFAULT_PARAMS) -> Recommender:
        """ALS (`implicit`, CPU) on weighted interactions (`user_id`, `product_id`, `weight`:
        `weigh_events` of raw events): the daily asset's very fit, for a notebook, with
        hyperparameters passed in rather than edited in the module."""
        return fit_recommender(interactions, params)[0]

    def recommend_many(
        self, user_ids: UserIds, k: int = TOP_K, unknown: Unknown = "popular"
    ) -> pa.Table:
        """Every given user's `k` best unseen products in one Arrow table (`RANKED`, in the
        ids the model was fitted on, rows in the order of `user_ids`), scored in blocks of
        users with one matrix product each: thousands of users take one call, not a loop.

        A user the model has not met gets the popular products with their distinct-user
        counts as scores (not comparable with the factor scores) under `unknown="popular"`,
        and no rows under `"omit"`."""
        if unknown not in ("popular", "omit"):
            raise ValueError(f"unknown must be 'popular' or 'omit', not {unknown!r}")
        ids = np.asarray(user_ids, dtype=np.int64)
        rows = self.user_rows(ids)
        if unknown == "omit":
            ids, rows = ids[rows >= 0], rows[rows >= 0]
        known = rows >= 0
        top = np.empty((ids.size, k), dtype=np.int64)
        scores = np.empty((ids.size, k), dtype=np.float64)
        top[known], scores[known] = self.top_items(rows[known], k)
        top[~known], scores[~known] = self._popular_slots(k)
        return self._ranked(ids, top, scores)

    def recommend(
        self, user_id: int, k: int = TOP_K, exclude: Iterable[int] = ()
    ) -> Recommendations:
        """The `k` best products for a known user, minus those they already interacted
        with and `exclude`; the popular ones for a user the model has not met."""
        row = int(self.user_rows(np.array([user_id]))[0])
        if row < 0:
            return self.popular(k, exclude)
        skip = np.concatenate([self._seen(row), self._item_indices(exclude)])
        return self._best(self.item_factors @ self.user_factors[row], k, skip)

    def recommend_for_vector(
        self, interactions: pa.Table, k: int = TOP_K, exclude: Iterable[int] = ()
    ) -> Recommendations:
        """The `k` best products for a user given only their weighted interactions
        (`product_id`, `weight`: `weigh_events` of their recent events), minus those
        products and `exclude`; the popular ones if none of the products is known."""
        products = interactions["product_id"].to_numpy()
        factor = self.fold_in(products, interactions["weight"].to_numpy())
        excluded = [*products.tolist(), *exclude]
        if factor is None:
            return self.popular(k, excluded)
        return self._best(self.item_factors @ factor, k, self._item_indices(excluded))

    def fold_in(
        self, product_ids: np.ndarray, weights: np.ndarray, prior: np.ndarray | None = None
    ) -> np.ndarray | None:
        """A user factor from weighted interactions, holding the item factors fixed: the
        least-squares solve ALS makes for each user in training,
        `(YtY + Yt(C - I)Y + reg I) x = Yt C p`, over the known products (None if none).

        With a `prior` (the user's trained factor), the pull that the regulariser and the
        unobserved products exert (`YtY + reg I`) is centred on the prior instead of zero:
        `+ (YtY + reg I) prior` on the right. No interactions give back the prior exactly,
        and each new one pulls the factor its way by as much as its confidence says, as
        it would have in training."""
        indices = self.item_indices(product_ids)
        known = indices >= 0
        if not known.any():
            return None if prior is None else prior
        factors = self.item_factors[indices[known]].astype(np.float64)
        sure = confidence(weights[known]).astype(np.float64)
        system = self._gram + (factors.T * (sure - 1.0)) @ factors
        target = factors.T @ sure
        if prior is not None:
            target = target + self._gram @ prior.astype(np.float64)
        return np.linalg.solve(system, target).astype(np.float32)

    def recommend_with_session(
        self,
        user_id: int,
        product_ids: np.ndarray,
        weights: np.ndarray,
        k: int = TOP_K,
        exclude: Iterable[int] = (),
    ) -> Recommendations | None:
        """The `k` best products for a user given their session's weighted products (the
        online features), folded into their trained factor when the model knows them;
        minus what they already interacted with (in training and in the session) and
        `exclude`. None when nothing about the user is known to the model."""
        row = int(self.user_rows(np.array([user_id]))[0])
        prior = self.user_factors[row] if row >= 0 else None
        factor = self.fold_in(product_ids, weights, prior)
        if factor is None:
            return None
        seen = self._seen(row) if row >= 0 else np.empty(0, dtype=np.int64)
        excluded = self._item_indices([*product_ids.tolist(), *exclude])
        return self._best(self.item_factors @ factor, k, np.concatenate([seen, excluded]))

    def popular(self, k: int = TOP_K, exclude: Iterable[int] = ()) -> Recommendations:
        """The `k` products with the most distinct users over the training days, minus
        `exclude` (scores: those counts)."""
        skip = set(exclude)
        picked = []
        for index in self._by_popularity:
            product = int(self.item_ids[index])
            if product not in skip:
                picked.append((product, float(self.popularity[index])))
                if len(picked) == k:
                    break
        return picked

    def top_items(
        self, rows: np.ndarray, k: int = TOP_K, *, popularity: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best `k` item indices and scores (best first) for each user row, minus the
        user's seen items, by the factors or, with `popularity`, by distinct users alone.
        Scored in blocks of users; -1 marks a slot left empty (too few unseen items)."""
        items = np.empty((rows.size, k), dtype=np.int64)
        scores = np.empty((rows.size, k), dtype=np.float64)
        for start in range(0, rows.size, _BLOCK_USERS):
            block = rows[start : start + _BLOCK_USERS]
            if popularity:
                matrix = np.tile(self.popularity.astype(np.float32), (block.size, 1))
            else:
                matrix = self.user_factors[block] @ self.item_factors.T
            which, where = self._seen_cells(block)
            matrix[which, where] = -np.inf
            top, values = top_k(matrix, k)
            items[start : start + block.size] = top
            scores[start : start + block.size] = values
        return items, scores

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """The row of each user id, -1 for users the model has not met."""
        return _positions(self.user_ids, user_ids)

    def item_indices(self, product_ids: np.ndarray) -> np.ndarray:
        """The index of each product id, -1 for products the model has not met."""
        return _positions(self.item_ids, product_ids)

    def seen_keys(self) -> np.ndarray:
        """Every (user row, item index) pair of the training matrix as `row * items +
        item`: a flat key for set operations."""
        rows = np.repeat(np.arange(self.user_ids.size), np.diff(self.seen_indptr))
        return rows * self.item_ids.size + self.seen_indices

    def to_bytes(self) -> bytes:
        """The artifact: each array as `.npy` in a deterministic zip, with `meta.json`."""
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        files = {f"{name}.npy": _npy(array) for name, array in arrays.items()}
        meta = {"regularization": self.regularization, "alpha": ALPHA, "weights": WEIGHTS}
        return zip_artifact({**files, "meta.json": json.dumps(meta, sort_keys=True).encode()})

    def _seen(self, row: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def _seen_cells(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `rows`, item index) of every seen item of the given users."""
        starts, counts = self.seen_indptr[rows], np.diff(self.seen_indptr)[rows]
        which = np.repeat(np.arange(rows.size), counts)
        offsets = np.arange(which.size) - np.repeat(np.cumsum(counts) - counts, counts)
        return which, self.seen_indices[np.repeat(starts, counts) + offsets]

    def _item_indices(self, product_ids: Iterable[int]) -> np.ndarray:
        indices = self.item_indices(np.fromiter(product_ids, dtype=np.int64))
        return indices[indices >= 0]

    def _popular_slots(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`popular(k)` as one row of item indices and scores (-1, -inf when too few)."""
        best = self._by_popularity[:k]
        top = np.full(k, -1, dtype=np.int64)
        scores = np.full(k, -np.inf)
        top[: best.size], scores[: best.size] = best, self.popularity[best]
        return top, scores

    def _ranked(self, ids: np.ndarray, top: np.ndarray, scores: np.ndarray) -> pa.Table:
        """`RANKED` rows of each user's filled slots (-1 marks an empty one)."""
        k = top.shape[1]
        filled = (top >= 0).ravel()
        return pa.table(
            {
                "user_id": np.repeat(ids, k)[filled],
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), ids.size)[filled],
                "product_id": self.item_ids[top.ravel()[filled]],
                "score": scores.ravel()[filled],
            },
            schema=RANKED,
        )

    def _best(self, scores: np.ndarray, k: int, skip: np.ndarray) -> Recommendations:
        scores[skip] = -np.inf
        top, values = top_k(scores[None, :], k)
        return [
            (int(self.item_ids[i]), float(v))
            for i, v in zip(top[0], values[0], strict=True)
            if i >= 0
        ]


_ARRAYS = (
    "user_ids",
    "item_ids",
    "user_factors",
    "item_factors",
    "seen_indptr",
    "seen_indices",
    "popularity",
)


def load_recommender(artifact: bytes) -> Recommender:
    """The `Recommender` stored in an artifact (`Recommender.to_bytes`)."""
    with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
        arrays = {
            name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
            for name in _ARRAYS
        }
        meta = json.loads(archive.read("meta.json"))
    if meta["weights"] != WEIGHTS or meta["alpha"] != ALPHA:
        raise ValueError(
            "the model was trained on other interaction weights or confidence than this code "
            f"uses ({meta['weights']}, alpha {meta['alpha']}); retrain it"
        )
    return Recommender(**arrays, regularization=float(meta["regularization"]))


@dataclass(frozen=True)
class InteractionMatrix:
    """Weighted interactions indexed for ALS: users and products by dense index (rows and
    columns follow the sorted ids), the confidence matrix in CSR form and the summed
    weights. Both engines fit from it, so they learn from the very same matrix."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    matrix: Any  # scipy.sparse.csr_matrix of `confidence(weights)`, indices sorted

    def distinct_users(self) -> np.ndarray:
        """Each item's number of distinct users (the matrix's cells, one per user and item
        however many rows made it), in `item_ids` order: the fair popularity's score."""
        return np.bincount(self.matrix.indices, minlength=self.item_ids.size).astype(np.float64)

    def recommender(
        self, user_factors: np.ndarray, item_factors: np.ndarray, regularization: float
    ) -> Recommender:
        """The `Recommender` of fitted factors (rows in `user_ids` / `item_ids` order),
        with this matrix's seen products and its popularity (`distinct_users`)."""
        return Recommender(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
            item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
            seen_indptr=self.matrix.indptr.astype(np.int64),
            seen_indices=self.matrix.indices.astype(np.int32),
            popularity=self.distinct_users(),
            regularization=regularization,
        )


def interaction_matrix(interactions: pa.Table) -> InteractionMatrix:
    """Index weighted interactions (`INTERACTIONS` rows) for ALS."""
    from scipy.sparse import csr_matrix

    if interactions.num_rows == 0:
        raise ValueError("no interactions to learn from")
    user_ids, rows = np.unique(interactions["user_id"].to_numpy(), return_inverse=True)
    item_ids, cols = np.unique(interactions["product_id"].to_numpy(), return_inverse=True)
    weights = interactions["weight"].to_numpy()
    matrix = csr_matrix((confidence(weights), (rows, cols)), shape=(user_ids.size, item_ids.size))
    matrix.sort_indices()
    return InteractionMatrix(user_ids, item_ids, rows, cols, weights, matrix)


def fit_recommender(
    interactions: pa.Table, params: ALSParams = DEFAULT_PARAMS
) -> tuple[Recommender, float]:
    """ALS with `params` on weighted interactions (`INTERACTIONS` rows); returns the
    recommender and the wall time of the fit alone. BLAS runs single-threaded meanwhile,
    as `implicit` asks: its own threads already split the users, and nested pools thrash."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    indexed = interaction_matrix(interactions)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(**params.as_dict(), alpha=1.0, dtype=np.float32)
        started = time.perf_counter()
        model.fit(indexed.matrix, show_progress=False)
        seconds = time.perf_counter() - started
    recommender = indexed.recommender(
        model.user_factors, model.item_factors, params.regularization
    )
    return recommender, seconds


Fit = Callable[[pa.Table], tuple[Recommender, float]]
"""An engine's ALS fit: weighted interactions in, the recommender and the fit's seconds out."""


@dataclass(frozen=True)
class Engine:
    """Where ALS is fitted: its name, its fit, and the hyperparameters it records."""

    name: str
    fit: Fit
    hyperparameters: dict[str, Any]


LOCAL = Engine("local", fit_recommender, DEFAULT_PARAMS.as_dict())
"""`implicit` in the calling process (`LAKEHOUSE_ENGINE=local`)."""


@dataclass(frozen=True)
class Evaluation:
    """Top-k figures over the users judged: means per user, coverage over the catalogue."""

    precision: float
    recall: float
    coverage: float
    users: int


class Ranker(Protocol):
    """What `evaluate` needs of a model: its ids, its training matrix's (user, item) keys
    and each user's top k unseen items. `Recommender` is one; any other recommender (the
    Online Retail candidates of `retail_evaluation`) that ranks the same way is judged by
    the very same code."""

    item_ids: np.ndarray

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray: ...

    def item_indices(self, product_ids: np.ndarray) -> np.ndarray: ...

    def seen_keys(self) -> np.ndarray: ...

    def top_items(
        self, rows: np.ndarray, k: int = TOP_K, *, popularity: bool = False
    ) -> tuple[np.ndarray, np.ndarray]: ...


def evaluate(
    recommender: Ranker, heldout: pa.Table, k: int = TOP_K, *, popularity: bool = False
) -> Evaluation:
    """Precision@k, recall@k and coverage of `recommender` (or, with `popularity`, of
    `BASELINE`: its products by distinct users) on held-out interactions, for the users it
    knows with at least one product new to them.

    Held-out products the model has never met stay relevant (no recommender could find
    them, and pretending they do not exist would flatter both)."""
    rows = recommender.user_rows(heldout["user_id"].to_numpy())
    items = recommender.item_indices(heldout["product_id"].to_numpy())
    n_items = recommender.item_ids.size
    keys = rows * n_items + items
    seen = (items >= 0) & np.isin(keys, recommender.seen_keys())
    relevant = (rows >= 0) & ~seen
    judged, relevant_count = np.unique(rows[relevant], return_counts=True)
    if judged.size == 0:
        raise ValueError("no held-out user has a product new to them: nothing to evaluate")
    top, _ = recommender.top_items(judged, k, popularity=popularity)
    found = (top >= 0) & np.isin(judged[:, None] * n_items + top, keys[relevant & (items >= 0)])
    hits = found.sum(axis=1)
    return Evaluation(
        precision=float(np.mean(hits / k)),
        recall=float(np.mean(hits / relevant_count)),
        coverage=float(np.unique(top[top >= 0]).size / n_items),
        users=int(judged.size),
    )


def batch_recommendations(
    recommender: Recommender, as_of: date, model_version: int, k: int = TOP_K
) -> pa.Table:
    """The top `k` unseen products of every user of the model (`USER_RECOMMENDATIONS`),
    scored in blocks of users: the service's fallback when its online path is down."""
    ranked = recommender.recommend_many(recommender.user_ids, k)
    return pa.table(
        {
            "event_date": pa.repeat(pa.scalar(as_of, pa.date32()), ranked.num_rows),
            **{name: ranked[name] for name in RANKED.names},
            "model_version": pa.repeat(pa.scalar(model_version, pa.int64()), ranked.num_rows),
        },
        schema=USER_RECOMMENDATIONS.schema,
    )


@dataclass(frozen=True)
class Holdout:
    """ALS and the popularity baseline (`BASELINE`) judged on the interactions after a cut."""

    als: Evaluation
    popularity: Evaluation
    train_interactions: int
    heldout_interactions: int
    fit_seconds: float


def compare_on_holdout(events: pa.Table, cut: datetime, fit: Fit = fit_recommender) -> Holdout:
    """Fit ALS (with `fit`: an engine's, or `partial(fit_recommender, params=...)`) on the
    `INTERACTION_EVENTS` rows before `cut` and judge it, and `BASELINE`, on the rows from
    `cut` on: the time-based split of every evaluation, generated or real. `cut` must be
    time-zone aware: a naive one would silently be read as UTC."""
    if cut.tzinfo is None or cut.utcoffset() is None:
        raise ValueError(
            f"the cut {cut.isoformat()} has no time zone; give an aware datetime, "
            "e.g. datetime(2011, 11, 9, tzinfo=UTC)"
        )
    before = pc.less(events["event_time"], pa.scalar(cut, events["event_time"].type))
    train = weigh_events(events.filter(before))
    heldout = weigh_events(events.filter(pc.invert(before)))
    model, seconds = fit(train)
    return Holdout(
        als=evaluate(model, heldout),
        popularity=evaluate(model, heldout, popularity=True),
        train_interactions=train.num_rows,
        heldout_interactions=heldout.num_rows,
        fit_seconds=seconds,
    )


def build_user_recommendations_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Replace `models.user_recommendations` for `day` with the champion's batch top 10
    (the promoted version, not merely the newest: the services serve the champion), once
    `guard` (the quality gate) has accepted the rows."""
    current = champion(settings, MODEL_NAME)
    if current is None:
        raise ValueError(f"no promoted {MODEL_NAME} in the registry yet: train it first")
    served = load_recommender(load_artifact(settings, current))
    rows = batch_recommendations(served, day, current.version)
    replace_day(settings, USER_RECOMMENDATIONS, rows, day, guard)
    return rows


def train_recommender(settings: Settings, as_of: date, engine: Engine = LOCAL) -> TrainedModel:
    """Fit on the history before `as_of`, judge on `as_of` against popularity, refit on
    the whole history (on `engine`); return the model to serve with its figures."""
    first = as_of - timedelta(days=settings.recommendation_history_days - 1)
    events = interaction_events(*silver_events(settings, first, as_of))
    holdout = compare_on_holdout(events, _midnight(as_of), engine.fit)
    judged = {"ALS": holdout.als, BASELINE: holdout.popularity}
    served, seconds = engine.fit(weigh_events(events))
    als, baseline = judged["ALS"], judged[BASELINE]
    metrics = {
        "precision_at_10": als.precision,
        "recall_at_10": als.recall,
        "coverage": als.coverage,
        "popularity_precision_at_10": baseline.precision,
        "popularity_recall_at_10": baseline.recall,
        "popularity_coverage": baseline.coverage,
        "lift_over_popularity": (
            als.precision / baseline.precision if baseline.precision > 0 else float("inf")
        ),
        "evaluated_users": float(als.users),
        "train_interactions": float(holdout.train_interactions),
        "heldout_interactions": float(holdout.heldout_interactions),
        "users": float(served.user_ids.size),
        "products": float(served.item_ids.size),
        "evaluation_fit_seconds": holdout.fit_seconds,
        "fit_seconds": seconds,
    }
    return TrainedModel(
        name=MODEL_NAME,
        artifact=served.to_bytes(),
        params={
            "engine": engine.name,
            **engine.hyperparameters,
            "baseline": BASELINE,
            "alpha": ALPHA,
            "confidence": "1 + alpha * ln(1 + weight)",
            "weights": WEIGHTS,
            "k": TOP_K,
            "history_days": settings.recommendation_history_days,
            "first_day": str(first),
            "heldout_day": str(as_of),
        },
        metrics=metrics,
        promotion_metric=PROMOTION_METRIC,
        seconds=seconds,
        charts=_charts(judged),
        tables={f"ALS vs {BASELINE} (held-out day)": _comparison(judged)},
    )


def rescore(settings: Settings, champion: ModelVersion, as_of: date) -> float | None:
    """A registered model's precision@10 on the held-out day `as_of` (to compare it with a
    new version on the same day; it judges the users it knows, against what it saw), or
    None when the served model was refit on that day already (it is its own answer key)."""
    if date.fromisoformat(champion.params["heldout_day"]) >= as_of:
        return None
    recommender = load_recommender(load_artifact(settings, champion))
    heldout = weigh_events(interaction_events(*silver_events(settings, as_of, as_of)))
    return evaluate(recommender, heldout).precision


def training_data_versions(settings: Settings) -> dict[str, int]:
    """The Delta version of each input silver table now (what a model trained now learns
    from, recorded in the registry)."""
    return current_versions(INPUTS, settings)


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(sorted_ids, ids)
    clipped = np.minimum(positions, sorted_ids.size - 1)
    return np.where(sorted_ids[clipped] == ids, clipped, -1)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of each row's `k` largest finite scores, largest first
    (-1 and -inf fill the slots of rows with fewer)."""
    k_kept = min(k, scores.shape[1])
    part = np.argpartition(scores, -k_kept, axis=1)[:, -k_kept:]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    top = np.full((scores.shape[0], k), -1, dtype=np.int64)
    best = np.full((scores.shape[0], k), -np.inf)
    top[:, :k_kept] = np.take_along_axis(part, order, axis=1)
    best[:, :k_kept] = np.take_along_axis(values, order, axis=1)
    top[~np.isfinite(best)] = -1
    return top, best


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _comparison(judged: dict[str, Evaluation]) -> list[dict[str, Any]]:
    return [
        {"metric": name, **{who: getattr(result, attribute) for who, result in judged.items()}}
        for name, attribute in (
            ("precision_at_10", "precision"),
            ("recall_at_10", "recall"),
            ("coverage", "coverage"),
        )
    ]


def _charts(judged: dict[str, Evaluation]) -> dict[str, bytes]:
    als, baseline = judged["ALS"], judged[BASELINE]
    return {
        "precision and recall at 10": plots.bars(
            {
                "ALS P@10": als.precision,
                "popular P@10": baseline.precision,
                "ALS R@10": als.recall,
                "popular R@10": baseline.recall,
            },
            "Held-out day, users seen before",
            "mean per user",
        ),
        "catalogue coverage": plots.bars(
            {"ALS": als.coverage, "popular": baseline.coverage},
            "Products in any top 10 (held-out users)",
            "share of the catalogue",
        ),
    }
