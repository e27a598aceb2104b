"""The demo's fraud half: `lakehouse serve fraud` deciding a few hundred payments of the
last simulated day, the one the model was tested on and never trained on, each injected
fraud pattern among them, and the table of what it decided and why.

The service starts as an operator would start it (the `lakehouse` command, settings from
the environment) and stops with SIGTERM. Its state is set as it would stand on that day:
holder profiles as of the day before (Dagster publishes them nightly) and the week of
payments before it in the holders' and devices' windows (`rebuild_windows`, the cold
start). The payments sent are every payment that day of the holders defrauded that day
and of a sample of others, in event-time order, so each holder's history is whole.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import AbstractContextManager
from datetime import date, timedelta
from typing import Any

import orjson
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from cli.online_demo import api_service, redis_client
from lakehouse.catalog import SILVER_TRANSACTIONS
from lakehouse.online.fraud_state import publish_fraud_state, rebuild_windows
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days

OTHER_HOLDERS = 60
"""Holders without fraud that day whose payments are sent too (the approvals)."""
MOST_PAYMENTS = 400
TABLE_ROWS = 30


def fraud_service(
    settings: Settings, console: Console, port: int
) -> AbstractContextManager[tuple[str, str]]:
    """`lakehouse serve fraud` on `port` once it answers (`api_service`; liveness, since a
    tiny demo may have no champion to be ready with)."""

    def loaded(base: str) -> str:
        readiness = _get(f"{base}/readyz")
        return (f"model version {readiness.get('model_version')}, rules "
                f"{readiness.get('rules_version')}, ")

    return api_service(settings, console, "fraud", "fraud decision service", port,
                       "/healthz", loaded)


def prepare_state(settings: Settings, day: date) -> int:
    """Profiles as of the day before `day` and the week before it in the windows, as the
    service would find them that morning; returns the payments written to the windows."""
    client = redis_client(settings)
    publish_fraud_state(settings, day - timedelta(days=1), client)
    return rebuild_windows(settings, day - timedelta(days=1), client)


def demo_payments(settings: Settings, day: date) -> list[dict[str, Any]]:
    """Every payment on `day` of the holders defrauded that day and of `OTHER_HOLDERS`
    others, in event-time order, as `transactions` events (labels included: the service
    never reads them; the table compares against them)."""
    payments = read_days(settings, SILVER_TRANSACTIONS, None, day, day)
    defrauded = pc.unique(payments.filter(pc.is_valid(pc.field("label_fraud_pattern")))
                          ["user_id"]).to_pylist()
    others = sorted(set(payments["user_id"].to_pylist()) - set(defrauded))[:OTHER_HOLDERS]
    chosen = payments.filter(pc.field("user_id").isin(defrauded + others))
    chosen = chosen.sort_by([("event_time", "ascending")]).slice(0, MOST_PAYMENTS)
    events = []
    for row in chosen.to_pylist():
        event = {name: row[name] for name in _EVENT_FIELDS}
        event["event_time"] = row["event_time"].isoformat()
        events.append(event)
    return events


def decide_all(base: str, token: str, payments: list[dict[str, Any]]
               ) -> list[tuple[dict[str, Any], dict[str, Any], float]]:
    """POST each payment; (payment, decision, milliseconds) each."""
    decided = []
    for payment in payments:
        request = urllib.request.Request(
            f"{base}/v1/decisions", data=orjson.dumps(payment), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            body = orjson.loads(response.read())
        decided.append((payment, body, (time.perf_counter() - started) * 1000))
    return decided


def show_decisions(console: Console,
                   decided: list[tuple[dict[str, Any], dict[str, Any], float]]) -> None:
    """The frauds and everything not approved, then decisions against the truth."""
    table = Table(title="payments decided before authorization (frauds, non-approvals and "
                  "a few approvals; truth: the injected pattern)")
    for column in ("time", "holder", "amount", "category", "truth", "decision", "p", "why"):
        table.add_column(column, overflow="fold")
    approvals = shown = hidden = 0
    for payment, body, _ in decided:
        truth = payment.get("label_fraud_pattern") or "-"
        if truth == "-" and body["decision"] == "APPROVE":
            approvals += 1
            if approvals > 3:
                continue
        if shown == TABLE_ROWS:
            hidden += 1
            continue
        shown += 1
        probability = body["fraud_probability"]
        model = ["model"] if any(r.startswith("model probability") for r in body["reasons"]) else []
        table.add_row(
            payment["event_time"][11:16], str(payment["user_id"]),
            f"{payment['amount']:,.2f}", payment["merchant_category"], truth,
            _colour(body["decision"]), "-" if probability is None else f"{probability:.2f}",
            ", ".join(body["rules_fired"] + model) or "-",
        )
    console.print(table)
    if hidden:
        console.print(f"   ({hidden} more frauds or non-approvals not shown)")
    times = sorted(ms for _, _, ms in decided)
    console.print(f"   {len(decided)} decisions over HTTP, one at a time: median "
                  f"{times[len(times) // 2]:.1f} ms, slowest {times[-1]:.1f} ms")
    outcome = Counter(
        ("fraud" if payment.get("label_is_fraud") else "legitimate", body["decision"])
        for payment, body, _ in decided
    )
    summary = Table(title=f"{len(decided)} payments: decisions against the labels")
    summary.add_column("label")
    for verdict in ("APPROVE", "REVIEW", "BLOCK"):
        summary.add_column(verdict, justify="right")
    for label in ("fraud", "legitimate"):
        summary.add_row(label, *(str(outcome[(label, v)]) for v in ("APPROVE", "REVIEW",
                                                                      "BLOCK")))
    console.print(summary)
    degraded = sum(body["degraded"] for _, body, _ in decided)
    if degraded:
        missing = Counter(m for _, body, _ in decided for m in body["missing"])
        console.print(f"   [yellow]{degraded} decisions degraded[/] (missing: "
                      f"{', '.join(f'{k} x{v}' for k, v in missing.items())})")


_EVENT_FIELDS = (
    "event_id", "user_id", "card_id", "merchant_id", "merchant_category", "amount",
    "currency", "country", "city", "latitude", "longitude", "device_id", "ip_address",
    "channel", "label_is_fraud", "label_fraud_pattern",
)


def _colour(decision: str) -> str:
    return {"APPROVE": "[green]APPROVE[/]", "REVIEW": "[yellow]REVIEW[/]",
            "BLOCK": "[red]BLOCK[/]"}[decision]


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 while not ready: its body says why
        return orjson.loads(error.read())
