"""The fraud decision service: each fraud pattern gets its decision and reason, late
payments land in their place, retries are idempotent, a bad rules file is refused while
the old rules stay, the model swaps under load, Redis fails without a 5xx, two processes
share one state, and the contract holds under fuzzing.

The lake is real (a champion trained on generated payments, profiles published to Redis),
Redis is a private server on a free port, the audit trail writes to the test's own broker;
the service runs as `lakehouse serve fraud` where processes matter, in process otherwise.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from prometheus_client import REGISTRY
from pydantic import SecretStr
from starlette.testclient import TestClient

from lakehouse.catalog import FRAUD_DECISIONS, TRANSACTIONS
from lakehouse.decisions.decide import Thresholds, combine
from lakehouse.decisions.rules import DEFAULT_RULES_PATH
from lakehouse.features.fraud import (
    CONTEXT_COLUMNS,
    FEATURES,
    TRANSACTION_COLUMNS,
    feature_matrix,
    transaction_features,
)
from lakehouse.models.fraud import MODEL_NAME
from lakehouse.models.registry import champion
from lakehouse.online.fraud_state import (
    decode_profile,
    event_millis,
    holder_key,
    publish_fraud_state,
    rebuild_windows,
)
from lakehouse.settings import Settings
from streaming.fraud.app import create_app
from streaming.fraud.contract import Transaction
from streaming.fraud.decide import IdConflict, decide_batch
from streaming.fraud.serving import Serving, Snapshot
from streaming.fraud.state import FraudState, Lookup, StateRead
from tests.conftest import lakehouse_command, settings_env
from tests.support.fraud import (
    ARROW_TYPES,
    LAST,
    FraudLake,
    Holder,
    fraud_lake,
    payment,
    register_trained,
    served_at,
    settled_holders,
)
from tests.support.fraud_audit import read_topic
from tests.support.net import free_port
from tests.support.redis_server import RedisServer

TOKEN = "test-token-of-the-fraud-service"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DECISIONS = "/v1/decisions"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> FraudLake:
    return fraud_lake(tmp_path_factory.mktemp("fraud-service"))


@pytest.fixture(scope="module")
def holders(lake: FraudLake) -> list[Holder]:
    return settled_holders(lake.settings, 12)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "fraud-rules.yaml"
    shutil.copy(DEFAULT_RULES_PATH, path)
    return path


@pytest.fixture
def settings(
    lake: FraudLake, redis_server: RedisServer, settings: Settings, rules_file: Path
) -> Settings:
    """The lake's settings with a private Redis (profiles published to it), the test's
    broker for the audit trail, a token and a rules file of the test's own."""
    configured = lake.settings.model_copy(
        update={
            "redis_url": redis_server.url,
            "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
            "lakehouse_home": settings.lakehouse_home,
            "lakehouse_api_token": SecretStr(TOKEN),
            "fraud_rules_path": rules_file,
            "fraud_reload_seconds": 0.2,
            "redis_breaker_reset_seconds": 0.5,
        }
    )
    publish_fraud_state(configured, LAST, redis.Redis.from_url(redis_server.url))
    return configured


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def decide(client: TestClient, event: dict) -> dict:
    response = client.post(DECISIONS, json=event, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_usual_payment_is_approved_and_explained(
    client: TestClient, lake: FraudLake, holders: list[Holder]
) -> None:
    body = decide(client, payment(holders[0], "usual-1", served_at(9)))
    assert body["decision"] == "APPROVE" and body["rules_fired"] == []
    assert body["transaction_id"] == "usual-1"
    assert body["model_version"] == champion(lake.settings, MODEL_NAME).version
    assert 0 <= body["fraud_probability"] < 0.5
    assert not body["degraded"] and body["missing"] == []
    assert len(body["top_features"]) == 5
    assert {"name", "value", "contribution"} == set(body["top_features"][0])
    assert set(body["stage_ms"]) == {
        "enrichment",
        "aggregates",
        "model",
        "rules",
        "record",
        "total",
    }
    assert body["rules_version"].startswith("2026.12.1+")


def test_a_velocity_burst_from_a_new_device_is_stopped(
    client: TestClient, holders: list[Holder]
) -> None:
    holder = holders[1]
    burst = [
        decide(
            client,
            payment(
                holder,
                f"burst-{k}",
                served_at(10, k),
                device_id="thief-phone",
                channel="online",
                merchant_category="gift_cards",
                amount=25.0,
            ),
        )
        for k in range(5)
    ]
    assert "velocity_5m" not in burst[1]["rules_fired"]
    assert "velocity_5m" in burst[2]["rules_fired"]
    assert "burst_on_new_device" in burst[4]["rules_fired"]
    assert all(b["decision"] in ("REVIEW", "BLOCK") for b in burst[2:])
    assert any("three or more payments in five minutes" in r for r in burst[2]["reasons"])


def test_impossible_travel_is_blocked(client: TestClient, holders: list[Holder]) -> None:
    holder = holders[2]
    decide(client, payment(holder, "home-1", served_at(11)))
    antipode = -holder.latitude, (holder.longitude + 360) % 360 - 180
    abroad = decide(
        client,
        payment(
            holder,
            "far-1",
            served_at(11, 20),
            country="ZZ",
            latitude=antipode[0],
            longitude=antipode[1],
        ),
    )
    assert abroad["decision"] == "BLOCK" and "impossible_travel" in abroad["rules_fired"]


def test_an_amount_spike_is_held_for_review_at_least(
    client: TestClient, holders: list[Holder]
) -> None:
    holder = holders[3]
    spike = decide(
        client, payment(holder, "spike-1", served_at(12), amount=round(holder.amount * 25, 2))
    )
    assert spike["decision"] in ("REVIEW", "BLOCK") and "amount_spike" in spike["rules_fired"]


def test_a_device_paying_for_many_holders_is_caught(
    client: TestClient, holders: list[Holder]
) -> None:
    farm = [
        decide(
            client,
            payment(
                holder, f"farm-{k}", served_at(13, k), device_id="emulator-9", channel="mobile"
            ),
        )
        for k, holder in enumerate(holders[4:8])
    ]
    assert "shared_new_device" not in farm[0]["rules_fired"]
    assert all("shared_new_device" in f["rules_fired"] for f in farm[2:])
    assert all(f["decision"] in ("REVIEW", "BLOCK") for f in farm[2:])


def test_a_blocklisted_device_is_blocked_and_rules_reload_without_restart(
    client: TestClient, holders: list[Holder], rules_file: Path
) -> None:
    holder = holders[8]
    before = decide(client, payment(holder, "listed-1", served_at(14)))
    assert before["decision"] == "APPROVE"
    text = rules_file.read_text().replace('version: "2026.12.1"', 'version: "2026.12.2"')
    rules_file.write_text(text.replace("  devices: []", f'  devices: ["{holder.device_id}"]'))
    wait_until(
        lambda: decide(client, payment(holder, f"probe-{time.monotonic_ns()}", served_at(15)))[
            "rules_version"
        ].startswith("2026.12.2+")
    )
    listed = decide(client, payment(holder, "listed-2", served_at(16)))
    assert listed["decision"] == "BLOCK" and listed["rules_fired"] == ["blocklisted_device"]
    assert "device is on the blocklist" in listed["reasons"]


def test_a_bad_rules_file_is_refused_and_the_old_rules_stay(
    client: TestClient, holders: list[Holder], rules_file: Path
) -> None:
    version = decide(client, payment(holders[9], "rules-1", served_at(9)))["rules_version"]
    refused = REGISTRY.get_sample_value("fraud_reload_errors_total", {"what": "rules"}) or 0
    rules_file.write_text(
        rules_file.read_text().replace("signal: txn_count_1h", "signal: txn_count_1y")
    )
    wait_until(
        lambda: (
            REGISTRY.get_sample_value("fraud_reload_errors_total", {"what": "rules"}) == refused + 1
        )
    )
    after = decide(client, payment(holders[9], "rules-2", served_at(9, 30)))
    assert after["rules_version"] == version


def test_a_late_payment_lands_in_its_place_in_the_window(
    client: TestClient, holders: list[Holder], settings: Settings
) -> None:
    holder = holders[10]
    fired = {}
    for event_id, minute in (("late-a", 0), ("late-c", 6), ("late-b", 4), ("late-d", 7)):
        body = decide(client, payment(holder, event_id, served_at(17, minute)))
        fired[event_id] = "velocity_5m" in body["rules_fired"]
    # The late 17:04 payment sees only what came before it in event time (17:00), not the
    # 17:06 one that arrived earlier; 17:07 sees both 17:04 and 17:06 in its five minutes.
    assert fired == {"late-a": False, "late-c": False, "late-b": False, "late-d": True}
    stored = redis.Redis.from_url(settings.redis_url).zrange(holder_key(holder.user_id), 0, -1)
    assert [orjson.loads(member)[0] for member in stored] == [
        "late-a",
        "late-b",
        "late-c",
        "late-d",
    ]


def test_a_retry_gets_the_same_decision_and_counts_once(
    client: TestClient, holders: list[Holder], settings: Settings
) -> None:
    event = payment(holders[11], "retry-1", served_at(18))
    first = client.post(DECISIONS, json=event, headers=AUTH)
    second = client.post(DECISIONS, json=event, headers=AUTH)
    assert second.status_code == 200
    # The same decision, timed as it was first made (before it was recorded).
    assert {**second.json(), "stage_ms": None} == {**first.json(), "stage_ms": None}
    assert second.headers["Idempotent-Replayed"] == "true"
    window = redis.Redis.from_url(settings.redis_url).zrange(holder_key(holders[11].user_id), 0, -1)
    assert sum(orjson.loads(member)[0] == "retry-1" for member in window) == 1

    reused = client.post(DECISIONS, json={**event, "amount": event["amount"] + 1}, headers=AUTH)
    assert reused.status_code == 409 and "already decided" in reused.json()["detail"]


def test_the_ground_truth_labels_are_never_read(client: TestClient, holders: list[Holder]) -> None:
    event = payment(holders[0], "label-a", served_at(19), amount=holders[0].amount * 3)
    honest = decide(client, event)
    labelled = decide(
        client,
        {
            **event,
            "event_id": "label-b",
            "event_time": served_at(19, 0, 1).isoformat(),
            "label_is_fraud": True,
            "label_fraud_pattern": "amount_spike",
        },
    )
    assert labelled["decision"] == honest["decision"]
    assert labelled["rules_fired"] == honest["rules_fired"]


def test_redis_outage_degrades_decisions_without_a_single_5xx(
    client: TestClient, holders: list[Holder], redis_server: RedisServer
) -> None:
    holder = holders[1]
    redis_server.stop()
    try:
        degraded = [
            decide(client, payment(holder, f"outage-{k}", served_at(20, k))) for k in range(10)
        ]
        assert all(d["degraded"] for d in degraded)
        assert all({"realtime_state", "profile"} <= set(d["missing"]) for d in degraded)
        assert all(d["fraud_probability"] is not None for d in degraded)
        listed = decide(
            client,
            payment(
                holder,
                "outage-spike",
                served_at(20, 30),
                merchant_category="gift_cards",
                amount=5_000.0,
            ),
        )
        assert listed["rules_fired"] == ["amount_cap"] and listed["decision"] != "APPROVE"
    finally:
        redis_server.start()
    wait_until(
        lambda: (
            not decide(client, payment(holder, f"back-{time.monotonic_ns()}", served_at(21)))[
                "missing"
            ].count("profile")
        )
    )


def test_the_token_and_the_payment_are_checked(client: TestClient, holders: list[Holder]) -> None:
    event = payment(holders[0], "auth-1", served_at(22))
    assert client.post(DECISIONS, json=event).status_code == 401
    assert (
        client.post(DECISIONS, json=event, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    for field, value in (
        ("amount", -5),
        ("channel", "fax"),
        ("event_time", "yesterday"),
        ("event_time", "2026-03-06T10:00:00"),
        ("latitude", 91),
        ("device_id", "x" * 65),
        ("surprise", 1),
    ):
        response = client.post(DECISIONS, json={**event, field: value}, headers=AUTH)
        assert response.status_code == 422, (field, response.text)
        assert field in response.text
    missing = {key: value for key, value in event.items() if key != "card_id"}
    assert client.post(DECISIONS, json=missing, headers=AUTH).status_code == 422


def test_fuzzing_the_openapi_schema_finds_no_server_error(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)

        @given(case=schema[DECISIONS]["POST"].as_strategy())
        @examples(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        def no_5xx(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            assert response.status_code < 500, response.text

        no_5xx()


def test_the_model_swaps_under_load_without_a_failed_request(
    client: TestClient, lake: FraudLake, holders: list[Holder]
) -> None:
    before = champion(lake.settings, MODEL_NAME).version
    statuses: list[int] = []
    versions: set[int] = set()
    stop = threading.Event()

    def traffic() -> None:
        k = 0
        while not stop.is_set():
            response = client.post(
                DECISIONS,
                headers=AUTH,
                json=payment(
                    holders[k % len(holders)], f"swap-{k}", served_at(23) + timedelta(seconds=k)
                ),
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.add(response.json()["model_version"])
            k += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        promoted = register_trained(lake.settings, pr_auc=1.0)
        assert promoted.promoted and promoted.version != before
        wait_until(lambda: promoted.version in versions)
    finally:
        stop.set()
        sender.join()
    assert set(statuses) == {200} and versions == {before, promoted.version}


def test_two_processes_share_one_state_and_stop_cleanly(
    settings: Settings, holders: list[Holder], rules_file: Path
) -> None:
    """A burst split across two service processes still trips the velocity rule: their
    state is Redis, not their memory. SIGTERM stops each with exit code 0."""
    import httpx

    env = {
        **settings_env(settings),
        "LAKEHOUSE_API_TOKEN": TOKEN,
        "FRAUD_RULES_PATH": str(rules_file),
    }
    ports = [free_port(), free_port()]
    services = [
        subprocess.Popen(lakehouse_command("serve", "fraud", "--port", str(port)), env=env)
        for port in ports
    ]
    try:
        with httpx.Client(timeout=10) as http:
            for port in ports:
                wait_until(lambda port=port: _ready(http, port), timeout=60)
            holder = holders[6]
            answers = [
                http.post(
                    f"http://127.0.0.1:{ports[k % 2]}{DECISIONS}",
                    headers=AUTH,
                    json=payment(holder, f"split-{k}", served_at(8, 0, 20 * k)),
                ).json()
                for k in range(3)
            ]
        assert "velocity_5m" in answers[2]["rules_fired"]
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        codes = [service.wait(timeout=30) for service in services]
    assert codes == [0, 0]


def _ready(http: object, port: int) -> bool:
    import httpx

    try:
        return http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200  # type: ignore[attr-defined]
    except httpx.TransportError:
        return False


def test_payments_decided_in_one_batch_see_each_other(
    settings: Settings, holders: list[Holder]
) -> None:
    """Micro-batching changes nothing a payment sees: the third of a burst decided in the
    same pass as the first two still counts them; a repeated id is decided once."""
    asyncio.run(_decide_a_burst_in_one_batch(settings, holders[5]))


async def _decide_a_burst_in_one_batch(settings: Settings, holder: Holder) -> None:
    state = FraudState(settings)
    serving = Serving(settings, state)
    serving.swap(serving.refresh())
    burst = [
        Transaction.model_validate(payment(holder, f"batch-{k}", served_at(7, k))) for k in range(3)
    ]
    first, second, third, again = await decide_batch(serving.current, state, [*burst, burst[2]])
    assert "velocity_5m" not in first.body["rules_fired"]
    assert "velocity_5m" not in second.body["rules_fired"]
    assert "velocity_5m" in third.body["rules_fired"]
    assert again is third
    window = state.redis.client.zrange(holder_key(holder.user_id), 0, -1)
    assert [orjson.loads(member)[0] for member in window] == ["batch-0", "batch-1", "batch-2"]
    changed = Transaction.model_validate(
        {**payment(holder, "batch-0", served_at(7)), "amount": 1.0}
    )
    assert isinstance((await decide_batch(serving.current, state, [changed]))[0], IdConflict)
    await state.close()


def test_decisions_are_the_arrow_reference_paths_to_the_bit(
    settings: Settings, holders: list[Holder]
) -> None:
    """The service reads its state as plain columns (no Arrow table per batch); decided
    the reference way instead (the same Redis state in Arrow tables, as training reads
    its days, `transaction_features`, the model's contributions on that table, the rule
    set's hits on it), every payment of a varied batch gets the same probability, top
    features, rules and verdict, exactly."""
    asyncio.run(_decide_against_the_reference(settings, holders))


async def _decide_against_the_reference(settings: Settings, holders: list[Holder]) -> None:
    state = FraudState(settings)
    serving = Serving(settings, state)
    serving.swap(serving.refresh())
    far = holders[1]
    batch = [
        Transaction.model_validate(event)
        for event in (
            payment(holders[0], "ref-usual", served_at(5, 10)),
            payment(
                holders[0],
                "ref-new-phone",
                served_at(5, 10, 20),
                device_id="ref-phone",
                channel="online",
                merchant_category="gift_cards",
                amount=holders[0].amount * 9,
            ),
            payment(
                holders[0],
                "ref-again",
                served_at(5, 10, 20),
                device_id="ref-phone",
                channel="mobile",
                merchant_id="ref-shop",
            ),
            payment(
                far,
                "ref-far",
                served_at(5, 11),
                country="ZZ",
                latitude=-far.latitude,
                longitude=(far.longitude + 360) % 360 - 180,
            ),
            payment(holders[2], "ref-spike", served_at(5, 12), amount=5_000.0),
            {**payment(holders[3], "ref-stranger", served_at(5, 13)), "user_id": 10**12},
        )
    ]
    reads = await state.read(
        [Lookup(t.event_id, t.user_id, t.device_id, event_millis(t.event_time)) for t in batch]
    )
    assert reads is not None
    expected = _reference(serving.current, batch, reads)
    decided = await decide_batch(serving.current, state, batch)
    for result, (probability, top, rules_fired, verdict) in zip(decided, expected, strict=True):
        assert not isinstance(result, IdConflict)
        assert result.body["fraud_probability"] == probability
        assert result.body["top_features"] == top
        assert result.body["rules_fired"] == rules_fired
        assert result.body["decision"] == verdict
    assert {body["decision"] for body in (r.body for r in decided)} != {"APPROVE"}
    await state.close()


def _reference(
    snapshot: Snapshot, batch: list[Transaction], reads: list[StateRead]
) -> list[tuple[float, list[dict], list[str], str]]:
    """(probability, top features, rules fired, verdict) of each payment, the Arrow way."""
    risk = snapshot.category_risk or {}
    candidates = pa.Table.from_pylist(
        [
            {
                **t.model_dump(include=set(TRANSACTION_COLUMNS)),
                **decode_profile(read.profile),
                "category_risk": risk.get(f"{t.merchant_category}|{t.channel}"),
            }
            for t, read in zip(batch, reads, strict=True)
        ],
        schema=pa.schema(
            [(name, ARROW_TYPES[name]) for name in (*TRANSACTION_COLUMNS, *CONTEXT_COLUMNS)]
        ),
    )
    rows = [
        orjson.loads(member)
        for member in dict.fromkeys(member for read in reads for member in read.history)
    ]
    remembered = pa.table(
        {
            name: pa.array([row[k] for row in rows], pa.int64()).cast(ARROW_TYPES[name])
            if name == "event_time"
            else pa.array([row[k] for row in rows], ARROW_TYPES[name])
            for k, name in enumerate(TRANSACTION_COLUMNS)
        }
    )
    history = pa.concat_tables([remembered, candidates.select(TRANSACTION_COLUMNS)])
    signals = transaction_features(candidates, history)
    model, rules = snapshot.model, snapshot.rules
    assert model is not None
    contributions = model.contributions(signals, approximate=True)
    matrix = feature_matrix(signals)
    hits = rules.signal_hits(signals)
    thresholds = Thresholds.resolve(rules, model.threshold, model.review_threshold)
    # The explanation as the service defines it: the five largest pushes either way.
    probabilities = 1.0 / (1.0 + np.exp(-contributions.sum(axis=1, dtype=np.float64)))
    strongest = np.argsort(-np.abs(contributions[:, :-1]), axis=1)[:, :5]
    expected = []
    for row, t in enumerate(batch):
        probability = float(probabilities[row])
        values = np.round(matrix[row, strongest[row]].astype(np.float64), 4)
        pushes = np.round(contributions[row, strongest[row]].astype(np.float64), 4)
        top = [
            {
                "name": FEATURES[k],
                "value": None if np.isnan(value) else float(value),
                "contribution": float(push),
            }
            for k, value, push in zip(strongest[row], values, pushes, strict=True)
        ]
        fired = [
            (rule.name, rule.action, rule.reason)
            for rule, hit in zip(rules.signal_rules, hits[row], strict=True)
            if hit
        ]
        fired += rules.request_hits(
            t.card_id, t.device_id, t.ip_address, t.merchant_category, t.amount
        )
        outcome = combine(fired, probability, thresholds)
        expected.append((probability, top, outcome.rules_fired, outcome.verdict.value))
    return expected


def test_windows_rebuilt_from_silver_are_what_the_service_would_have_recorded(
    settings: Settings, holders: list[Holder]
) -> None:
    """The cold start: a week of silver in the windows, idempotently, so the first
    payment of the day sees the holder's history (not a newcomer's empty one)."""
    client = redis.Redis.from_url(settings.redis_url)
    holder = holders[0]
    assert client.zcard(holder_key(holder.user_id)) == 0
    written = rebuild_windows(settings, LAST, client)
    assert written > 0
    count = client.zcard(holder_key(holder.user_id))
    assert count > 0 and rebuild_windows(settings, LAST, client) == written
    assert client.zcard(holder_key(holder.user_id)) == count


def test_a_hung_redis_costs_a_few_timeouts_then_the_breaker_decides_without_it(
    settings: Settings, holders: list[Holder]
) -> None:
    """A Redis that accepts connections and never answers (a hung process): decisions time
    out at `redis_timeout_ms` until the breaker opens, and every payment is answered."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    stuck = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{hung.getsockname()[1]}/0"}
    )
    errors = REGISTRY.get_sample_value("fraud_redis_errors_total") or 0
    try:
        with TestClient(create_app(stuck)) as client:
            answers = [
                decide(client, payment(holders[k % 3], f"hung-{k}", served_at(6, k)))
                for k in range(20)
            ]
    finally:
        hung.close()
    assert all(a["degraded"] and "realtime_state" in a["missing"] for a in answers)
    assert REGISTRY.get_sample_value("fraud_redis_errors_total") - errors < 20


def test_every_answered_payment_is_audited_with_its_decision(
    settings: Settings, holders: list[Holder]
) -> None:
    """After the answer, the payment as received and its decision reach Kafka (the
    service's shutdown flushes the audit trail); a retry is not audited twice."""
    events = [payment(holders[k], f"audit-{k}", served_at(5, k)) for k in range(3)]
    with TestClient(create_app(settings)) as client:
        answers = {e["event_id"]: decide(client, e) for e in events}
        decide(client, events[0])  # a retry: the stored decision, no second record
    decisions = [orjson.loads(m.value()) for m in read_topic(settings, FRAUD_DECISIONS.name)]
    payments = [orjson.loads(m.value()) for m in read_topic(settings, TRANSACTIONS.name)]
    assert sorted(d["transaction_id"] for d in decisions) == sorted(answers)
    for decision in decisions:
        answered = answers[decision["transaction_id"]]
        assert decision["decision"] == answered["decision"]
        assert decision["rules_version"] == answered["rules_version"]
        assert decision["latency_ms"] == answered["stage_ms"]["total"]
    assert sorted(p["event_id"] for p in payments) == sorted(answers)
