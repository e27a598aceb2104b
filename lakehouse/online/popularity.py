"""The popularity list every fallback ends on: products by distinct buyers.

Distinct buyers, not views or units, is the baseline a practitioner trusts: one shopper
ordering forty of a thing, or a bot viewing it a thousand times, counts once. The window is
the recommender's history (`recommendation_history_days` ending the day published), so the
list and the model describe the same weeks.
"""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa

from lakehouse.catalog import SILVER_PURCHASES
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days, run_sql

POPULAR_PRODUCTS = 1_000
"""Products kept: far more than any page shows, so exclusions never empty the list."""

POPULAR = pa.schema([pa.field("product_id", pa.int64()), pa.field("buyers", pa.int64())])

_SQL = """
SELECT product_id, count(DISTINCT user_id) AS buyers
FROM purchases
WHERE product_id IS NOT NULL AND user_id IS NOT NULL
GROUP BY product_id
ORDER BY buyers DESC, product_id
LIMIT $limit
"""


def popular_products(settings: Settings, as_of: date, limit: int = POPULAR_PRODUCTS) -> pa.Table:
    """The `limit` products with the most distinct buyers over the recommender's history
    ending `as_of` (`POPULAR`, best first; ties by product id, so the list is stable)."""
    first = as_of - timedelta(days=settings.recommendation_history_days - 1)
    purchases = read_days(settings, SILVER_PURCHASES, ["user_id", "product_id"], first, as_of)
    return run_sql(_SQL, POPULAR, {"limit": limit}, purchases=purchases)
