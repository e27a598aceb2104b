"""E-commerce gold: each transform against a hand computation, the z-test against scipy,
the 30-day and 7-day windows, exact partition replacement and the five assets in Dagster."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from scipy import stats

from assets.bronze import bronze_tables
from assets.ecommerce import gold as gold_assets
from assets.ecommerce import silver as silver_assets
from assets.partitions import DAILY
from assets.resources import platform_resources
from assets.tables import asset_key
from lakehouse.catalog import (
    CATALOG,
    GOLD_PRODUCT_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    SILVER_SEARCH,
    Domain,
    Layer,
    table_uri,
)
from lakehouse.delta import replace_partition
from lakehouse.schemas import PRODUCT_DAILY, USER_ACTIVITY_DAILY, silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms.ecommerce import (
    ab_test_daily,
    build_ab_test_daily_partition,
    build_product_daily_partition,
    build_product_trending_partition,
    build_session_funnel_daily_partition,
    build_user_activity_daily_partition,
    build_user_features_partition,
    product_daily,
    product_trending,
    session_funnel_daily,
    two_proportion_ztest,
    user_activity_daily,
    user_features,
)

DAY = date(2026, 11, 23)
EXPERIMENT = "recs-carousel-v2"
_ids = itertools.count()


# --- silver rows, built by hand -------------------------------------------------------


def _event(topic: str, day: date, **fields: object) -> dict[str, object]:
    when = datetime.combine(day, time(12), UTC) + timedelta(seconds=next(_ids))
    row: dict[str, object] = dict.fromkeys(silver_schema(topic).names)
    row.update(event_id=f"e{next(_ids)}", event_time=when, _ingested_at=when, event_date=day)
    row.update(fields)
    return row


def view(
    user: int,
    session: str,
    product: int,
    category: str,
    price: float,
    *,
    variant: str | None = None,
    day: date = DAY,
) -> dict[str, object]:
    return _event(
        "clickstream",
        day,
        user_id=user,
        session_id=session,
        event_type="product_view",
        page="product",
        product_id=product,
        category=category,
        price=price,
        device="web",
        experiment_id=EXPERIMENT if variant else None,
        variant=variant,
    )


def page(
    user: int, session: str, name: str = "home", *, variant: str | None = None, day: date = DAY
) -> dict[str, object]:
    return _event(
        "clickstream",
        day,
        user_id=user,
        session_id=session,
        event_type="page_view",
        page=name,
        device="web",
        experiment_id=EXPERIMENT if variant else None,
        variant=variant,
    )


def cart(
    user: int,
    session: str,
    product: int,
    category: str,
    *,
    action: str = "add",
    quantity: int = 1,
    price: float = 10.0,
    variant: str | None = None,
    day: date = DAY,
) -> dict[str, object]:
    return _event(
        "cart_events",
        day,
        user_id=user,
        session_id=session,
        action=action,
        product_id=product,
        category=category,
        quantity=quantity,
        price=price,
        experiment_id=EXPERIMENT if variant else None,
        variant=variant,
    )


def query(user: int, session: str, *, day: date = DAY) -> dict[str, object]:
    return _event(
        "search",
        day,
        user_id=user,
        session_id=session,
        query="best lamp",
        category="home",
        results_count=12,
    )


def line(
    user: int,
    session: str,
    order: str,
    product: int,
    category: str,
    *,
    quantity: int = 1,
    unit_price: float = 10.0,
    variant: str | None = None,
    day: date = DAY,
) -> dict[str, object]:
    return _event(
        "purchases",
        day,
        user_id=user,
        session_id=session,
        order_id=order,
        product_id=product,
        category=category,
        quantity=quantity,
        unit_price=unit_price,
        total_amount=round(unit_price * quantity, 2),
        currency="USD",
        payment_method="card",
        experiment_id=EXPERIMENT if variant else None,
        variant=variant,
    )


def silver(topic: str, *rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=silver_schema(topic))


def topics(*rows: dict[str, object]) -> dict[str, pa.Table]:
    """The rows split into one silver table per e-commerce topic (by their fields)."""
    by_topic: dict[str, list[dict[str, object]]] = {
        "clickstream": [],
        "cart_events": [],
        "search": [],
        "purchases": [],
    }
    for row in rows:
        if "event_type" in row:
            by_topic["clickstream"].append(row)
        elif "action" in row:
            by_topic["cart_events"].append(row)
        elif "order_id" in row:
            by_topic["purchases"].append(row)
        else:
            by_topic["search"].append(row)
    return {topic: silver(topic, *found) for topic, found in by_topic.items()}


# --- user_activity_daily ---------------------------------------------------------------


def test_user_activity_daily_matches_a_hand_computation() -> None:
    inputs = topics(
        page(1, "s1"),
        view(1, "s1", 10, "books", 10.0),
        view(1, "s1", 11, "toys", 20.0),
        view(1, "s2", 12, "books", 30.0),
        cart(1, "s2", 12, "books", quantity=2),
        cart(1, "s2", 12, "books", action="remove", quantity=2),
        cart(1, "s2", 10, "books"),
        query(1, "s3"),  # a session seen only on the search topic
        line(1, "s2", "o1", 10, "books", quantity=2, unit_price=10.0),
        line(1, "s2", "o1", 11, "toys", quantity=1, unit_price=5.5),
        query(2, "s9"),
        query(2, "s9"),
    )
    rows = user_activity_daily(**inputs).to_pylist()
    assert rows == [
        {
            "event_date": DAY,
            "user_id": 1,
            "sessions": 3,
            "page_views": 4,
            "product_views": 3,
            "cart_adds": 2,
            "purchases": 1,
            "units": 3,
            "revenue": 25.5,
            "searches": 1,
            "min_viewed_price": 10.0,
            "max_viewed_price": 30.0,
            "viewed_price_sum": 60.0,
            "priced_views": 3,
            "category_views": [
                {"category": "books", "views": 2},
                {"category": "toys", "views": 1},
            ],
        },
        {
            "event_date": DAY,
            "user_id": 2,
            "sessions": 1,
            "page_views": 0,
            "product_views": 0,
            "cart_adds": 0,
            "purchases": 0,
            "units": 0,
            "revenue": 0.0,
            "searches": 2,
            "min_viewed_price": None,
            "max_viewed_price": None,
            "viewed_price_sum": 0.0,
            "priced_views": 0,
            "category_views": [],
        },
    ]


# --- user_features -----------------------------------------------------------------------


def activity(
    user: int, day: date, views: dict[str, int], price: float = 10.0, **counts: object
) -> dict[str, object]:
    """A user_activity_daily row: `views` product views per category, each at `price`."""
    n_views = sum(views.values())
    row: dict[str, object] = {
        "event_date": day,
        "user_id": user,
        "sessions": 1,
        "page_views": n_views,
        "product_views": n_views,
        "cart_adds": 0,
        "purchases": 0,
        "units": 0,
        "revenue": 0.0,
        "searches": 0,
        "min_viewed_price": price if n_views else None,
        "max_viewed_price": price if n_views else None,
        "viewed_price_sum": price * n_views,
        "priced_views": n_views,
        "category_views": [{"category": c, "views": v} for c, v in views.items()],
    }
    row.update(counts)
    return row


def test_user_features_sum_the_30_day_window_and_rank_categories() -> None:
    d29, d30 = DAY - timedelta(days=29), DAY - timedelta(days=30)
    rows = [
        activity(1, DAY, {"books": 2, "toys": 1}, price=10.0, sessions=2, cart_adds=1),
        activity(
            1,
            d29,
            {"books": 1, "home": 2, "garden": 1},
            price=40.0,
            purchases=1,
            units=2,
            revenue=80.0,
            searches=3,
        ),
        # 30 days before D: outside the window, whatever it holds.
        activity(1, d30, {"electronics": 10}, price=500.0, purchases=5, revenue=999.0),
        activity(2, d30, {"books": 1}),  # idle for 30 days: no snapshot row
        activity(3, DAY - timedelta(days=3), {}, searches=1),
        activity(4, DAY + timedelta(days=1), {"toys": 1}),  # after D: ignored
    ]
    table = pa.Table.from_pylist(rows, schema=USER_ACTIVITY_DAILY)
    features = user_features(table, DAY).to_pylist()
    assert features == [
        {
            "event_date": DAY,
            "user_id": 1,
            "sessions_30d": 3,
            "page_views_30d": 7,
            "views_30d": 7,
            "cart_adds_30d": 1,
            "purchases_30d": 1,
            "units_30d": 2,
            "revenue_30d": 80.0,
            "searches_30d": 3,
            "min_viewed_price_30d": 10.0,
            "max_viewed_price_30d": 40.0,
            # 3 views at 10 and 4 at 40: (30 + 160) / 7
            "avg_viewed_price_30d": pytest.approx(190 / 7),
            # books 3, home 2, then garden 1 and toys 1 (a tie: by name)
            "top_categories": ["books", "home", "garden"],
            "days_active_30d": 2,
            "last_active_date": DAY,
        },
        {
            "event_date": DAY,
            "user_id": 3,
            "sessions_30d": 1,
            "page_views_30d": 0,
            "views_30d": 0,
            "cart_adds_30d": 0,
            "purchases_30d": 0,
            "units_30d": 0,
            "revenue_30d": 0.0,
            "searches_30d": 1,
            "min_viewed_price_30d": None,
            "max_viewed_price_30d": None,
            "avg_viewed_price_30d": None,
            "top_categories": [],
            "days_active_30d": 1,
            "last_active_date": DAY - timedelta(days=3),
        },
    ]


# --- product_daily and product_trending ------------------------------------------------


def test_product_daily_counts_the_funnel_per_product() -> None:
    inputs = topics(
        view(1, "s1", 10, "books", 12.0),
        view(1, "s1", 10, "books", 12.0),
        view(2, "s2", 10, "books", 12.0),
        cart(2, "s2", 10, "books", quantity=2),
        line(2, "s2", "o1", 10, "books", quantity=2, unit_price=12.0),
        line(3, "s3", "o2", 10, "books", quantity=1, unit_price=12.0),  # bought, never viewed
        cart(1, "s1", 11, "toys"),
        cart(1, "s1", 11, "toys", action="remove"),
    )
    del inputs["search"]
    assert product_daily(**inputs).to_pylist() == [
        {
            "event_date": DAY,
            "product_id": 10,
            "category": "books",
            "views": 3,
            "viewers": 2,
            "cart_adds": 1,
            "purchases": 2,
            "buyers": 2,
            "units": 3,
            "revenue": 36.0,
            "view_to_purchase": 0.5,  # of viewers 1 and 2, user 2 bought
        },
        {
            "event_date": DAY,
            "product_id": 11,
            "category": "toys",
            "views": 0,
            "viewers": 0,
            "cart_adds": 1,
            "purchases": 0,
            "buyers": 0,
            "units": 0,
            "revenue": 0.0,
            "view_to_purchase": None,
        },
    ]


# --- session_funnel_daily -----------------------------------------------------------------


def funnel_row(
    category: str, viewed: int, carted: int, bought: int, orders: int, revenue: float
) -> dict[str, object]:
    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "event_date": DAY,
        "category": category,
        "sessions_viewed": viewed,
        "sessions_carted": carted,
        "sessions_purchased": bought,
        "view_to_cart_rate": share(carted, viewed),
        "cart_to_purchase_rate": share(bought, carted),
        "conversion_rate": share(bought, viewed),
        "orders": orders,
        "revenue": revenue,
    }


def test_session_funnel_counts_each_session_once_per_step_and_category() -> None:
    inputs = topics(
        # s1 views books twice, adds one to the cart and buys it: the whole funnel.
        view(1, "s1", 10, "books", 12.0),
        view(1, "s1", 11, "books", 8.0),
        cart(1, "s1", 10, "books"),
        line(1, "s1", "o1", 10, "books", quantity=2, unit_price=12.0),
        # s1 also views toys and adds them, then takes them out again: viewed and carted.
        view(1, "s1", 20, "toys", 25.0),
        cart(1, "s1", 20, "toys"),
        cart(1, "s1", 20, "toys", action="remove"),
        # s2 (the same user, another session) only looks at books.
        view(1, "s2", 10, "books", 12.0),
        page(1, "s2", "category"),
        # s3 buys books it never viewed: an order, not a funnel step.
        cart(2, "s3", 10, "books"),
        line(2, "s3", "o2", 10, "books", unit_price=12.0),
        # s4 only searches: no product category touched, no funnel row.
        query(3, "s4"),
    )
    del inputs["search"]
    assert session_funnel_daily(**inputs).to_pylist() == [
        # Sessions s1, s2 viewed something; only s1 went on to the cart and bought.
        funnel_row("all", viewed=2, carted=1, bought=1, orders=2, revenue=36.0),
        funnel_row("books", viewed=2, carted=1, bought=1, orders=2, revenue=36.0),
        funnel_row("toys", viewed=1, carted=1, bought=0, orders=0, revenue=0.0),
    ]


def test_session_funnel_of_a_day_without_traffic_is_empty() -> None:
    inputs = topics()
    del inputs["search"]
    assert session_funnel_daily(**inputs).num_rows == 0


def daily(product: int, day: date, views: int, cart_adds: int = 0, purchases: int = 0) -> dict:
    return {
        "event_date": day,
        "product_id": product,
        "category": "books",
        "views": views,
        "viewers": views,
        "cart_adds": cart_adds,
        "purchases": purchases,
        "buyers": purchases,
        "units": purchases,
        "revenue": 10.0 * purchases,
        "view_to_purchase": None,
    }


def test_product_trending_ranks_popularity_and_compares_with_the_previous_week() -> None:
    before = DAY - timedelta(days=1)
    rows = [
        daily(1, DAY - timedelta(days=8), 1000),  # outside D-7..D-1
        daily(1, DAY - timedelta(days=7), 10),
        daily(1, before, 20),
        daily(2, before, 4),
        # No rows at all for D-6..D-2: days the table lacks, not days of zero views.
        daily(1, DAY, 25, cart_adds=1, purchases=1),
        daily(2, DAY, 16, cart_adds=2),
        daily(3, DAY, 5),
        daily(4, DAY, 5),
    ]
    trending = product_trending(pa.Table.from_pylist(rows, schema=PRODUCT_DAILY), DAY)
    summary = [
        (
            r["product_id"],
            r["popularity_score"],
            r["popularity_rank"],
            r["baseline_days"],
            r["baseline_views"],
            r["trending_score"],
            r["trending_rank"],
        )
        for r in trending.to_pylist()
    ]
    # popularity = views + 5 cart adds + 20 orders; baseline over the 2 days present;
    # trending = (views - baseline) / sqrt(baseline + 1); ties by views, then product id.
    assert summary == [
        (1, 50, 1, 2, 15.0, 10 / 4, 4),
        (2, 26, 2, 2, 2.0, pytest.approx(14 / math.sqrt(3)), 1),
        (3, 5, 3, 2, 0.0, 5.0, 2),
        (4, 5, 4, 2, 0.0, 5.0, 3),
    ]
    assert set(trending.column("event_date").to_pylist()) == {DAY}


def test_product_trending_without_history_has_no_trend() -> None:
    table = pa.Table.from_pylist([daily(1, DAY, 3)], schema=PRODUCT_DAILY)
    (row,) = product_trending(table, DAY).to_pylist()
    assert (row["popularity_rank"], row["baseline_days"], row["baseline_views"]) == (1, 0, None)
    assert (row["trending_score"], row["trending_rank"]) == (None, None)


# --- ab_test_daily and the z-test ------------------------------------------------------


def scipy_ztest(x_c: int, n_c: int, x_t: int, n_t: int) -> tuple[float, float, float, float]:
    """The textbook pooled two-proportion z-test with scipy's normal distribution."""
    p_c, p_t = x_c / n_c, x_t / n_t
    pooled = (x_c + x_t) / (n_c + n_t)
    z = (p_t - p_c) / math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    p_value = 2 * stats.norm.sf(abs(z))
    margin = stats.norm.ppf(0.975) * math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    return z, p_value, p_t - p_c - margin, p_t - p_c + margin


@pytest.mark.parametrize(
    ("x_c", "n_c", "x_t", "n_t"),
    [(400, 10_000, 450, 10_000), (5, 120, 14, 130), (0, 50, 3, 60), (90, 100, 70, 100)],
)
def test_the_z_test_agrees_with_scipy(x_c: int, n_c: int, x_t: int, n_t: int) -> None:
    result = two_proportion_ztest(x_c, n_c, x_t, n_t)
    z, p_value, low, high = scipy_ztest(x_c, n_c, x_t, n_t)
    assert result.z_score == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.significant == (p_value < 0.05)
    # The pooled z-test is the 2x2 chi-square test without continuity correction.
    chi2, chi2_p, _, _ = stats.chi2_contingency(
        [[x_c, n_c - x_c], [x_t, n_t - x_t]], correction=False
    )
    assert result.z_score**2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(chi2_p, rel=1e-9)
    expected_lift = (x_t / n_t - x_c / n_c) / (x_c / n_c) if x_c else None
    assert result.relative_lift == (pytest.approx(expected_lift) if x_c else None)


def test_the_z_test_is_undefined_when_nobody_converts() -> None:
    result = two_proportion_ztest(0, 40, 0, 50)
    assert (result.z_score, result.p_value, result.relative_lift) == (None, None, None)
    assert (result.absolute_diff, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.significant is False
    with pytest.raises(ValueError):
        two_proportion_ztest(0, 0, 1, 10)


def test_ab_test_daily_counts_users_per_variant_and_tests_treatment_against_control() -> None:
    inputs = topics(
        view(1, "c1", 10, "books", 10.0, variant="control"),
        line(1, "c1", "o1", 10, "books", unit_price=20.0, variant="control"),
        page(2, "c2", variant="control"),
        page(2, "c3", variant="control"),
        view(3, "t1", 10, "books", 10.0, variant="treatment"),
        line(3, "t1", "o3", 10, "books", unit_price=10.0, variant="treatment"),
        cart(4, "t2", 11, "toys", variant="treatment"),
        line(4, "t2", "o4", 11, "toys", unit_price=15.0, variant="treatment"),
        line(4, "t2", "o5", 11, "toys", unit_price=5.0, variant="treatment"),
        page(5, "t3", variant="treatment"),
        page(6, "x1"),  # not enrolled
        line(6, "x1", "o6", 10, "books", unit_price=99.0),
    )
    del inputs["search"]
    rows = ab_test_daily(**inputs).to_pylist()
    counts = [
        (
            r["variant"],
            r["users"],
            r["sessions"],
            r["converting_users"],
            r["conversion_rate"],
            r["orders"],
            r["revenue"],
            r["revenue_per_user"],
        )
        for r in rows
    ]
    assert counts == [
        ("control", 2, 3, 1, 0.5, 1, 20.0, 10.0),
        ("treatment", 3, 3, 2, pytest.approx(2 / 3), 3, 30.0, 10.0),
    ]
    control, treatment = rows
    assert all(r["experiment_id"] == EXPERIMENT and r["event_date"] == DAY for r in rows)
    test_columns = (
        "absolute_diff",
        "relative_lift",
        "z_score",
        "p_value",
        "diff_ci_low",
        "diff_ci_high",
        "significant",
    )
    assert [control[c] for c in test_columns] == [None] * len(test_columns)
    # pooled p = 3/5, se = sqrt(0.6 * 0.4 * (1/2 + 1/3)) = sqrt(0.2); diff = 2/3 - 1/2
    z = (1 / 6) / math.sqrt(0.2)
    assert treatment["absolute_diff"] == pytest.approx(1 / 6)
    assert treatment["relative_lift"] == pytest.approx(1 / 3)
    assert treatment["z_score"] == pytest.approx(z)
    assert treatment["p_value"] == pytest.approx(2 * stats.norm.sf(z))
    assert treatment["significant"] is False


# --- partitions on a temporary lake ----------------------------------------------------


def seed_silver(settings: Settings, day: date, *rows: dict[str, object]) -> None:
    """Replace one day of the four silver tables with these rows."""
    for topic, table in topics(*rows).items():
        spec = CATALOG.silver_for_topic(topic)
        replace_partition(spec, settings, table, f"event_date = '{day.isoformat()}'")


def read(settings: Settings, name: str) -> list[dict[str, object]]:
    table = DeltaTable(table_uri(CATALOG.table(f"gold.{name}"), settings))
    rows = table.to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda row: [str(value) for value in row.values()])


def test_the_30_day_window_includes_day_minus_29_and_not_day_minus_30(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    d29, d30 = DAY - timedelta(days=29), DAY - timedelta(days=30)
    seed_silver(settings, d30, view(1, "a", 10, "electronics", 500.0, day=d30))
    seed_silver(settings, d29, view(1, "b", 11, "books", 10.0, day=d29))
    seed_silver(settings, DAY, view(1, "c", 12, "toys", 20.0), view(2, "d", 12, "toys", 20.0))
    for day in (d30, d29, DAY):  # D-28..D-1 are never built: they contribute nothing
        build_user_activity_daily_partition(settings, day)
    features = build_user_features_partition(settings, DAY).to_pylist()
    assert [
        (
            f["user_id"],
            f["views_30d"],
            f["top_categories"],
            f["days_active_30d"],
            f["max_viewed_price_30d"],
        )
        for f in features
    ] == [
        (1, 2, ["books", "toys"], 2, 20.0),
        (2, 1, ["toys"], 1, 20.0),
    ]
    # As of D+1, D-29 has left the window too.
    later = build_user_features_partition(settings, DAY + timedelta(days=1)).to_pylist()
    assert [(f["user_id"], f["views_30d"]) for f in later] == [(1, 1), (2, 1)]


def test_rebuilding_partitions_is_idempotent_and_replaces_exactly_one_day(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    before = DAY - timedelta(days=1)
    seed_silver(settings, before, view(1, "a", 10, "books", 10.0, day=before))
    seed_silver(
        settings,
        DAY,
        view(1, "b", 10, "books", 10.0, variant="control"),
        view(2, "c", 11, "toys", 20.0, variant="treatment"),
        line(2, "c", "o1", 11, "toys", unit_price=20.0, variant="treatment"),
    )
    builds = (
        build_user_activity_daily_partition,
        build_product_daily_partition,
        build_session_funnel_daily_partition,
        build_ab_test_daily_partition,
    )
    names = ("user_activity_daily", "product_daily", "session_funnel_daily", "ab_test_daily")

    def build_all() -> None:
        for build in builds:
            build(settings, before)
            build(settings, DAY)
        build_user_features_partition(settings, DAY)
        build_product_trending_partition(settings, DAY)

    build_all()
    first = {name: read(settings, name) for name in (*names, "user_features", "product_trending")}
    build_all()
    assert {name: read(settings, name) for name in first} == first
    assert [(r["event_date"], r["product_id"], r["views"]) for r in first["product_daily"]] == [
        (before, 10, 1),
        (DAY, 10, 1),
        (DAY, 11, 1),
    ]
    (trend_10, trend_11) = sorted(first["product_trending"], key=lambda r: r["product_id"])
    assert (trend_10["baseline_views"], trend_11["baseline_views"]) == (1.0, 0.0)

    # Silver for D changes (a late event, a rebuilt day): only D's partitions change.
    seed_silver(settings, DAY, view(3, "d", 12, "home", 30.0))
    for build in builds:
        build(settings, DAY)
    assert [(r["event_date"], r["product_id"]) for r in read(settings, "product_daily")] == [
        (before, 10),
        (DAY, 12),
    ]
    assert [(r["event_date"], r["user_id"]) for r in read(settings, "user_activity_daily")] == [
        (before, 1),
        (DAY, 3),
    ]
    assert read(settings, "ab_test_daily") == []  # user 3 is not enrolled


# --- Dagster ---------------------------------------------------------------------------

GOLD = (
    "user_activity_daily",
    "user_features",
    "product_daily",
    "session_funnel_daily",
    "product_trending",
    "ab_test_daily",
)
GOLD_ASSETS = [
    gold_assets.gold_user_activity_daily,
    gold_assets.gold_user_features,
    gold_assets.gold_product_daily,
    gold_assets.gold_session_funnel_daily,
    gold_assets.gold_product_trending,
    gold_assets.gold_ab_test_daily,
]


def test_the_assets_load_with_their_dependencies_and_windows() -> None:
    defs = dg.Definitions(
        assets=[bronze_tables, *dg.load_assets_from_modules([silver_assets, gold_assets])],
        resources=platform_resources(),
    )
    graph = defs.resolve_asset_graph()
    silver_keys = {
        asset_key(table) for table in (SILVER_CLICKSTREAM, SILVER_CART_EVENTS, SILVER_PURCHASES)
    }
    parents = {
        name: graph.get(asset_key(CATALOG.table(f"gold.{name}"))).parent_keys for name in GOLD
    }
    assert parents == {
        "user_activity_daily": silver_keys | {asset_key(SILVER_SEARCH)},
        "user_features": {asset_key(GOLD_USER_ACTIVITY_DAILY)},
        "product_daily": silver_keys,
        "session_funnel_daily": silver_keys,
        "product_trending": {asset_key(GOLD_PRODUCT_DAILY)},
        "ab_test_daily": silver_keys,
    }
    for asset in GOLD_ASSETS:
        spec = asset.specs_by_key[asset.key]
        assert spec.group_name == "ecommerce"
        assert spec.owners == ["team:personalization"]
        assert spec.kinds == {"deltalake", "duckdb"}
        assert spec.tags["layer"] == "gold"
        assert spec.partitions_def == DAILY
        table = CATALOG.table(".".join(asset.key.path))
        assert spec.description == table.description
        assert (table.layer, table.domain, table.partition_by) == (
            Layer.GOLD,
            Domain.ECOMMERCE,
            ("event_date",),
        )
    windows = {
        "user_features": gold_assets.gold_user_features.get_partition_mapping(
            asset_key(GOLD_USER_ACTIVITY_DAILY)
        ),
        "product_trending": gold_assets.gold_product_trending.get_partition_mapping(
            asset_key(GOLD_PRODUCT_DAILY)
        ),
    }
    assert {name: m.start_offset for name, m in windows.items()} == {
        "user_features": -29,
        "product_trending": -7,
    }


def test_the_six_assets_materialize_a_partition_in_dagster(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    seed_silver(
        settings,
        DAY,
        page(1, "a", variant="control"),
        view(1, "a", 10, "books", 10.0, variant="control"),
        view(2, "b", 10, "books", 10.0, variant="treatment"),
        view(2, "b", 11, "toys", 25.0, variant="treatment"),
        cart(2, "b", 11, "toys", variant="treatment"),
        line(2, "b", "o1", 11, "toys", unit_price=25.0, variant="treatment"),
        query(3, "c"),
    )
    resources = platform_resources(settings.lakehouse_root)
    result = dg.materialize(
        [bronze_tables, *dg.load_assets_from_modules([silver_assets]), *GOLD_ASSETS],
        selection=GOLD_ASSETS,
        partition_key=DAY.isoformat(),
        resources=resources,
    )
    assert result.success
    metadata = {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert {name: metadata[name]["dagster/row_count"].value for name in GOLD} == {
        "user_activity_daily": 3,
        "user_features": 3,
        "product_daily": 2,
        "session_funnel_daily": 3,  # all, books, toys
        "product_trending": 2,
        "ab_test_daily": 2,
    }
    assert "10 (books)" in metadata["product_daily"]["top_products_by_views"].value
    assert (
        "recs-carousel-v2 / treatment" in metadata["ab_test_daily"]["conversion_by_variant"].value
    )
    assert "| 1 | 11 | toys |" in metadata["product_trending"]["most_popular"].value
    assert metadata["user_features"]["partition"].value == DAY.isoformat()
    features = read(settings, "user_features")
    assert [(f["user_id"], f["top_categories"]) for f in features] == [
        (1, ["books"]),
        (2, ["books", "toys"]),
        (3, []),
    ]
