"""The feedback loop: the decision service's decisions judged against the ground truth
(gold `fraud_decision_quality`, hand-computed from small inputs, and through Dagster), and
transactions whose label is not known yet: landed, kept by silver, never counted as fraud
by gold, never trained or evaluated on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.fraud.gold import gold_fraud_decision_quality
from assets.resources import platform_resources
from assets.tables import asset_key
from lakehouse.catalog import (
    GOLD_FRAUD_DECISION_QUALITY,
    SILVER_FRAUD_DECISIONS,
    SILVER_TRANSACTIONS,
    TableSpec,
)
from lakehouse.delta import replace_partition
from lakehouse.models import fraud
from lakehouse.schemas import TRANSACTIONS, bronze_schema, silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_decision_quality_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_daily_stats,
    fraud_decision_quality,
    fraud_user_daily,
)
from lakehouse.transforms.silver import to_silver
from lakehouse.transforms.tables import read_days
from streaming.ingest.decode import BatchDecoder
from tests.support.fraud_audit import decisions_bronze, payment
from tests.test_gold_fraud_iot import D1, D2, D3, at, gold_rows, txn

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


# --- decision quality ------------------------------------------------------------------


def decision(transaction_id: str, kind: str, when: datetime, *, amount: float = 10.0,
             degraded: bool = False) -> dict[str, object]:
    return {"transaction_id": transaction_id, "decision": kind, "degraded": degraded,
            "amount": amount, "event_time": when}


def decisions(*rows: dict[str, object]) -> pa.Table:
    return pa.Table.from_pylist(
        list(rows),
        schema=pa.schema([("transaction_id", pa.string()), ("decision", pa.string()),
                          ("degraded", pa.bool_()), ("amount", pa.float64()),
                          ("event_time", pa.timestamp("us", tz="UTC"))]),
    )


def labels(**known: bool | None) -> pa.Table:
    return pa.table({"event_id": pa.array(list(known), pa.string()),
                     "label_is_fraud": pa.array(list(known.values()), pa.bool_())})


def test_decision_quality_matches_a_hand_computation() -> None:
    # Fraud: f1 blocked, f2 reviewed, f3 approved (missed). Legit: l1 blocked (a false
    # positive at BLOCK), l2 reviewed, l3 and l4 approved. u1 has no label yet, g1 has no
    # transaction in silver: both unlabelled.
    day = decisions(
        decision("f1", "BLOCK", at(D2, 1), amount=100.0),
        decision("f2", "REVIEW", at(D2, 2), amount=40.0),
        decision("f3", "APPROVE", at(D2, 3), amount=60.0, degraded=True),
        decision("l1", "BLOCK", at(D2, 4)),
        decision("l2", "REVIEW", at(D2, 5)),
        decision("l3", "APPROVE", at(D2, 6)),
        decision("l4", "APPROVE", at(D2, 7)),
        decision("u1", "BLOCK", at(D2, 8), amount=500.0),
        decision("g1", "APPROVE", at(D2, 9)),
    )
    truth = labels(f1=True, f2=True, f3=True, l1=False, l2=False, l3=False, l4=False, u1=None)
    (row,) = fraud_decision_quality(day, truth, D2).to_pylist()
    assert row == {
        "event_date": D2, "decisions": 9, "approved": 4, "reviewed": 2, "blocked": 3,
        "degraded": 1, "labelled": 7, "fraud": 3,
        "blocked_fraud": 1, "blocked_legit": 1,
        "review_or_block_fraud": 2, "review_or_block_legit": 2,
        "block_precision": 0.5, "block_recall": 1 / 3, "block_false_positive_rate": 0.25,
        "review_or_block_precision": 0.5, "review_or_block_recall": 2 / 3,
        "review_or_block_false_positive_rate": 0.5,
        "fraud_amount": 200.0, "blocked_fraud_amount": 100.0,
    }  # fmt: skip
    # Nothing blocked, no fraud, no legit: the shares are undefined, not zero.
    (quiet,) = fraud_decision_quality(
        decisions(decision("u1", "APPROVE", at(D2, 8))), truth, D2
    ).to_pylist()
    assert quiet["labelled"] == 0
    assert {k: v for k, v in quiet.items() if k.endswith(("precision", "recall", "rate"))} == {
        "block_precision": None, "block_recall": None, "block_false_positive_rate": None,
        "review_or_block_precision": None, "review_or_block_recall": None,
        "review_or_block_false_positive_rate": None,
    }  # fmt: skip
    # A day without decisions has no row.
    assert fraud_decision_quality(day.slice(0, 0), truth, D2).num_rows == 0


def test_the_decision_quality_asset_materializes_a_day_through_dagster(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    # A payment just before midnight of D1, decided after it, is judged on D2 with its
    # D1 label; the rest are D2's.
    late = txn("t0", at(D1, 23, 59) + timedelta(seconds=59.999), 3, 20.0, pattern="amount_spike")
    rows = silver(late, *MIXED[2:])
    seed(settings, SILVER_TRANSACTIONS, rows)
    decided = decisions_bronze(rows)
    assert decided["event_date"].to_pylist() == [D2] * 4  # t0 decided 3 ms after midnight
    seed(settings, SILVER_FRAUD_DECISIONS, to_silver(decided, "fraud_decisions").rows)
    resources = platform_resources(settings.lakehouse_root)
    for _ in range(2):  # rebuilding the day is idempotent
        result = dg.materialize(
            [gold_fraud_decision_quality], partition_key=D2.isoformat(), resources=resources
        )
        assert result.success
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["decisions_last_day"].value == 4
    assert metadata["labelled_last_day"].value == 2  # t0 and t4; t3 and t5 not yet
    assert "Decisions, " in metadata["decisions_by_kind"].value
    (row,) = gold_rows(settings, GOLD_FRAUD_DECISION_QUALITY.name)
    assert row == build_fraud_decision_quality_partition(settings, D2).to_pylist()[0]
    assert (row["decisions"], row["labelled"], row["fraud"]) == (4, 2, 2)
    expected = read_days(settings, GOLD_FRAUD_DECISION_QUALITY, None, D2).to_pylist()
    assert [row] == expected

    # The day's labels come from that day's transactions and the day before's.
    graph = dg.Definitions(
        assets=[gold_fraud_decision_quality], resources=resources
    ).resolve_asset_graph()
    mapping = graph.get_partition_mapping(
        asset_key(GOLD_FRAUD_DECISION_QUALITY), asset_key(SILVER_TRANSACTIONS)
    )
    partitions = gold_fraud_decision_quality.partitions_def
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys([D2.isoformat()]), partitions, partitions
    ).partitions_subset.get_partition_keys()
    assert list(upstream) == [D1.isoformat(), D2.isoformat()]


def test_the_test_decisions_are_judged_against_their_labels() -> None:
    """`decisions_bronze` (what other tests land as the service's decisions) is imperfect
    the way the hand-computed table expects: most fraud blocked, few legit payments."""
    rows = silver(*(txn(f"x{n}", at(D2, n % 24), n + 1, 10.0 + n,
                        pattern="amount_spike" if n % 10 == 0 else None) for n in range(400)))
    judged = to_silver(decisions_bronze(rows), "fraud_decisions").rows
    (row,) = fraud_decision_quality(judged, rows.select(["event_id", "label_is_fraud"]),
                                    D2).to_pylist()
    assert row["labelled"] == 400 and row["fraud"] == 40
    assert row["block_recall"] > 0.5 and row["block_false_positive_rate"] < 0.02
