"""The public data sets beside the repository (`REAL_DATA_DIR`, `../shared/data/real`),
read into the platform's own event shapes, so a model is checked on real behaviour with
the very code that trains it on the lake.

Only what a check needs today: UCI Online Retail's order lines as recommender interaction
events. `PROVENANCE.md` in that folder gives each set's source and licence.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from lakehouse.features.ecommerce import INTERACTION_EVENTS
from lakehouse.settings import Settings
from lakehouse.transforms.tables import run_sql

ONLINE_RETAIL = Path("online_retail") / "online_retail.csv.gz"

# Cancellations (invoice numbers starting with C), returns (negative quantities) and lines
# without a customer say nothing about a known shopper's taste; stock codes become dense
# integer product ids, in code order.
_ORDER_LINES_SQL = """
SELECT CAST(CustomerID AS BIGINT) AS user_id,
       CAST(dense_rank() OVER (ORDER BY StockCode) AS BIGINT) AS product_id,
       'purchase' AS interaction,
       CAST(CAST(InvoiceDate AS TIMESTAMP) AS TIMESTAMPTZ) AS event_time
FROM read_csv($path, header = true, all_varchar = true)
WHERE CustomerID IS NOT NULL
  AND NOT starts_with(InvoiceNo, 'C')
  AND CAST(Quantity AS INTEGER) > 0
ORDER BY event_time, user_id, product_id
"""


def online_retail_events(settings: Settings) -> pa.Table:
    """UCI Online Retail (Dec 2010 to Dec 2011) as `INTERACTION_EVENTS`: one purchase per
    order line of a known customer. Invoice times are the shop's UK local times, read as
    UTC: an hour's shift in summer, immaterial to a day-level split."""
    path = settings.real_data_dir / ONLINE_RETAIL
    if not path.is_file():
        raise FileNotFoundError(
            f"UCI Online Retail is not at {path}; set REAL_DATA_DIR to the folder holding "
            "online_retail/online_retail.csv.gz"
        )
    return run_sql(_ORDER_LINES_SQL, INTERACTION_EVENTS, {"path": str(path)})
