"""UCI Online Retail's order lines as the platform's own `purchases` events.

The file (a UK online shop's invoices, December 2010 to December 2011) is read with DuckDB
and mapped to the `purchases` contract in SQL, column-wise: one event per line of the
file, encoded to the wire format in the query itself, so nothing loops per row in Python.
`docs/events.md` ("Imported real data: UCI Online Retail") gives the mapping field by field.

Nothing is dropped or repaired. A line the platform would refuse is sent as it is, and the
platform's own bad-input path takes it: a value that cannot be read (an empty customer, a
garbage quantity, price or date) travels as `null`, so the ingest quarantines the message
(`missing_required_field`, naming the field); a line that reads but breaks a rule (a
cancellation's negative quantity, a negative price) lands in bronze and silver sets it
aside with the rule it broke. The import predicts each line's fate with the same tests and
counts it under one reason (`REASONS`, the first that applies), so what was sent is
accounted for line by line before the ingest sees any of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from lakehouse.catalog import PURCHASES, REJECTED_ROWS, Domain
from lakehouse.models.real_data import ONLINE_RETAIL_CURRENCY, SHOP_TIME_ZONE
from lakehouse.transforms import duck
from streaming.generators.common import EventBatch
from streaming.importers.common import CLEAN, QUARANTINED, BadRowReason, ImportPlan, check_source

SOURCE = Path("online_retail") / "online_retail.csv.gz"
"""Where the file lies under `Settings.real_data_dir`."""

COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
"""The file's header, read as text: every value is judged by the tests below, not by a
CSV sniffer that would turn a column of garbage into strings or refuse the file."""

EVENT_ID_NAMESPACE = "uci-online-retail"
"""Hashed into every event id, so an imported id cannot collide with another source's."""

DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M")
"""This copy's ISO times, and the original spreadsheet export's `12/1/2010 8:26`."""

INTEGER = "[+-]?[0-9]{1,10}"
"""A quantity: a whole number (and then within int32, the contract's type)."""
DECIMAL = "[+-]?([0-9]{1,12}([.][0-9]*)?|[.][0-9]+)"
"""A price: plain decimal notation under 10^12, so that a line's total stays finite."""
CUSTOMER = "[0-9]{1,15}([.]0*)?"
"""A customer id: a whole number, written `17850.0` in this copy of the file."""

# Each column as read: a typed value, or NULL when the text is not one. Dates outside
# 1970-2099 count as unreadable: they are typos for a shop that traded in 2010 and 2011.
_PARSED = f"""
WITH source AS (
    SELECT row_number() OVER () AS line, *
    FROM read_csv($path, header = true, auto_detect = false, delim = ',', quote = '"',
                  escape = '"', columns = {{{", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)}}})
), typed AS (
    SELECT line,
           nullif(trim(InvoiceNo), '') AS invoice,
           nullif(trim(StockCode), '') AS stock_code,
           CASE WHEN regexp_full_match(trim(Quantity), '{INTEGER}')
                     AND TRY_CAST(trim(Quantity) AS BIGINT) BETWEEN -2147483648 AND 2147483647
                THEN TRY_CAST(trim(Quantity) AS INTEGER) END AS quantity,
           CASE WHEN regexp_full_match(trim(UnitPrice), '{DECIMAL}')
                THEN TRY_CAST(trim(UnitPrice) AS DOUBLE) END AS unit_price,
           CASE WHEN regexp_full_match(trim(CustomerID), '{CUSTOMER}')
                THEN TRY_CAST(split_part(trim(CustomerID), '.', 1) AS BIGINT) END AS user_id,
           nullif(trim(CustomerID), '') AS customer_text,
           try_strptime(trim(InvoiceDate), {list(DATE_FORMATS)}) AS local_time
    FROM source
)
SELECT line, invoice, stock_code, quantity, unit_price, user_id, customer_text,
       CASE WHEN local_time BETWEEN TIMESTAMP '1970-01-01' AND TIMESTAMP '2099-12-31 23:59:59'
            THEN timezone('{SHOP_TIME_ZONE}', local_time) END AS event_time,
       row_number() OVER (PARTITION BY invoice ORDER BY line) AS position
FROM typed
"""


_REJECTED = REJECTED_ROWS.key

REASONS: tuple[BadRowReason, ...] = (
    BadRowReason("missing_invoice", QUARANTINED, "invoice IS NULL"),
    BadRowReason("missing_stock_code", QUARANTINED, "stock_code IS NULL"),
    BadRowReason("unreadable_invoice_date", QUARANTINED, "event_time IS NULL"),
    BadRowReason("unreadable_quantity", QUARANTINED, "quantity IS NULL"),
    BadRowReason("unreadable_unit_price", QUARANTINED, "unit_price IS NULL"),
    BadRowReason("missing_customer", QUARANTINED, "customer_text IS NULL"),
    BadRowReason("unreadable_customer", QUARANTINED, "user_id IS NULL"),
    BadRowReason(
        "cancellation",
        f"{_REJECTED} (quantity_positive)",
        "starts_with(invoice, 'C') AND quantity <= 0",
    ),
    BadRowReason("non_positive_quantity", f"{_REJECTED} (quantity_positive)", "quantity <= 0"),
    BadRowReason("negative_unit_price", f"{_REJECTED} (unit_price_non_negative)", "unit_price < 0"),
    BadRowReason("customer_id_zero", f"{_REJECTED} (user_id_positive)", "user_id <= 0"),
)
"""Bad lines, by the first reason that applies: the ingest's verdicts come before silver's."""

"""The reason of a line that reaches silver."""

_REASON_SQL = (
    "CASE "
    + " ".join(f"WHEN {reason.predicate} THEN '{reason.name}'" for reason in REASONS)
    + f" ELSE '{CLEAN}' END"
)

# The message value, field by field in the contract's order: a JSON fragment per field.
# Ids are md5 (stable across DuckDB versions and machines, unlike its `hash`): the event
# id of (invoice, line within the invoice, stock code), the product id of the stock code.
_FIELDS: dict[str, str] = {
    "event_id": (
        f"'\"' || md5('{EVENT_ID_NAMESPACE}|' || coalesce(invoice, '') || '|' || position"
        " || '|' || coalesce(stock_code, '')) || '\"'"
    ),
    "event_time": "'\"' || strftime(event_time, '%Y-%m-%dT%H:%M:%S.%fZ') || '\"'",
    "user_id": "CAST(user_id AS VARCHAR)",
    "session_id": "NULL",
    "order_id": "to_json(invoice)",
    "product_id": "CAST(CAST('0x' || md5(stock_code)[1:13] AS BIGINT) AS VARCHAR)",
    "category": "NULL",
    "quantity": "CAST(quantity AS VARCHAR)",
    "unit_price": "CAST(unit_price AS VARCHAR)",
    "total_amount": "printf('%.2f', round(quantity * unit_price, 2))",
    "currency": f"'\"{ONLINE_RETAIL_CURRENCY}\"'",
    "payment_method": "NULL",
    "experiment_id": "NULL",
    "variant": "NULL",
}
if tuple(_FIELDS) != tuple(PURCHASES.event.schema.names):
    raise RuntimeError("the Online Retail mapping does not follow the purchases contract")

_VALUE_SQL = (
    "'{' || "
    + " || ',' || ".join(
        f"'\"{name}\":' || coalesce({expression}, 'null')" for name, expression in _FIELDS.items()
    )
    + " || '}'"
)
# The contract's key is the user id; a line without one keeps its invoice's partition.
_KEY_SQL = "coalesce(CAST(user_id AS VARCHAR), invoice, '')"


class OnlineRetailImport:
    """The file as a `purchases` event source `streaming.producer.produce` can send.

    `since` and `until` keep lines whose UTC event date lies in that closed range (a line
    without a readable date lies in no range); `limit` keeps the first lines in file order
    after that. Line positions within an invoice are counted over the whole file, so an
    event's id is the same whatever slice of the file it is sent in.
    """

    domain = Domain.ECOMMERCE
    topics = (PURCHASES.name,)
    source = SOURCE
    reasons = REASONS

    def __init__(
        self,
        path: Path,
        *,
        since: date | None = None,
        until: date | None = None,
        limit: int | None = None,
    ) -> None:
        check_source(path, "UCI Online Retail", SOURCE, limit)
        self.path = path
        self.since = since
        self.until = until
        self.limit = limit

    def _window(self) -> str:
        conditions = []
        if self.since is not None:
            conditions.append(f"event_time >= TIMESTAMPTZ '{self.since.isoformat()}'")
        if self.until is not None:
            end = self.until + timedelta(days=1)
            conditions.append(f"event_time < TIMESTAMPTZ '{end.isoformat()}'")
        return " AND ".join(conditions) or "true"

    def _selected_sql(self) -> str:
        limit = "" if self.limit is None else f"LIMIT {int(self.limit)}"
        return f"""
            SELECT *, {_REASON_SQL} AS reason FROM parsed
            WHERE coalesce({self._window()}, false)
            ORDER BY line {limit}
        """

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duck.connect()
        connection.execute(f"CREATE TEMP TABLE parsed AS {_PARSED}", {"path": str(self.path)})
        return connection

    def plan(self) -> ImportPlan:
        """Count what the import will send, per reason, before anything is sent: the
        producer needs the total, and the summary the reasons."""
        with self._connect() as connection:
            total = connection.execute("SELECT count(*) FROM parsed").fetchone()
            rows = connection.execute(
                f"SELECT reason, count(*) FROM ({self._selected_sql()}) GROUP BY reason"
            ).fetchall()
        per_reason = {str(reason): int(count) for reason, count in rows}
        selected = sum(per_reason.values())
        return ImportPlan(selected, int(total[0]) - selected if total else 0, per_reason)

    def encoded(self, batch_size: int = 20_000) -> Iterator[pa.RecordBatch]:
        """The selected lines in file order as Arrow batches of `line`, `reason`, `key`
        and `value` (the message): what `batches` sends, with each line's number and
        counted reason beside it, so a line's fate can be checked against its reason."""
        with self._connect() as connection:
            reader = connection.sql(
                f"SELECT line, reason, {_KEY_SQL} AS key, {_VALUE_SQL} AS value "
                f"FROM ({self._selected_sql()}) ORDER BY line"
            ).to_arrow_reader(batch_size)
            yield from reader

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """The first `n_events` selected lines as `purchases` messages, in file order
        (`produce` asks for the count `plan` gave)."""
        left = n_events
        for batch in self.encoded(batch_size):
            if left <= 0:
                return
            batch = batch.slice(0, left)
            left -= batch.num_rows
            keys = batch.column("key").cast(pa.binary()).to_pylist()
            values = batch.column("value").cast(pa.binary()).to_pylist()
            yield EventBatch(PURCHASES.name, keys, values)
