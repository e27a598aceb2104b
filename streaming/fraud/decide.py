"""One decision, stage by stage, as the seed lays it out: enrichment, real-time
aggregates, the model, the rules; then the decision is remembered.

1. **Enrichment**: one pipelined Redis read (`FraudState.read`) brings the holder's
   published profile, their and the device's week of earlier payments, and whether this
   transaction was already decided; the category risk comes from the in-process table.
2. **Aggregates**: `lakehouse.features.fraud.transaction_features`, the very function
   training uses, over that history: counts and sums per holder and device, velocity,
   distance and speed since the previous payment, amount against the holder's norm.
3. **Model**: the champion's per-feature contributions (XGBoost's own TreeSHAP); their
   sum is the log-odds, so one call gives both the probability and the explanation.
4. **Rules**: the rule set's signal rules over the same features, blocklists and amount
   caps over the request's fields, combined with the probability
   (`lakehouse.decisions.decide`).

Then `FraudState.record` stores the decision and counts the payment, once per id. A
retry of a decided id gets the stored decision back, unchanged; the same id with other
fields is a conflict (`IdConflict`), as payment APIs treat a reused idempotency key.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from lakehouse.decisions.decide import Thresholds, combine
from lakehouse.features.fraud import FEATURES, STATE_SIGNALS, transaction_features
from lakehouse.online.fraud_state import (
    CANDIDATE_SCHEMA,
    decode_profile,
    encode_transaction,
    event_millis,
    history_table,
)
from streaming.fraud.contract import Transaction
from streaming.fraud.metrics import METRICS
from streaming.fraud.serving import Snapshot
from streaming.fraud.state import FraudState

TOP_FEATURES = 5
STAGES = ("enrichment", "aggregates", "model", "rules", "record")


class IdConflict(ValueError):
    """A transaction id already decided, sent again with different fields."""


@dataclass(frozen=True)
class Decided:
    """A decision body (the API's `Decision`, as a dict) and whether it is a replay."""

    body: dict[str, Any]
    replayed: bool = False


def decide(snapshot: Snapshot, state: FraudState, transaction: Transaction) -> Decided:
    """Decide one payment (see the module docstring); never raises for unavailable state
    or model, only `IdConflict` for a reused id."""
    clock = _Clock()
    digest = hashlib.sha256(transaction.model_dump_json().encode()).hexdigest()
    event_ms = event_millis(transaction.event_time)
    read = state.read(transaction.event_id, transaction.user_id, transaction.device_id,
                      event_ms)
    if read.decided is not None:
        return _replay(read.decided, digest, transaction.event_id)
    missing = [] if read.answered else ["realtime_state", "profile"]
    if not snapshot.category_risk:
        missing.append("category_risk")
    candidate = _candidate(transaction, read.profile, snapshot.category_risk or {})
    history = history_table(list(read.history))
    clock.lap("enrichment")

    signals = transaction_features(candidate, history)
    if not read.answered:
        signals = _unknown(signals, STATE_SIGNALS)
    clock.lap("aggregates")

    probability, top = None, []
    if snapshot.model is None:
        missing.append("model")
    else:
        probability, top = _explain(snapshot, signals)
    clock.lap("model")

    rules = snapshot.rules
    fired = [
        (rule.name, rule.action, rule.reason)
        for rule, hit in zip(rules.signal_rules, rules.signal_hits(signals)[0], strict=True)
        if hit
    ]
    fired += rules.request_hits(transaction.card_id, transaction.device_id,
                                transaction.ip_address, transaction.merchant_category,
                                transaction.amount)
    model = snapshot.model
    thresholds = None if model is None else Thresholds.resolve(
        rules, model.threshold, model.review_threshold)
    outcome = combine(fired, probability, thresholds)
    clock.lap("rules")

    body = {
        "transaction_id": transaction.event_id,
        "decision": outcome.verdict.value,
        "fraud_probability": probability,
        "reasons": outcome.reasons,
        "rules_fired": outcome.rules_fired,
        "top_features": top,
        "model_version": snapshot.model_version,
        "rules_version": rules.version,
        "degraded": bool(missing),
        "missing": missing,
    }
    earlier = state.record(
        transaction.event_id, transaction.user_id, transaction.device_id, event_ms,
        encode_transaction(transaction.model_dump()),
        orjson.dumps({"digest": digest, "decision": {**body, "stage_ms": clock.times()}}),
    )
    if isinstance(earlier, bytes):  # a copy of this request decided it first
        return _replay(earlier, digest, transaction.event_id)
    clock.lap("record")
    body["stage_ms"] = clock.times()
    for stage in STAGES:
        METRICS.stages.labels(stage).observe(body["stage_ms"][stage] / 1000)
    for what in missing:
        METRICS.degraded.labels(what).inc()
    return Decided(body)


def _replay(stored: bytes, digest: str, transaction_id: str) -> Decided:
    record = orjson.loads(stored)
    if record["digest"] != digest:
        raise IdConflict(
            f"transaction {transaction_id} was already decided with different fields; "
            "a retry must repeat the original request exactly"
        )
    METRICS.replays.inc()
    return Decided(record["decision"], replayed=True)


def _candidate(transaction: Transaction, profile: bytes | None,
               risk: dict[str, float]) -> pa.Table:
    row = transaction.model_dump()
    row.update(decode_profile(profile))
    row["category_risk"] = risk.get(f"{transaction.merchant_category}|{transaction.channel}")
    return pa.Table.from_pylist([row], schema=CANDIDATE_SCHEMA)


def _unknown(signals: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """`signals` with `names` set to NaN: no state was read, so they are unknown."""
    nan = pa.array(np.full(signals.num_rows, np.nan, dtype=np.float32))
    for name in names:
        signals = signals.set_column(signals.schema.get_field_index(name), name, nan)
    return signals


def _explain(snapshot: Snapshot, signals: pa.Table) -> tuple[float, list[dict[str, Any]]]:
    """The probability and the features that pushed it most, either way."""
    assert snapshot.model is not None
    contributions = snapshot.model.contributions(signals)[0]
    probability = 1.0 / (1.0 + math.exp(-float(contributions.sum())))
    strongest = np.argsort(-np.abs(contributions[:-1]))[:TOP_FEATURES]
    top = []
    for index in strongest:
        value = signals[FEATURES[index]][0].as_py()
        top.append({
            "name": FEATURES[index],
            "value": None if value is None or math.isnan(value) else round(value, 4),
            "contribution": round(float(contributions[index]), 4),
        })
    return probability, top


class _Clock:
    """Milliseconds per stage, lap by lap."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round((now - self.last) * 1000, 3)
        self.last = now

    def times(self) -> dict[str, float]:
        return {**self.laps, "total": round((time.perf_counter() - self.started) * 1000, 3)}
