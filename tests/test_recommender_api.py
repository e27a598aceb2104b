"""The recommender as a data scientist uses it from a notebook: the real data found from any
folder, hyperparameters passed in, every user's top k in one call and in the original ids,
the stock codes of Online Retail's product ids, and a naive cut refused."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakehouse
from lakehouse.models.real_data import STOCK_CODES, online_retail
from lakehouse.models.recommender import (
    DEFAULT_PARAMS,
    RANKED,
    ALSParams,
    Recommender,
    compare_on_holdout,
)
from lakehouse.settings import Settings

QUICK = ALSParams(factors=4, regularization=1.0, iterations=3)


@pytest.fixture(scope="module")
def shop() -> pa.Table:
    """80 users (ids 1000, 1003, ...) with 6 of 30 products (ids 500, 507, ...) each, and
    a product only user 1000 took, forty times: the most weighted, the least popular."""
    generator = np.random.default_rng(3)
    users = np.repeat(1000 + 3 * np.arange(80), 6)
    products = np.concatenate([generator.choice(30, 6, replace=False) for _ in range(80)])
    weights = generator.integers(1, 5, users.size).astype(np.float64)
    return pa.table(
        {
            "user_id": np.append(users, 1000),
            "product_id": 500 + 7 * np.append(products, 30),
            "weight": np.append(weights, 40.0),
        }
    )


@pytest.fixture(scope="module")
def model(shop: pa.Table) -> Recommender:
    return Recommender.fit(shop, QUICK)


def test_the_real_data_folder_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REAL_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    beside = Path(lakehouse.__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    assert Settings().real_data_dir == beside
    monkeypatch.setenv("REAL_DATA_DIR", str(tmp_path))
    assert Settings().real_data_dir == tmp_path


def test_parameters_are_one_frozen_object_whose_defaults_are_the_asset_s() -> None:
    assert DEFAULT_PARAMS.as_dict() == {
        "factors": 32,
        "regularization": 100.0,
        "iterations": 15,
        "random_state": 7,
        "num_threads": 2,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PARAMS.factors = 8  # type: ignore[misc]


def test_fit_takes_the_parameters_it_is_given(model: Recommender, shop: pa.Table) -> None:
    assert model.user_factors.shape == (80, QUICK.factors)
    assert model.regularization == QUICK.regularization
    again = Recommender.fit(shop, QUICK)
    np.testing.assert_allclose(again.item_factors, model.item_factors, rtol=1e-5)


def test_popularity_counts_distinct_users_not_weight(model: Recommender, shop: pa.Table) -> None:
    users = shop.group_by("product_id").aggregate([("user_id", "count_distinct")])
    ranked = users.sort_by([("user_id_count_distinct", "descending"), ("product_id", "ascending")])
    assert [p for p, _ in model.popular(5)] == ranked["product_id"].to_pylist()[:5]
    assert model.popularity[model.item_indices(np.array([500 + 7 * 30]))[0]] == 1.0


def test_recommend_many_gives_every_user_s_top_k_in_one_table_in_original_ids(
    model: Recommender,
) -> None:
    asked = np.array([1009, 1000, 1234567, 1003])
    table = model.recommend_many(asked, k=5)

    assert table.schema == RANKED
    assert table["user_id"].to_pylist() == np.repeat(asked, 5).tolist()
    assert table["rank"].to_pylist() == [1, 2, 3, 4, 5] * 4
    for user in (1009, 1000, 1003):
        rows = table.filter(pc.equal(table["user_id"], user))
        expected = model.recommend(user, 5)
        assert rows["product_id"].to_pylist() == [p for p, _ in expected]
        np.testing.assert_allclose(rows["score"].to_numpy(), [s for _, s in expected], rtol=1e-5)
    stranger = table.filter(pc.equal(table["user_id"], 1234567))
    assert list(
        zip(stranger["product_id"].to_pylist(), stranger["score"].to_pylist(), strict=True)
    ) == model.popular(5)


def test_unknown_users_can_be_left_out_and_nothing_else_is_accepted(model: Recommender) -> None:
    table = model.recommend_many(pa.array([1234567, 1006]), k=3, unknown="omit")
    assert table["user_id"].to_pylist() == [1006] * 3
    assert model.recommend_many([], k=3).num_rows == 0
    with pytest.raises(ValueError, match="'popular' or 'omit'"):
        model.recommend_many([1006], unknown="ignore")  # type: ignore[arg-type]


def test_a_naive_cut_is_refused_rather_than_taken_as_utc() -> None:
    events = pa.table({"user_id": [1], "product_id": [2], "event_time": [datetime(2011, 1, 1)]})
    with pytest.raises(ValueError, match="no time zone"):
        compare_on_holdout(events, datetime(2011, 11, 9))


def test_online_retail_comes_with_the_stock_code_of_every_product_id() -> None:
    retail = online_retail()
    codes = retail.stock_codes
    assert codes.schema == STOCK_CODES
    assert codes["product_id"].to_pylist() == list(range(1, codes.num_rows + 1))
    assert pc.count_distinct(codes["stock_code"]).as_py() == codes.num_rows
    assert set(pc.unique(retail.events["product_id"]).to_pylist()) == set(
        codes["product_id"].to_pylist()
    )
    assert codes["stock_code"].to_pylist() == sorted(codes["stock_code"].to_pylist())
