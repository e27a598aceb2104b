"""Publishing the nightly recommendations to the online side: what the service reads is
exactly the champion's batch top 10 and the distinct-buyer popularity, switched in whole,
from the file store or DynamoDB, and through the Dagster assets of the nightly job."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from assets.ecommerce.online import (
    ONLINE_POPULAR_PRODUCTS,
    ONLINE_RECOMMENDATIONS,
    online_recommendations,
)
from assets.resources import platform_resources
from lakehouse.catalog import USER_RECOMMENDATIONS
from lakehouse.online import file_store
from lakehouse.online.batch_store import NothingPublished
from lakehouse.online.publication import (
    NotTheChampion,
    latest_publication,
    open_store,
    per_user,
    publish_recommendations,
)
from lakehouse.query import run_query
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days, replace_day
from tests.conftest import s3_client, s3_lake_options
from tests.support.online import OnlineLake, online_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> OnlineLake:
    return online_lake(tmp_path_factory.mktemp("publish"))


def batch_lists(settings: Settings, day: object) -> dict[int, list[int]]:
    """Every user's batch products by rank, straight from the Delta table."""
    rows = run_query(
        settings,
        "SELECT user_id, list(product_id ORDER BY rank) AS products "
        f"FROM {USER_RECOMMENDATIONS.key} WHERE event_date = DATE '{day}' GROUP BY user_id",
    ).to_pylist()
    return {row["user_id"]: row["products"] for row in rows}


def distinct_buyers(settings: Settings) -> list[tuple[int, int]]:
    rows = run_query(
        settings,
        "SELECT product_id, count(DISTINCT user_id) AS buyers FROM silver.purchases "
        "GROUP BY 1 ORDER BY buyers DESC, product_id LIMIT 20",
    ).to_pylist()
    return [(row["product_id"], row["buyers"]) for row in rows]


def test_the_file_store_serves_exactly_the_champions_lists_and_distinct_buyers(
    lake: OnlineLake,
) -> None:
    published = publish_recommendations(lake.settings, lake.day)
    expected = batch_lists(lake.settings, lake.day)
    assert published.publication.users == len(expected) > 500
    assert published.keys_written == len(expected) and published.bytes_written > 0
    store = open_store(lake.settings)
    try:
        assert store.publication == published.publication == latest_publication(lake.settings)
        for user_id, products in expected.items():
            top = store.top(user_id, 10)
            assert top is not None and [product for product, _ in top] == products
            scores = [score for _, score in top]
            assert scores == sorted(scores, reverse=True)
        some_user = next(iter(expected))
        assert [product for product, _ in store.top(some_user, 3)] == expected[some_user][:3]
        assert store.top(10**12, 10) is None
        assert store.popular(20) == [(p, float(b)) for p, b in distinct_buyers(lake.settings)]
    finally:
        store.close()


def test_a_new_publication_switches_whole_while_the_old_one_keeps_answering(
    lake: OnlineLake,
) -> None:
    first = publish_recommendations(lake.settings, lake.day).publication
    held = open_store(lake.settings)
    user = next(iter(batch_lists(lake.settings, lake.day)))
    before = held.top(user, 10)
    second = publish_recommendations(lake.settings, lake.day).publication
    assert second.publication_id != first.publication_id
    assert latest_publication(lake.settings) == second
    assert held.top(user, 10) == before  # still mapped, still answering
    held.close()
    fresh = open_store(lake.settings)
    assert fresh.publication == second and fresh.top(user, 10) == before
    fresh.close()
    for _ in range(file_store.KEEP_PUBLICATIONS + 1):
        publish_recommendations(lake.settings, lake.day)
    files = sorted(Path(file_store.folder(lake.settings)).glob("*.arrow"))
    assert len(files) == file_store.KEEP_PUBLICATIONS
    assert not list(Path(file_store.folder(lake.settings)).glob(".CURRENT*"))  # no temp left


def test_only_the_champions_lists_are_ever_published(lake: OnlineLake) -> None:
    other_day = lake.day - timedelta(days=1)
    rows = read_days(lake.settings, USER_RECOMMENDATIONS, None, lake.day)
    stale = rows.set_column(
        rows.schema.get_field_index("event_date"),
        "event_date",
        pa.repeat(pa.scalar(other_day, pa.date32()), rows.num_rows),
    ).set_column(
        rows.schema.get_field_index("model_version"),
        "model_version",
        pa.repeat(pa.scalar(999, pa.int64()), rows.num_rows),
    )
    replace_day(lake.settings, USER_RECOMMENDATIONS, stale, other_day)
    current = latest_publication(lake.settings)
    with pytest.raises(NotTheChampion, match="champion"):
        publish_recommendations(lake.settings, other_day)
    with pytest.raises(NothingPublished):
        publish_recommendations(lake.settings, lake.day + timedelta(days=1))
    assert latest_publication(lake.settings) == current  # nothing moved


def test_nothing_published_yet_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(lakehouse_home=tmp_path / "home", lakehouse_root=str(tmp_path / "lake"))
    assert latest_publication(settings) is None
    with pytest.raises(NothingPublished, match="nothing published"):
        open_store(settings)


def test_dynamodb_serves_the_same_lists_and_switches_by_its_pointer(
    lake: OnlineLake, moto_server: str
) -> None:
    settings = replace_settings(
        lake.settings,
        recommendations_store="dynamodb",
        recommendations_dynamodb_table=f"recs-{uuid.uuid4().hex[:8]}",
        aws_endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert latest_publication(settings) is None
    published = publish_recommendations(settings, lake.day)
    expected = batch_lists(settings, lake.day)
    store = open_store(settings)
    assert store.publication == published.publication
    for user_id in list(expected)[:50]:
        top = store.top(user_id, 10)
        assert top is not None and [product for product, _ in top] == expected[user_id]
    assert store.top(10**12, 10) is None
    assert [p for p, _ in store.popular(5)] == [p for p, _ in distinct_buyers(settings)[:5]]
    second = publish_recommendations(settings, lake.day).publication
    assert latest_publication(settings) == second
    assert store.top(next(iter(expected)), 10) is not None  # the old items stay readable


def test_the_nightly_assets_publish_with_their_metadata(lake: OnlineLake) -> None:
    resources = platform_resources(lake.settings.lakehouse_root)
    run = dg.materialize(
        [online_recommendations], partition_key=lake.day.isoformat(), resources=resources
    )
    assert run.success
    by_key = {
        event.asset_key: event.materialization.metadata
        for event in run.get_asset_materialization_events()
    }
    lists, popular = by_key[ONLINE_RECOMMENDATIONS], by_key[ONLINE_POPULAR_PRODUCTS]
    current = latest_publication(lake.settings)
    assert lists["publication_id"].value == current.publication_id
    assert lists["model_version"].value == current.model_version
    assert lists["keys_written"].value == current.users and lists["bytes"].value > 0
    assert lists["store"].value == "file" and lists["duration_s"].value > 0
    assert popular["products"].value == current.popular_products > 0


def replace_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of `settings` with some fields changed (validated like the original)."""
    return Settings(**{**settings.model_dump(), **changes})  # type: ignore[arg-type]


def test_on_an_s3_lake_the_file_and_its_pointer_live_in_the_bucket(
    lake: OnlineLake, make_settings, moto_server: str, s3_bucket: str
) -> None:
    """The same publication written to an S3 lake: the file, then the pointer (one PUT),
    the oldest pruned; the service reads the file whole (S3 has no memory map)."""
    settings = make_settings(
        **s3_lake_options(moto_server, s3_bucket),
    )
    rows = read_days(lake.settings, USER_RECOMMENDATIONS, None, lake.day)
    users = per_user(rows)
    popular = pa.table({"product_id": pa.array([7, 3], pa.int64()),
                        "buyers": pa.array([9, 4], pa.int64())})
    template = publish_recommendations(lake.settings, lake.day).publication
    published = []
    for i in range(file_store.KEEP_PUBLICATIONS + 1):
        publication = replace(template, publication_id=f"{template.publication_id}-{i}")
        file_store.write_publication(settings, publication, users, popular)
        published.append(publication)
    assert latest_publication(settings) == published[-1]
    store = open_store(settings)
    first_user = users["user_id"][0].as_py()
    assert [p for p, _ in store.top(first_user, 10)] == users["products"][0].as_py()
    assert store.popular(5) == [(7, 9.0), (3, 4.0)]
    store.close()
    keys = [
        item["Key"]
        for item in s3_client(moto_server).list_objects_v2(Bucket=s3_bucket)["Contents"]
    ]
    arrows = sorted(key.rsplit("/", 1)[-1] for key in keys if key.endswith(".arrow"))
    assert arrows == [f"{p.publication_id}.arrow" for p in published[1:]]
    assert "lake/online/recommendations/CURRENT.json" in keys
