"""E-commerce gold: what the recommendation service, merchandisers and the A/B readout read.

Six daily tables, each partitioned by `event_date` (for snapshots, the "as of" day):

- `user_activity_daily`: per user and day, what the user did on every topic; the small,
  additive base the windowed user features are summed from.
- `user_features`: per user as of day D, the 30-day window D-29..D of user_activity_daily
  (what step 5's online service loads into Redis).
- `product_daily`: per product and day, the funnel: views, viewers, cart adds, orders,
  units, revenue, view-to-purchase conversion.
- `session_funnel_daily`: per day and category, the closed session funnel (viewed, added
  to cart, bought) and its conversion rates, plus the whole shop's (`category = 'all'`).
- `product_trending`: per product seen on day D, its popularity on D and how D's views
  compare with its mean daily views over D-7..D-1.
- `ab_test_daily`: per experiment, day and variant, user conversion and revenue, and the
  pooled two-proportion z-test of each variant against control.

Each table has a pure function over Arrow tables (DuckDB does the relational work) and a
`build_*_partition(settings, day)` that reads its inputs with a partition filter and
replaces exactly one partition, so re-running a day gives the same table. The Spark twins
(`ecommerce_spark`) run the same SQL texts, written in what both engines read alike or,
where they differ, in an engine's `Spelling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import pyarrow as pa

from lakehouse.catalog import (
    GOLD_AB_TEST_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_TRENDING,
    GOLD_SESSION_FUNNEL_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    GOLD_USER_FEATURES,
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    SILVER_SEARCH,
    TableSpec,
)
from lakehouse.schemas import (
    AB_TEST_DAILY,
    ALL_CATEGORIES,
    PRODUCT_DAILY,
    PRODUCT_TRENDING,
    SESSION_FUNNEL_DAILY,
    USER_ACTIVITY_DAILY,
    USER_FEATURES,
)
from lakehouse.settings import Settings
from lakehouse.transforms.tables import (
    DUCKDB,
    Guard,
    Source,
    Spelling,
    read_days,
    replace_day,
    run_sql,
    scan_days,
)

FEATURE_WINDOW_DAYS = 30  # user_features as of D sum user_activity_daily over D-29..D
TRENDING_BASELINE_DAYS = 7  # product_trending compares D with D-7..D-1
# Popularity of a product on a day: a view counts 1, a cart add 5, an order 20 (each step
# deeper into the funnel is rarer and says more about demand).
POPULARITY_WEIGHTS = {"views": 1, "cart_adds": 5, "purchases": 20}
# Trending is a Poisson z-score: daily views of a steady product vary by about the square
# root of their mean, so (views - baseline) / sqrt(baseline + 1) is how many of those
# standard deviations D is above the usual (|score| < 2 is noise). The 1 keeps a new
# product (baseline 0) finite: 5 views from nothing score 5.
TRENDING_SMOOTHING = 1.0
CONTROL = "control"
ALPHA = 0.05

_SESSION = "event_date user_id session_id"
_EXPERIMENT = "experiment_id variant"
# The silver tables each transform reads, by the name its SQL gives them, and their columns.
SILVER_COLUMNS = {
    SILVER_CLICKSTREAM: f"{_SESSION} event_type product_id category price {_EXPERIMENT}".split(),
    SILVER_CART_EVENTS: f"{_SESSION} action product_id category quantity {_EXPERIMENT}".split(),
    SILVER_SEARCH: _SESSION.split(),
    SILVER_PURCHASES: (
        f"{_SESSION} order_id product_id category quantity total_amount {_EXPERIMENT}".split()
    ),
}
ALL_TOPICS = tuple(SILVER_COLUMNS)
FUNNEL = (SILVER_CLICKSTREAM, SILVER_CART_EVENTS, SILVER_PURCHASES)  # no searches


# --- user_activity_daily -------------------------------------------------------------


def user_activity_sql(spelling: Spelling) -> str:
    """The user_activity_daily SQL in an engine's spelling (`tables.Spelling`): one text
    for DuckDB and Spark; the category list is ordered by a rank (views, then name)."""
    by_rank = spelling.ordered.format(value="item", order="category_rank", where="TRUE")
    return f"""
WITH touches AS (
    SELECT event_date, user_id, session_id FROM clickstream
    UNION ALL SELECT event_date, user_id, session_id FROM cart_events
    UNION ALL SELECT event_date, user_id, session_id FROM search
    UNION ALL SELECT event_date, user_id, session_id FROM purchases
),
active AS (
    SELECT event_date, user_id, count(DISTINCT session_id) AS sessions
    FROM touches GROUP BY ALL
),
clicks AS (
    SELECT event_date, user_id,
           count(*) AS page_views,
           count(*) FILTER (WHERE event_type = 'product_view') AS product_views,
           min(price) FILTER (WHERE event_type = 'product_view') AS min_viewed_price,
           max(price) FILTER (WHERE event_type = 'product_view') AS max_viewed_price,
           sum(price) FILTER (WHERE event_type = 'product_view') AS viewed_price_sum,
           count(price) FILTER (WHERE event_type = 'product_view') AS priced_views
    FROM clickstream GROUP BY ALL
),
category_counts AS (
    SELECT event_date, user_id, category, count(*) AS views
    FROM clickstream
    WHERE event_type = 'product_view' AND category IS NOT NULL
    GROUP BY ALL
),
categories AS (
    SELECT event_date, user_id,
           {by_rank} AS category_views
    FROM (
        SELECT event_date, user_id, {spelling.struct}(category, views) AS item,
               row_number() OVER (
                   PARTITION BY event_date, user_id ORDER BY views DESC, category
               ) AS category_rank
        FROM category_counts
    )
    GROUP BY ALL
),
carts AS (
    SELECT event_date, user_id, count(*) FILTER (WHERE action = 'add') AS cart_adds
    FROM cart_events GROUP BY ALL
),
orders AS (
    SELECT event_date, user_id, count(DISTINCT order_id) AS purchases,
           sum(quantity) AS units, sum(total_amount) AS revenue
    FROM purchases GROUP BY ALL
),
searches AS (
    SELECT event_date, user_id, count(*) AS searches FROM search GROUP BY ALL
)
SELECT event_date, user_id, sessions,
       coalesce(page_views, 0) AS page_views,
       coalesce(product_views, 0) AS product_views,
       coalesce(cart_adds, 0) AS cart_adds,
       coalesce(purchases, 0) AS purchases,
       coalesce(units, 0) AS units,
       round(coalesce(revenue, 0), 2) AS revenue,
       coalesce(searches, 0) AS searches,
       min_viewed_price, max_viewed_price,
       coalesce(viewed_price_sum, 0) AS viewed_price_sum,
       coalesce(priced_views, 0) AS priced_views,
       coalesce(category_views, {spelling.empty}) AS category_views
FROM active
LEFT JOIN clicks USING (event_date, user_id)
LEFT JOIN categories USING (event_date, user_id)
LEFT JOIN carts USING (event_date, user_id)
LEFT JOIN orders USING (event_date, user_id)
LEFT JOIN searches USING (event_date, user_id)
ORDER BY event_date, user_id
"""


_USER_ACTIVITY_SQL = user_activity_sql(DUCKDB)


def user_activity_daily(
    clickstream: Source, cart_events: Source, search: Source, purchases: Source
) -> pa.Table:
    """One row per user and day with any event on any of the four topics.

    `sessions` counts distinct session ids across the topics; `page_views` every
    clickstream event (product pages included), `product_views` the product views, whose
    list prices give the viewed price range; `purchases` distinct orders; `category_views`
    product views per category, most viewed first, ties by name.
    """
    return run_sql(
        _USER_ACTIVITY_SQL,
        USER_ACTIVITY_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        search=search,
        purchases=purchases,
    )


def build_user_activity_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one day of gold.user_activity_daily from the day's four silver tables."""
    rows = user_activity_daily(**silver_day(settings, day, ALL_TOPICS))
    return replace_day(settings, GOLD_USER_ACTIVITY_DAILY, rows, day, guard)


# --- user_features ---------------------------------------------------------------------


def user_features_sql(spelling: Spelling) -> str:
    """The user_features SQL in an engine's spelling: one text for DuckDB and Spark; the
    top categories are those of rank 1 to 3 (views, then name)."""
    top_three = spelling.ordered.format(
        value="category", order="category_rank", where="category_rank <= 3"
    )
    return f"""
WITH recent AS (
    SELECT * FROM activity
    WHERE event_date BETWEEN CAST($first AS DATE) AND CAST($as_of AS DATE)
),
totals AS (
    SELECT user_id,
           sum(sessions) AS sessions_30d,
           sum(page_views) AS page_views_30d,
           sum(product_views) AS views_30d,
           sum(cart_adds) AS cart_adds_30d,
           sum(purchases) AS purchases_30d,
           sum(units) AS units_30d,
           round(sum(revenue), 2) AS revenue_30d,
           sum(searches) AS searches_30d,
           min(min_viewed_price) AS min_viewed_price_30d,
           max(max_viewed_price) AS max_viewed_price_30d,
           sum(viewed_price_sum) / nullif(sum(priced_views), 0) AS avg_viewed_price_30d,
           count(DISTINCT event_date) AS days_active_30d,
           max(event_date) AS last_active_date
    FROM recent GROUP BY user_id
),
category_totals AS (
    SELECT user_id, item.category AS category, sum(item.views) AS views
    FROM (SELECT user_id, {spelling.unnest}(category_views) AS item FROM recent)
    GROUP BY ALL
),
top AS (
    SELECT user_id,
           {top_three} AS top_categories
    FROM (
        SELECT user_id, category, row_number() OVER (
            PARTITION BY user_id ORDER BY views DESC, category NULLS LAST) AS category_rank
        FROM category_totals
    )
    GROUP BY user_id
)
SELECT CAST($as_of AS DATE) AS event_date, user_id,
       sessions_30d, page_views_30d, views_30d, cart_adds_30d, purchases_30d, units_30d,
       revenue_30d, searches_30d,
       min_viewed_price_30d, max_viewed_price_30d, avg_viewed_price_30d,
       coalesce(top_categories, {spelling.empty}) AS top_categories,
       days_active_30d, last_active_date
FROM totals LEFT JOIN top USING (user_id)
ORDER BY user_id
"""


_USER_FEATURES_SQL = user_features_sql(DUCKDB)


def user_features_params(as_of: date) -> dict[str, object]:
    """The user_features SQL's parameters for a snapshot as of `as_of`: its window."""
    return {"first": as_of - timedelta(days=FEATURE_WINDOW_DAYS - 1), "as_of": as_of}


def user_features(activity: pa.Table, as_of: date) -> pa.Table:
    """Per user active in D-29..D (D = `as_of`): the window's user_activity_daily summed.

    Rows of `activity` outside the window are ignored. Sessions are summed per day (a
    session across midnight counts on both days); the average viewed price weighs every
    product view alike; `top_categories` are the three most viewed categories of the
    window, ties by name. A user idle for 30 days drops out, as the seed's Redis TTL does.
    """
    params = user_features_params(as_of)
    return run_sql(_USER_FEATURES_SQL, USER_FEATURES, params, activity=activity)


def build_user_features_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild gold.user_features as of `day` from user_activity_daily's 30-day window.

    A missing earlier day of user_activity_daily contributes nothing.
    """
    first = day - timedelta(days=FEATURE_WINDOW_DAYS - 1)
    activity = read_days(
        settings, GOLD_USER_ACTIVITY_DAILY, USER_ACTIVITY_DAILY.names, first, last=day
    )
    rows = user_features(activity, day)
    return replace_day(settings, GOLD_USER_FEATURES, rows, day, guard)


# --- product_daily ---------------------------------------------------------------------

# Shared with the Spark twin (`ecommerce_spark`): Spark SQL runs this text as it is.
PRODUCT_DAILY_SQL = """
WITH touches AS (
    SELECT event_date, product_id, category, user_id,
           1 AS views, 0 AS cart_adds, CAST(NULL AS STRING) AS order_id, 0 AS units,
           0.0 AS revenue
    FROM clickstream WHERE event_type = 'product_view' AND product_id IS NOT NULL
    UNION ALL
    SELECT event_date, product_id, category, user_id, 0, 1, NULL, 0, 0.0
    FROM cart_events WHERE action = 'add'
    UNION ALL
    SELECT event_date, product_id, category, user_id, 0, 0, order_id, quantity, total_amount
    FROM purchases
),
per_user AS (
    SELECT event_date, product_id, user_id, max(category) AS category,
           sum(views) AS views, sum(cart_adds) AS cart_adds,
           count(DISTINCT order_id) AS orders, sum(units) AS units, sum(revenue) AS revenue
    FROM touches GROUP BY event_date, product_id, user_id
)
SELECT event_date, product_id, max(category) AS category,
       sum(views) AS views,
       count(*) FILTER (WHERE views > 0) AS viewers,
       sum(cart_adds) AS cart_adds,
       sum(orders) AS purchases,
       count(*) FILTER (WHERE orders > 0) AS buyers,
       sum(units) AS units,
       round(sum(revenue), 2) AS revenue,
       count(*) FILTER (WHERE views > 0 AND orders > 0)
           / nullif(count(*) FILTER (WHERE views > 0), 0) AS view_to_purchase
FROM per_user
GROUP BY event_date, product_id
ORDER BY event_date, product_id
"""


def product_daily(clickstream: Source, cart_events: Source, purchases: Source) -> pa.Table:
    """One row per product and day with a view, a cart add or an order line.

    `purchases` counts distinct orders, `buyers` distinct purchasing users;
    `view_to_purchase` is the share of the day's viewers who also bought it that day
    (NULL without viewers).
    """
    return run_sql(
        PRODUCT_DAILY_SQL,
        PRODUCT_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )


def build_product_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one day of gold.product_daily from the day's silver tables."""
    rows = product_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_PRODUCT_DAILY, rows, day, guard)


# --- session_funnel_daily --------------------------------------------------------------

# Shared with the Spark twin (`ecommerce_spark`): Spark SQL runs this text as it is.
SESSION_FUNNEL_SQL = f"""
WITH steps AS (
    SELECT event_date, user_id, session_id, category, 1 AS step
    FROM clickstream WHERE event_type = 'product_view' AND category IS NOT NULL
    UNION ALL
    SELECT event_date, user_id, session_id, category, 2
    FROM cart_events WHERE action = 'add' AND category IS NOT NULL
    UNION ALL
    SELECT event_date, user_id, session_id, category, 3
    FROM purchases WHERE category IS NOT NULL
),
per_category AS (
    SELECT event_date, user_id, session_id, category,
           bool_or(step = 1) AS viewed, bool_or(step = 2) AS carted, bool_or(step = 3) AS bought
    FROM steps GROUP BY ALL
),
per_session AS (
    SELECT event_date, user_id, session_id, '{ALL_CATEGORIES}' AS category,
           bool_or(viewed) AS viewed, bool_or(carted) AS carted, bool_or(bought) AS bought
    FROM per_category GROUP BY ALL
),
funnel AS (
    SELECT event_date, category,
           count(*) FILTER (WHERE viewed) AS sessions_viewed,
           count(*) FILTER (WHERE viewed AND carted) AS sessions_carted,
           count(*) FILTER (WHERE viewed AND carted AND bought) AS sessions_purchased
    FROM (SELECT * FROM per_category UNION ALL SELECT * FROM per_session)
    GROUP BY ALL
),
sales AS (
    SELECT event_date, category, count(DISTINCT order_id) AS orders,
           round(sum(CAST(total_amount AS DECIMAL(38, 9))), 2) AS revenue
    FROM purchases WHERE category IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT event_date, '{ALL_CATEGORIES}' AS category, count(DISTINCT order_id),
           round(sum(CAST(total_amount AS DECIMAL(38, 9))), 2)
    FROM purchases WHERE category IS NOT NULL GROUP BY ALL
)
SELECT event_date, category, sessions_viewed, sessions_carted, sessions_purchased,
       sessions_carted / nullif(sessions_viewed, 0) AS view_to_cart_rate,
       sessions_purchased / nullif(sessions_carted, 0) AS cart_to_purchase_rate,
       sessions_purchased / nullif(sessions_viewed, 0) AS conversion_rate,
       coalesce(orders, 0) AS orders, coalesce(revenue, 0.0) AS revenue
FROM funnel LEFT JOIN sales USING (event_date, category)
ORDER BY event_date, category <> '{ALL_CATEGORIES}', category
"""


def session_funnel_daily(clickstream: Source, cart_events: Source, purchases: Source) -> pa.Table:
    """Per day and category, the closed session funnel and its rates (see the schema).

    A session is (user_id, session_id); each step counts sessions that also took every
    step before it in the same category on the same day, so the rates stay within 0..1
    (a purchase without a recorded view or cart add counts in orders and revenue, not in
    the funnel). A session that crosses midnight is split at it, as every daily table is.
    Rates are NULL where the step before has no sessions. Revenue is summed in decimals,
    exactly, so the day's figure is the same whatever order the threads add it in (summed
    as doubles it was not, and the query ran on one thread for it).
    """
    return run_sql(
        SESSION_FUNNEL_SQL,
        SESSION_FUNNEL_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )


def build_session_funnel_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one day of gold.session_funnel_daily from the day's silver tables."""
    rows = session_funnel_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_SESSION_FUNNEL_DAILY, rows, day, guard)


# --- product_trending ------------------------------------------------------------------

# Shared with the Spark twin (`ecommerce_spark`), which gives Spark the `$name` parameters.
PRODUCT_TRENDING_SQL = """
WITH today AS (
    SELECT * FROM product_daily WHERE event_date = CAST($as_of AS DATE)
),
before AS (
    SELECT * FROM product_daily
    WHERE event_date BETWEEN CAST($as_of AS DATE) - $baseline_days
                         AND CAST($as_of AS DATE) - 1
),
span AS (SELECT count(DISTINCT event_date) AS baseline_days FROM before),
prior AS (SELECT product_id, sum(views) AS prior_views FROM before GROUP BY product_id),
scored AS (
    SELECT today.*,
           $w_views * views + $w_cart_adds * cart_adds + $w_purchases * purchases
               AS popularity_score,
           span.baseline_days,
           CASE WHEN span.baseline_days > 0
                THEN coalesce(prior.prior_views, 0) / span.baseline_days END AS baseline_views
    FROM today CROSS JOIN span LEFT JOIN prior USING (product_id)
),
trending AS (
    SELECT *, (views - baseline_views) / sqrt(baseline_views + $smoothing) AS trending_score
    FROM scored
)
SELECT event_date, product_id, category, views, cart_adds, purchases, revenue,
       popularity_score,
       row_number() OVER (ORDER BY popularity_score DESC, product_id) AS popularity_rank,
       baseline_days, baseline_views, trending_score,
       CASE WHEN trending_score IS NOT NULL THEN row_number() OVER (
           ORDER BY trending_score DESC NULLS LAST, views DESC, product_id) END
           AS trending_rank
FROM trending
ORDER BY popularity_rank
"""


def product_trending(product_daily_rows: pa.Table, as_of: date) -> pa.Table:
    """Per product seen on D (= `as_of`): its popularity on D and its trend against D-7..D-1.

    popularity_score = views + 5 * cart_adds + 20 * purchases (orders); rank 1 is the most
    popular, ties by product id. baseline_views is the product's mean daily views over the
    days of D-7..D-1 that product_daily holds (a product absent on such a day had 0 views;
    a day missing from the table is unknown, not zero). trending_score =
    (views - baseline_views) / sqrt(baseline_views + 1), a Poisson z-score: above 2 the
    product is rising beyond day-to-day noise, below -2 cooling; rank 1 is the most
    trending, ties by views then product id. NULL (and no trending_rank) when none of
    D-7..D-1 is in the table.
    """
    return run_sql(
        PRODUCT_TRENDING_SQL,
        PRODUCT_TRENDING,
        product_trending_params(as_of),
        product_daily=product_daily_rows,
    )


def product_trending_params(as_of: date) -> dict[str, object]:
    """The product_trending SQL's parameters for the day `as_of`."""
    return {
        "as_of": as_of,
        "baseline_days": TRENDING_BASELINE_DAYS,
        "smoothing": TRENDING_SMOOTHING,
        **{f"w_{name}": weight for name, weight in POPULARITY_WEIGHTS.items()},
    }


def build_product_trending_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild gold.product_trending as of `day` from product_daily's D-7..D."""
    first = day - timedelta(days=TRENDING_BASELINE_DAYS)
    daily = read_days(settings, GOLD_PRODUCT_DAILY, PRODUCT_DAILY.names, first, last=day)
    rows = product_trending(daily, day)
    return replace_day(settings, GOLD_PRODUCT_TRENDING, rows, day, guard)


# --- ab_test_daily ---------------------------------------------------------------------

# Shared with the Spark twin (`ecommerce_spark`), which gives Spark the `$control` parameter:
# per experiment, day and variant, the counts and, on a treatment's row, its control's.
# Sessions are counted as distinct rows first, then per variant: a DISTINCT inside the
# variants' aggregate held every session id in one set per group, and grew faster than
# the day.
AB_VARIANTS_SQL = """
WITH touches AS (
    SELECT event_date, experiment_id, variant, user_id, session_id,
           CAST(NULL AS STRING) AS order_id, 0.0 AS amount
    FROM clickstream WHERE experiment_id IS NOT NULL AND variant IS NOT NULL
    UNION ALL
    SELECT event_date, experiment_id, variant, user_id, session_id, NULL, 0.0
    FROM cart_events WHERE experiment_id IS NOT NULL AND variant IS NOT NULL
    UNION ALL
    SELECT event_date, experiment_id, variant, user_id, session_id, order_id, total_amount
    FROM purchases WHERE experiment_id IS NOT NULL AND variant IS NOT NULL
),
per_user AS (
    SELECT event_date, experiment_id, variant, user_id,
           count(DISTINCT order_id) AS orders, sum(amount) AS revenue
    FROM touches GROUP BY ALL
),
sessions AS (
    SELECT event_date, experiment_id, variant, count(*) AS sessions
    FROM (SELECT DISTINCT event_date, experiment_id, variant, session_id FROM touches)
    GROUP BY ALL
),
variants AS (
    SELECT event_date, experiment_id, variant,
           count(*) AS users,
           count(*) FILTER (WHERE orders > 0) AS converting_users,
           sum(orders) AS orders,
           sum(revenue) AS revenue
    FROM per_user GROUP BY ALL
)
SELECT v.event_date, v.experiment_id, v.variant, v.users, s.sessions, v.converting_users,
       v.converting_users / v.users AS conversion_rate,
       v.orders, round(v.revenue, 2) AS revenue, v.revenue / v.users AS revenue_per_user,
       c.users AS control_users, c.converting_users AS control_converting_users
FROM variants v
JOIN sessions s USING (event_date, experiment_id, variant)
LEFT JOIN variants c
       ON c.event_date = v.event_date AND c.experiment_id = v.experiment_id
      AND c.variant = $control AND v.variant <> $control
ORDER BY v.event_date, v.experiment_id, v.variant <> $control, v.variant
"""
# The columns of AB_VARIANTS_SQL: those of ab_test_daily up to revenue_per_user, then the
# control's users and converting users (NULL on the control's own row and without one).
AB_VARIANTS = pa.schema(
    [
        *(AB_TEST_DAILY.field(name) for name in AB_TEST_DAILY.names[:10]),
        pa.field("control_users", pa.int64()),
        pa.field("control_converting_users", pa.int64()),
    ]
)
AB_VARIANTS_PARAMS = {"control": CONTROL}


@dataclass(frozen=True)
class ZTest:
    """A pooled two-proportion z-test of treatment against control conversion.

    `absolute_diff` is p_treatment - p_control, `relative_lift` that over p_control (None
    when control never converts); `z_score` uses the pooled standard error and is None when
    it is 0 (nobody or everybody converted); the confidence interval of the difference uses
    the unpooled (Wald) standard error.
    """

    absolute_diff: float
    relative_lift: float | None
    z_score: float | None
    p_value: float | None
    ci_low: float
    ci_high: float
    significant: bool


def two_proportion_ztest(
    control_successes: int,
    control_total: int,
    treatment_successes: int,
    treatment_total: int,
    alpha: float = ALPHA,
) -> ZTest:
    """Two-sided pooled z-test of p_treatment = p_control, with a (1 - alpha) CI of the diff."""
    if control_total <= 0 or treatment_total <= 0:
        raise ValueError("both groups need at least one user")
    p_control = control_successes / control_total
    p_treatment = treatment_successes / treatment_total
    diff = p_treatment - p_control
    pooled = (control_successes + treatment_successes) / (control_total + treatment_total)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / control_total + 1 / treatment_total))
    z = diff / pooled_se if pooled_se > 0 else None
    p_value = math.erfc(abs(z) / math.sqrt(2)) if z is not None else None
    wald_se = math.sqrt(
        p_control * (1 - p_control) / control_total
        + p_treatment * (1 - p_treatment) / treatment_total
    )
    margin = NormalDist().inv_cdf(1 - alpha / 2) * wald_se
    return ZTest(
        absolute_diff=diff,
        relative_lift=diff / p_control if p_control > 0 else None,
        z_score=z,
        p_value=p_value,
        ci_low=diff - margin,
        ci_high=diff + margin,
        significant=p_value is not None and p_value < alpha,
    )


def ab_test_daily(clickstream: Source, cart_events: Source, purchases: Source) -> pa.Table:
    """Per experiment, day and variant: enrolled users active that day (on clickstream,
    cart or purchases), their sessions, converting users (with an order), conversion rate,
    orders, revenue and revenue per user; each non-control variant's row also carries its
    z-test against the same day's control (NULL on the control row)."""
    variants = run_sql(
        AB_VARIANTS_SQL,
        AB_VARIANTS,
        AB_VARIANTS_PARAMS,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )
    return with_ztests(variants)


def with_ztests(variants: pa.Table) -> pa.Table:
    """ab_test_daily's rows from AB_VARIANTS_SQL's (`AB_VARIANTS`): each row with a control
    gets `two_proportion_ztest` of its users against the control's, the others NULLs.
    Both engines' twins finish with it, so their tests are the same function's."""
    tests = [
        two_proportion_ztest(n_conv_c, n_c, n_conv_t, n_t) if n_c else None
        for n_c, n_conv_c, n_t, n_conv_t in zip(
            variants["control_users"].to_pylist(),
            variants["control_converting_users"].to_pylist(),
            variants["users"].to_pylist(),
            variants["converting_users"].to_pylist(),
            strict=True,
        )
    ]
    columns = {
        "absolute_diff": "absolute_diff",
        "relative_lift": "relative_lift",
        "z_score": "z_score",
        "p_value": "p_value",
        "diff_ci_low": "ci_low",
        "diff_ci_high": "ci_high",
        "significant": "significant",
    }
    result = variants.drop_columns(["control_users", "control_converting_users"])
    for column, attribute in columns.items():
        values = [None if test is None else getattr(test, attribute) for test in tests]
        result = result.append_column(column, pa.array(values, AB_TEST_DAILY.field(column).type))
    return result.select(AB_TEST_DAILY.names).cast(AB_TEST_DAILY)


def build_ab_test_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one day of gold.ab_test_daily from the day's silver tables."""
    rows = ab_test_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_AB_TEST_DAILY, rows, day, guard)


def silver_day(settings: Settings, day: date, tables: tuple[TableSpec, ...]) -> dict[str, Source]:
    """One day of each e-commerce silver table as a lazy scan (DuckDB reads only the columns
    the transforms name, batch by batch: a day need not fit in memory), by the name the
    transforms' SQL knows it by (the topic's)."""
    return {spec.name: scan_days(settings, spec, day) for spec in tables}
