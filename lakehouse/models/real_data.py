"""The public data sets beside the repository (`REAL_DATA_DIR`, by default
`shared/data/real`), read into the platform's own event shapes, so that a model is checked
on real behaviour with the very code that trains it on the lake, from the tests, the
benchmark or a notebook.

UCI Online Retail is read two ways that give the same interactions up to the product ids
(`tests/test_retail_evaluation.py` checks it on a slice of the file):

- `imported_online_retail`: the lines `lakehouse import online-retail` sent through Kafka,
  the ingest and the medallion, as they reached `silver.purchases`: the path production
  data takes, which the Dagster asset reads. Product ids are the importer's (52 bits of
  the md5 of the stock code).
- `online_retail`: the file itself, with the same cleaning, for the benchmark and the
  tests, reproducible without a broker or a lake. Stock codes become dense product ids,
  with the mapping back, so recommendations can be read as the shop's own codes.

`PROVENANCE.md` in that folder gives each set's source and licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import SILVER_CART_EVENTS, SILVER_CLICKSTREAM, SILVER_PURCHASES
from lakehouse.delta import open_table
from lakehouse.features.ecommerce import INTERACTION_EVENTS, TOPIC_COLUMNS, interaction_events
from lakehouse.settings import Settings
from lakehouse.transforms.tables import run_sql

ONLINE_RETAIL = Path("online_retail") / "online_retail.csv.gz"

SHOP_TIME_ZONE = "Europe/London"
"""The shop's invoice times are UK local times (GMT in winter, BST in summer): both reads
convert them to UTC from this zone, as the importer sends them."""

ONLINE_RETAIL_CURRENCY = "GBP"
"""The currency the importer writes on every Online Retail line (the shop's prices are in
pounds sterling), the only value it synthesises."""

IMPORTED_ONLINE_RETAIL = (pc.field("currency") == ONLINE_RETAIL_CURRENCY) & pc.field(
    "session_id"
).is_null()
"""What marks an imported Online Retail line among `silver.purchases`: priced in
`ONLINE_RETAIL_CURRENCY` and without a session (the data set records invoices, not
visits). The generated shop never writes either: its only currency is USD and every
purchase it makes belongs to a session (`tests/test_retail_evaluation.py` holds it to
that). The event id cannot tell: it is an md5, whatever its source."""

STOCK_CODES = pa.schema([pa.field("product_id", pa.int64()), pa.field("stock_code", pa.string())])
"""Each product id of the events and the stock code it stands for."""

# Cancellations (invoice numbers starting with C), returns (negative quantities) and lines
# without a customer say nothing about a known shopper's taste; stock codes become dense
# integer product ids, in code order.
_ORDER_LINES_SQL = """
SELECT CAST(CustomerID AS BIGINT) AS user_id,
       CAST(dense_rank() OVER (ORDER BY StockCode) AS BIGINT) AS product_id,
       'purchase' AS interaction,
       timezone($zone, CAST(InvoiceDate AS TIMESTAMP)) AS event_time,
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
    codes to map its product ids back. Invoice times are the shop's UK local times, turned
    into UTC from `SHOP_TIME_ZONE` as the importer does (summer lines an hour earlier)."""
    path = (settings or Settings()).real_data_dir / ONLINE_RETAIL
    if not path.is_file():
        raise FileNotFoundError(
            f"UCI Online Retail is not at {path}; set REAL_DATA_DIR to the folder holding "
            "online_retail/online_retail.csv.gz"
        )
    lines = run_sql(_ORDER_LINES_SQL, params={"path": str(path), "zone": SHOP_TIME_ZONE})
    return OnlineRetail(
        events=lines.select(INTERACTION_EVENTS.names).cast(INTERACTION_EVENTS),
        stock_codes=run_sql(_STOCK_CODES_SQL, STOCK_CODES, lines=lines),
    )


class NoImportedLines(ValueError):
    """`silver.purchases` holds no imported Online Retail line to evaluate on."""


@dataclass(frozen=True)
class ImportedOnlineRetail:
    """The imported Online Retail lines as the recommender reads them, and which version
    of `silver.purchases` they were read from."""

    events: pa.Table
    """`INTERACTION_EVENTS`: one purchase per clean imported line, the importer's ids."""
    silver_version: int


def imported_online_retail(settings: Settings) -> ImportedOnlineRetail:
    """The imported Online Retail lines that reached `silver.purchases` (the clean ones:
    known customers, positive quantities), as `INTERACTION_EVENTS` built by the same
    `interaction_events` the daily recommender reads silver with. Raises
    `NoImportedLines`, saying how to import them, when there are none."""
    table = open_table(SILVER_PURCHASES, settings)
    purchases = (
        SILVER_PURCHASES.schema.empty_table()
        if table is None
        else table.to_pyarrow_dataset().to_table(
            columns=TOPIC_COLUMNS[SILVER_PURCHASES], filter=IMPORTED_ONLINE_RETAIL
        )
    )
    if table is None or purchases.num_rows == 0:
        raise NoImportedLines(
            f"{SILVER_PURCHASES.key} holds no imported UCI Online Retail lines (currency "
            f"{ONLINE_RETAIL_CURRENCY}, no session): send them with `lakehouse import "
            "online-retail`, land them with `lakehouse ingest --topics purchases "
            "--until-idle`, then build silver for their days with `lakehouse materialize "
            "--from 2010-12-01 --to 2011-12-09` (the medallion job)"
        )
    events = interaction_events(
        *(
            spec.schema.empty_table().select(TOPIC_COLUMNS[spec])
            for spec in (SILVER_CLICKSTREAM, SILVER_CART_EVENTS)
        ),
        purchases,
    )
    return ImportedOnlineRetail(events, table.version())
