"""The public data sets beside the repository (`REAL_DATA_DIR`, by default
`shared/data/real`), read into the platform's own event shapes, so that a model is checked
on real behaviour with the very code that trains it on the lake, from the tests, the
benchmark or a notebook.

UCI Online Retail's order lines become recommender interaction events, with the mapping
from the shop's stock codes to the dense product ids the events use, so recommendations
can be read back as the shop's own codes. `PROVENANCE.md` in that folder gives each set's
source and licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lakehouse.features.ecommerce import INTERACTION_EVENTS
from lakehouse.settings import Settings
from lakehouse.transforms.tables import run_sql

ONLINE_RETAIL = Path("online_retail") / "online_retail.csv.gz"

STOCK_CODES = pa.schema([pa.field("product_id", pa.int64()), pa.field("stock_code", pa.string())])
"""Each product id of the events and the stock code it stands for."""

# Cancellations (invoice numbers starting with C), returns (negative quantities) and lines
# without a customer say nothing about a known shopper's taste; stock codes become dense
# integer product ids, in code order.
_ORDER_LINES_SQL = """
SELECT CAST(CustomerID AS BIGINT) AS user_id,
       CAST(dense_rank() OVER (ORDER BY StockCode) AS BIGINT) AS product_id,
       'purchase' AS interaction,
       CAST(CAST(InvoiceDate AS TIMESTAMP) AS TIMESTAMPTZ) AS event_time,
       StockCode AS stock_code
FROM read_csv($path, header = true, all_varchar = true)
WHERE CustomerID IS NOT NULL
  AND NOT starts_with(InvoiceNo, 'C')
  AND CAST(Quantity AS INTEGER) > 0
ORDER BY event_time, user_id, product_id
"""

_STOCK_CODES_SQL = """
SELECT DISTINCT product_id, stock_code FROM lines ORDER BY product_id
"""


@dataclass(frozen=True)
class OnlineRetail:
    """UCI Online Retail as the recommender reads it: the events and what their ids mean."""

    events: pa.Table
    """`INTERACTION_EVENTS`: one purchase per order line of a known customer."""
    stock_codes: pa.Table
    """`STOCK_CODES`: the stock code of every product id in `events`."""


def online_retail(settings: Settings | None = None) -> OnlineRetail:
    """UCI Online Retail (Dec 2010 to Dec 2011) from `settings.real_data_dir` (the default
    settings' when None): the events to fit and judge the recommender on, and the stock
    codes to map its product ids back. Invoice times are the shop's UK local times, read as
    UTC: an hour's shift in summer, immaterial to a day-level split."""
    path = (settings or Settings()).real_data_dir / ONLINE_RETAIL
    if not path.is_file():
        raise FileNotFoundError(
            f"UCI Online Retail is not at {path}; set REAL_DATA_DIR to the folder holding "
            "online_retail/online_retail.csv.gz"
        )
    lines = run_sql(_ORDER_LINES_SQL, params={"path": str(path)})
    return OnlineRetail(
        events=lines.select(INTERACTION_EVENTS.names).cast(INTERACTION_EVENTS),
        stock_codes=run_sql(_STOCK_CODES_SQL, STOCK_CODES, lines=lines),
    )
