"""One decision, stage by stage, as the seed lays it out: enrichment, real-time
aggregates, the model, the rules; then the decision is remembered.

1. **Enrichment**: one pipelined Redis read (`FraudState.read`) brings the holder's
   published profile, their and the device's week of earlier payments, and whether this
   transaction was already decided; the category risk comes from the in-process table.
2. **Aggregates**: `lakehouse.features.fraud.compute_signals`, the very definition
   training uses (`transaction_features` is it as a table), over that history, read as
   plain columns (no Arrow table built for a few rows): counts and sums per holder and
   device, velocity, distance and speed since the previous payment, amount against the
   holder's norm.
3. **Model**: the champion's per-feature contributions (XGBoost's Saabas attributions,
   `approx_contribs`: exact TreeSHAP costs about 100 us per row per 50 trees), from the
   per-leaf table `FraudModel.serve` builds (`lakehouse.models.saabas`); their sum is the
   log-odds, so one call gives both the probability and the explanation.
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
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from lakehouse.decisions.decide import Thresholds, combine
from lakehouse.features.fraud import (
    CONTEXT_COLUMNS,
    FEATURES,
    STATE_SIGNALS,
    TRANSACTION_COLUMNS,
    Signals,
    compute_signals,
)
from lakehouse.models.fraud import FraudModel
from lakehouse.online.fraud_state import (
    decode_profile,
    encode_transaction,
    event_micros,
    event_millis,
    history_columns,
)
from streaming.fraud.contract import Transaction
from streaming.fraud.metrics import METRICS
from streaming.fraud.serving import Snapshot
from streaming.fraud.state import FraudState, Lookup, StateRead

TOP_FEATURES = 5
STAGES = ("enrichment", "aggregates", "model", "rules", "record")


class IdConflict(ValueError):
    """A transaction id already decided, sent again with different fields."""


@dataclass(frozen=True)
class Decided:
    """A decision body (the API's `Decision`, as a dict) and whether it is a replay."""

    body: dict[str, Any]
    replayed: bool = False


async def decide_batch(
    snapshot: Snapshot, state: FraudState, transactions: list[Transaction]
) -> list[Decided | IdConflict]:
    """Decide payments that arrived together, in one pass of each stage (see the module
    docstring). A payment sees every earlier one, those of the same batch included; a
    repeated id within the batch is decided once. Never raises for unavailable state or
    model; a reused id with other fields gets an `IdConflict` in its place."""
    clock = _Clock()
    digests = [hashlib.sha256(t.model_dump_json().encode()).hexdigest() for t in transactions]
    first_of: dict[str, int] = {}
    for index, transaction in enumerate(transactions):
        first_of.setdefault(transaction.event_id, index)
    unique = list(first_of.values())
    lookups = [
        Lookup(
            transactions[i].event_id,
            transactions[i].user_id,
            transactions[i].device_id,
            event_millis(transactions[i].event_time),
        )
        for i in unique
    ]
    reads = await state.read(lookups)
    results: dict[int, Decided | IdConflict] = {}
    fresh = []
    for position, index in enumerate(unique):
        stored = None if reads is None else reads[position].decided
        if stored is None:
            fresh.append(position)
        else:
            results[index] = _replay(stored, digests[index], transactions[index].event_id)
    if fresh:
        await _decide_fresh(
            snapshot, state, transactions, digests, unique, fresh, lookups, reads, clock, results
        )
    return [
        _same(results[first_of[t.event_id]], digests[first_of[t.event_id]], digest, t)
        for t, digest in zip(transactions, digests, strict=True)
    ]


async def _decide_fresh(
    snapshot: Snapshot,
    state: FraudState,
    transactions: list[Transaction],
    digests: list[str],
    unique: list[int],
    fresh: list[int],
    lookups: list[Lookup],
    reads: list[StateRead] | None,
    clock: _Clock,
    results: dict[int, Decided | IdConflict],
) -> None:
    """The stages for the payments not decided before, results into `results`."""
    batch = [transactions[unique[position]] for position in fresh]
    missing = [] if reads is not None else ["realtime_state", "profile"]
    if not snapshot.category_risk:
        missing.append("category_risk")
    profiles = [None if reads is None else reads[position].profile for position in fresh]
    rows = [
        [
            event_micros(t.event_time) if name == "event_time" else getattr(t, name)
            for name in TRANSACTION_COLUMNS
        ]
        for t in batch
    ]
    candidates = _candidates(batch, rows, profiles, snapshot.category_risk or {})
    members = () if reads is None else chain.from_iterable(read.history for read in reads)
    history = history_columns(members, then=rows)  # each payment sees the batch's earlier ones
    clock.lap("enrichment")

    signals = compute_signals(candidates, history)
    if reads is None:
        signals.forget(STATE_SIGNALS)  # no state was read: unknown, not zero
    clock.lap("aggregates")

    model = snapshot.model
    if model is None:
        missing.append("model")
        probabilities: list[float | None] = [None] * len(batch)
        tops: list[list[dict[str, Any]]] = [[] for _ in batch]
    else:
        probabilities, tops = _explain(model, signals)
    clock.lap("model")

    rules = snapshot.rules
    hits = rules.signal_hits(signals)
    thresholds = (
        None
        if model is None
        else Thresholds.resolve(rules, model.threshold, model.review_threshold)
    )
    bodies = []
    for row, transaction in enumerate(batch):
        fired = [
            (rule.name, rule.action, rule.reason)
            for rule, hit in zip(rules.signal_rules, hits[row], strict=True)
            if hit
        ]
        fired += rules.request_hits(
            transaction.card_id,
            transaction.device_id,
            transaction.ip_address,
            transaction.merchant_category,
            transaction.amount,
        )
        outcome = combine(fired, probabilities[row], thresholds)
        bodies.append(
            {
                "transaction_id": transaction.event_id,
                "decision": outcome.verdict.value,
                "fraud_probability": probabilities[row],
                "reasons": outcome.reasons,
                "rules_fired": outcome.rules_fired,
                "top_features": tops[row],
                "model_version": snapshot.model_version,
                "rules_version": rules.version,
                "degraded": bool(missing),
                "missing": missing,
            }
        )
    clock.lap("rules")

    decided_at = clock.times()
    earlier = await state.record(
        [
            (
                lookups[position],
                encode_transaction(transaction.model_dump()),
                orjson.dumps(
                    {
                        "digest": digests[unique[position]],
                        "decision": {**body, "stage_ms": decided_at},
                    }
                ),
            )
            for position, transaction, body in zip(fresh, batch, bodies, strict=True)
        ]
    )
    clock.lap("record")
    times = clock.times()
    METRICS.batch_size.observe(len(batch))
    for stage in STAGES:
        METRICS.stages.labels(stage).observe(times[stage] / 1000)
    for what in missing:
        METRICS.degraded.labels(what).inc(len(batch))
    for row, position in enumerate(fresh):
        index = unique[position]
        stored = None if earlier is None else earlier[row]
        if stored is not None:  # another process decided this id first
            results[index] = _replay(stored, digests[index], transactions[index].event_id)
        else:
            results[index] = Decided({**bodies[row], "stage_ms": times})


def _same(
    result: Decided | IdConflict, first_digest: str, digest: str, transaction: Transaction
) -> Decided | IdConflict:
    """The result for a copy of an id decided earlier in the same batch."""
    if digest != first_digest:
        return _conflict(transaction.event_id)
    return result


def _replay(stored: bytes, digest: str, transaction_id: str) -> Decided | IdConflict:
    record = orjson.loads(stored)
    if record["digest"] != digest:
        return _conflict(transaction_id)
    METRICS.replays.inc()
    return Decided(record["decision"], replayed=True)


def _conflict(transaction_id: str) -> IdConflict:
    return IdConflict(
        f"transaction {transaction_id} was already decided with different fields; "
        "a retry must repeat the original request exactly"
    )


def _candidates(
    batch: list[Transaction],
    rows: list[list[Any]],
    profiles: list[bytes | None],
    risk: dict[str, float],
) -> dict[str, Sequence[Any]]:
    """The payments (`rows`: their `TRANSACTION_COLUMNS` values) with their context as
    `compute_signals`' plain columns."""
    columns: dict[str, Sequence[Any]] = dict(
        zip(TRANSACTION_COLUMNS, zip(*rows, strict=True), strict=True)
    )
    context = [decode_profile(profile) for profile in profiles]
    for name in CONTEXT_COLUMNS[:-1]:
        columns[name] = [row[name] for row in context]
    columns["category_risk"] = [risk.get(f"{t.merchant_category}|{t.channel}") for t in batch]
    return columns


def _explain(
    model: FraudModel, signals: Signals
) -> tuple[list[float | None], list[list[dict[str, Any]]]]:
    """Each row's probability and the features that pushed it most, either way."""
    matrix = signals.matrix()
    contributions = model.matrix_contributions(matrix, approximate=True)
    margins = contributions.sum(axis=1, dtype=np.float64)
    probabilities = (1.0 / (1.0 + np.exp(-margins))).tolist()
    strongest = np.argsort(-np.abs(contributions[:, :-1]), axis=1)[:, :TOP_FEATURES]
    rows = np.arange(len(strongest))[:, None]
    values = np.round(matrix[rows, strongest].astype(np.float64), 4).tolist()
    pushes = np.round(contributions[rows, strongest].astype(np.float64), 4).tolist()
    tops = [
        [
            {
                "name": FEATURES[index],
                "value": None if math.isnan(value) else value,
                "contribution": push,
            }
            for index, value, push in zip(indices, row_values, row_pushes, strict=True)
        ]
        for indices, row_values, row_pushes in zip(strongest.tolist(), values, pushes, strict=True)
    ]
    return probabilities, tops


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
