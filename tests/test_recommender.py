"""The recommender on six generated days: ALS at least doubles the popularity baseline on
the held-out day, its artifact serves the very recommendations it was trained to give,
the batch top 10 never repeats what a user saw, and the service's path from a user's raw
events gives the batch weights and implicit's own fold-in.

The shop is the generator's with a flatter popularity (Zipf exponent 0.5, not the default
1.1): under the default, the best possible recommender (the generator's own probabilities
per user) is only about 1.5 times as precise as popularity, so no model could show the
issue's bar there; here that ceiling is near 3x and ALS reached about 2.4x (against the
summed-weight popularity of before issue 17; the bar now holds against popularity by
distinct users). The same code is also held to the bar on real shoppers (UCI Online
Retail), the last test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.ecommerce.models import recommender_model, user_recommendations
from assets.resources import platform_resources
from lakehouse.catalog import USER_RECOMMENDATIONS
from lakehouse.features.ecommerce import (
    interaction_events,
    interactions,
    silver_events,
    weigh_events,
)
from lakehouse.models import recommender
from lakehouse.models.real_data import online_retail
from lakehouse.models.recommender import (
    BASELINE,
    INPUTS,
    Recommender,
    batch_recommendations,
    compare_on_holdout,
    confidence,
    load_recommender,
    rescore,
    train_recommender,
    training_data_versions,
)
from lakehouse.models.registry import champion, load_artifact, register
from lakehouse.models.trained import TrainedModel
from lakehouse.query import run_query
from lakehouse.settings import Settings
from quality.suites import suite_for
from quality.validate import validate
from tests.support.shop import FIRST, LAST, shared_shop


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Six days of 1,500 shoppers and 2,000 products (80,000 events a day) in silver."""
    return shared_shop(tmp_path_factory, "recommender")


@pytest.fixture(scope="module")
def trained(lake: Settings) -> tuple[TrainedModel, pa.Table]:
    return train_recommender(lake, LAST)


@pytest.fixture(scope="module")
def served(trained: TrainedModel) -> Recommender:
    return load_recommender(trained.artifact)


@pytest.fixture(scope="module")
def batch(served: Recommender) -> pa.Table:
    return batch_recommendations(served, LAST, model_version=7)


@pytest.fixture(scope="module")
def history(lake: Settings) -> pa.Table:
    """Every user's weighted interactions over the six days (what the served model saw)."""
    return interactions(lake, FIRST, LAST)


def test_weights_add_up_per_user_and_product_and_ignore_what_does_not_count() -> None:
    at = [datetime(2026, 3, 2, 10, minute, tzinfo=UTC) for minute in range(8)]
    clickstream = pa.table(
        {
            "user_id": [1, 1, 1, 2],
            "product_id": [10, 10, None, 10],
            "event_type": ["product_view", "product_view", "page_view", "product_view"],
            "event_time": at[:4],
        }
    )
    cart_events = pa.table(
        {
            "user_id": [1, 1],
            "product_id": [10, 10],
            "action": ["add", "remove"],
            "event_time": at[4:6],
        }
    )
    purchases = pa.table({"user_id": [1], "product_id": [10], "event_time": at[6:7]})

    weighed = weigh_events(interaction_events(clickstream, cart_events, purchases))

    assert weighed.to_pylist() == [
        {"user_id": 1, "product_id": 10, "weight": 16.0, "last_at": at[6]},
        {"user_id": 2, "product_id": 10, "weight": 1.0, "last_at": at[3]},
    ]


def test_als_at_least_doubles_the_popularity_baseline(
    trained: TrainedModel,
) -> None:
    model = trained
    metrics = model.metrics
    assert metrics["evaluated_users"] >= 1_000
    assert metrics["precision_at_10"] >= 0.08
    assert metrics["precision_at_10"] >= 2 * metrics["popularity_precision_at_10"]
    assert metrics["recall_at_10"] > 2 * metrics["popularity_recall_at_10"]
    assert metrics["coverage"] >= 5 * metrics["popularity_coverage"]
    assert metrics["lift_over_popularity"] == pytest.approx(
        metrics["precision_at_10"] / metrics["popularity_precision_at_10"]
    )
    assert model.promotion_metric == "precision_at_10"
    assert model.params["heldout_day"] == str(LAST)
    assert 0 < model.seconds == metrics["fit_seconds"]
    assert set(model.charts) == {"precision and recall at 10", "catalogue coverage"}
    assert all(png.startswith(b"\x89PNG") for png in model.charts.values())
    assert model.params["baseline"] == BASELINE == "popularity (distinct users)"
    assert [row["metric"] for row in model.tables[f"ALS vs {BASELINE} (held-out day)"]] == [
        "precision_at_10",
        "recall_at_10",
        "coverage",
    ]


def test_the_artifact_serves_exactly_what_the_batch_recommends(
    trained: TrainedModel, served: Recommender, batch: pa.Table
) -> None:
    assert served.to_bytes() == trained.artifact
    for user in served.user_ids[::150]:
        rows = batch.filter(pc.field("user_id") == user).sort_by("rank")
        online = served.recommend(int(user))
        assert [product for product, _ in online] == rows["product_id"].to_pylist()
        np.testing.assert_allclose(
            [score for _, score in online], rows["score"].to_numpy(), rtol=1e-5
        )


def test_the_batch_gives_every_user_ten_distinct_products_they_never_saw(
    batch: pa.Table, served: Recommender, history: pa.Table
) -> None:
    assert batch.schema == USER_RECOMMENDATIONS.schema
    assert set(batch["model_version"].to_pylist()) == {7}
    assert batch.num_rows == 10 * served.user_ids.size
    assert set(batch["event_date"].to_pylist()) == {LAST}
    per_user = batch.group_by("user_id").aggregate(
        [("product_id", "count_distinct"), ("rank", "min"), ("rank", "max")]
    )
    assert set(per_user["product_id_count_distinct"].to_pylist()) == {10}
    assert set(per_user["rank_min"].to_pylist()) == {1}
    assert set(per_user["rank_max"].to_pylist()) == {10}
    assert sorted(per_user["user_id"].to_pylist()) == served.user_ids.tolist()
    already_seen = batch.join(history, ["user_id", "product_id"], join_type="inner")
    assert already_seen.num_rows == 0


def test_a_users_raw_events_weigh_as_in_the_batch_and_fold_in_as_implicit_does(
    lake: Settings, served: Recommender, history: pa.Table
) -> None:
    """No training/serving skew: the service's vector from one user's raw events is the
    batch's, and folding it in is implicit's own least-squares solve for that user."""
    from implicit.cpu.als import AlternatingLeastSquares
    from scipy.sparse import csr_matrix

    raw = silver_events(lake, FIRST, LAST)
    als = AlternatingLeastSquares(
        factors=served.item_factors.shape[1], regularization=served.regularization
    )
    als.user_factors, als.item_factors = served.user_factors, served.item_factors
    for user in served.user_ids[::250]:
        own = [table.filter(pc.field("user_id") == user) for table in raw]
        vector = weigh_events(interaction_events(*own))
        assert vector.equals(history.filter(pc.field("user_id") == user))

        weights = vector["weight"].to_numpy()
        items = served.item_indices(vector["product_id"].to_numpy())
        row = csr_matrix(
            (confidence(weights), (np.zeros(items.size, dtype=np.int64), items)),
            shape=(1, served.item_ids.size),
        )
        np.testing.assert_allclose(
            served.fold_in(vector["product_id"].to_numpy(), weights),
            als.recalculate_user(0, row),
            rtol=1e-3,
            atol=1e-4,
        )
        folded = served.recommend_for_vector(vector)
        assert len(folded) == 10
        assert not {product for product, _ in folded} & set(vector["product_id"].to_pylist())


def test_unknown_users_and_products_fall_back_to_the_products_with_most_users(
    served: Recommender, history: pa.Table
) -> None:
    users = history.group_by("product_id").aggregate([("user_id", "count_distinct")])
    ranked = users.sort_by([("user_id_count_distinct", "descending"), ("product_id", "ascending")])
    top = ranked["product_id"].to_pylist()[:12]

    unknown = served.recommend(10**9)
    assert [product for product, _ in unknown] == top[:10]
    assert [p for p, _ in served.recommend(10**9, exclude=top[:2])] == top[2:12]
    strangers = pa.table({"product_id": [10**9], "weight": [4.0]})
    assert served.recommend_for_vector(strangers) == unknown


def test_the_registry_compares_a_new_version_with_yesterdays_on_the_same_day(
    lake: Settings, trained: TrainedModel
) -> None:
    yesterday = train_recommender(lake, LAST - timedelta(days=1))
    versions = training_data_versions(lake)
    assert set(versions) == {table.key for table in INPUTS}
    first = register(
        lake,
        recommender.MODEL_NAME,
        yesterday.artifact,
        params=yesterday.params,
        metrics=yesterday.metrics,
        training_data=versions,
        promotion_metric=yesterday.promotion_metric,
    )
    today = trained
    second = register(
        lake,
        recommender.MODEL_NAME,
        today.artifact,
        params=today.params,
        metrics=today.metrics,
        training_data=versions,
        promotion_metric=today.promotion_metric,
        rescore_champion=lambda champion: rescore(lake, champion, LAST),
    )
    assert first.promoted and second.champion_version == first.version
    assert "on the same held-out data" in second.decision
    assert 0 < rescore(lake, first, LAST) < 1


def test_the_assets_register_a_model_and_write_the_champions_top_10(lake: Settings) -> None:
    """Runs last in this module: the registry already holds versions from the test above,
    so the table must carry the champion's version, not the newest one's."""
    resources = platform_resources(lake.lakehouse_root)
    run = dg.materialize(
        [recommender_model, user_recommendations],
        partition_key=LAST.isoformat(),
        resources=resources,
    )
    assert run.success
    model = run.asset_materializations_for_node("models__recommender_als")[0].metadata
    assert model["precision_at_10"].value >= 2 * model["popularity_precision_at_10"].value
    assert "base64," in model["chart: precision and recall at 10"].value
    current = champion(lake, recommender.MODEL_NAME)
    assert model["promoted"].value is (model["model_version"].value == current.version)
    table = run.asset_materializations_for_node("models__user_recommendations")[0].metadata
    assert table["model_version"].value == current.version
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(
        [check.name for check in suite_for(USER_RECOMMENDATIONS).checks], True
    )

    stored = run_query(
        lake,
        "SELECT count(DISTINCT user_id) AS users, count(*) AS rows, "
        "min(model_version) AS lo, max(model_version) AS hi "
        f"FROM models.user_recommendations WHERE event_date = DATE '{LAST}'",
    ).to_pylist()[0]
    served = load_recommender(load_artifact(lake, current))
    assert stored == {
        "users": served.user_ids.size,
        "rows": 10 * served.user_ids.size,
        "lo": current.version,
        "hi": current.version,
    }


def test_on_real_shoppers_als_more_than_doubles_popularity() -> None:
    """UCI Online Retail (../shared/data/real): fit on the orders before 9 November 2011,
    judge on the last month's. The generated shop's popularity is steeper (see the module
    docstring); real baskets carry the item-level taste collaborative filtering needs."""
    events = online_retail().events
    assert events.num_rows > 390_000
    holdout = compare_on_holdout(events, datetime(2011, 11, 9, tzinfo=UTC))
    assert holdout.als.users > 1_000
    assert holdout.als.precision >= 2 * holdout.popularity.precision
    assert holdout.als.recall >= 2 * holdout.popularity.recall
    assert holdout.als.coverage > 5 * holdout.popularity.coverage


def test_a_batch_with_a_repeated_product_is_refused_by_its_quality_check(
    lake: Settings, batch: pa.Table
) -> None:
    suite = suite_for(USER_RECOMMENDATIONS)
    clean = {o.check.name: o.passed for o in validate(suite, batch, LAST, lake)}
    assert all(clean.values()), clean
    repeated = batch.set_column(
        batch.schema.get_field_index("product_id"),
        "product_id",
        pc.if_else(
            pc.equal(batch["rank"], 2),
            batch["product_id"].take(pa.array(np.maximum(np.arange(batch.num_rows) - 1, 0))),
            batch["product_id"],
        ),
    )
    broken = {o.check.name: o.passed for o in validate(suite, repeated, LAST, lake)}
    assert broken["products_distinct_per_user"] is False
    assert broken["key_unique"] is True
