"""The feedback loop: transactions whose label is not known yet are landed, kept by
silver, never counted as fraud by gold, never trained or evaluated on."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.catalog import SILVER_TRANSACTIONS, TableSpec
from lakehouse.delta import replace_partition
from lakehouse.models import fraud
from lakehouse.schemas import TRANSACTIONS, bronze_schema, silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_daily_stats,
    fraud_user_daily,
)
from lakehouse.transforms.silver import to_silver
from streaming.ingest.decode import BatchDecoder
from tests.support.fraud_audit import payment
from tests.test_gold_fraud_iot import D1, D2, D3, at, txn

# --- labels not known yet --------------------------------------------------------------


def unlabelled(row: dict[str, object]) -> dict[str, object]:
    return {**row, "label_is_fraud": None, "label_fraud_pattern": None}


def test_a_transaction_without_a_label_lands_and_silver_keeps_it() -> None:
    sent = payment(1, at(D2, 10))  # no label_is_fraud: a live payment
    assert "label_is_fraud" not in sent
    decoded = BatchDecoder(TRANSACTIONS, 1 << 20).decode([orjson.dumps(sent)])
    assert decoded.rejects == [] and decoded.table["label_is_fraud"].to_pylist() == [None]
    bronze = pa.Table.from_pylist(
        [{**unlabelled(txn("t1", at(D2, 10), 1, 5.0)), "_kafka_partition": 0, "_kafka_offset": 0}],
        schema=bronze_schema(TRANSACTIONS),
    )
    result = to_silver(bronze, "transactions")
    assert result.rejected.num_rows == 0
    assert result.rows["label_is_fraud"].to_pylist() == [None]


# Holder 1: t1 legit and t2 fraud on D1; on D2, t3 not labelled yet, then t4 fraud.
# Holder 2: t5 on D2, not labelled yet.
MIXED = (
    txn("t1", at(D1, 9), 1, 10.0),
    txn("t2", at(D1, 10), 1, 30.0, pattern="amount_spike"),
    unlabelled(txn("t3", at(D2, 2), 1, 50.0)),
    txn("t4", at(D2, 3), 1, 70.0, pattern="velocity_burst"),
    unlabelled(txn("t5", at(D2, 12), 2, 5.0, card="card-2", device="dev-2")),
)


def silver(*rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=silver_schema("transactions"))


def test_gold_counts_fraud_only_where_it_is_labelled_true() -> None:
    rows = fraud_user_daily(silver(*MIXED)).to_pylist()
    daily = {(r["user_id"], r["event_date"]): r for r in rows}
    assert daily[(1, D2)]["transactions"] == 2 and daily[(1, D2)]["fraud_transactions"] == 1
    assert daily[(1, D2)]["fraud_amount"] == 70.0
    assert daily[(2, D2)]["fraud_transactions"] == 0
    stats = fraud_daily_stats(silver(*MIXED)).filter(pc.field("event_date") == D2).to_pylist()
    assert [(r["hour"], r["transactions"], r["fraud_transactions"], r["fraud_rate"])
            for r in stats] == [(2, 1, 0, 0.0), (3, 1, 1, 1.0), (12, 1, 0, 0.0)]


def seed(settings: Settings, spec: TableSpec, rows: pa.Table) -> None:
    for day in sorted(set(rows.column("event_date").to_pylist())):
        part = rows.filter(pc.field("event_date") == day)
        replace_partition(spec, settings, part, f"event_date = '{day.isoformat()}'")


def test_training_and_evaluation_use_only_labelled_transactions(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    only_unlabelled = unlabelled(txn("t6", at(D3, 8), 2, 6.0, card="card-2", device="dev-2"))
    seed(settings, SILVER_TRANSACTIONS, silver(*MIXED, only_unlabelled))
    for day in (D1, D2):
        build_fraud_user_daily_partition(settings, day)
        build_fraud_user_profiles_partition(settings, day)
        build_fraud_daily_stats_partition(settings, day)
    data = fraud.fraud_dataset(settings, D1, D2)
    rows = zip(data.features["event_id"].to_pylist(), data.labels.tolist(),
               data.features["txn_count_7d"].to_pylist(), strict=True)
    # An unlabelled payment still counts in its holder's history: the service saw t3
    # before t4 (t4 has three earlier payments), whichever way t3 turns out.
    assert {event: (label, earlier) for event, label, earlier in rows} == {
        "t1": (False, 0.0), "t2": (True, 1.0), "t4": (True, 3.0),
    }
    with pytest.raises(ValueError, match="no labelled silver transactions"):
        fraud.fraud_dataset(settings, D3, D3)
