"""The recommendation service: realtime from the session, else batch, else popular, always a
200; Redis killed or hung without a failed request; models and publications swapped under
traffic; the token and the parameters checked; the OpenAPI contract fuzzed.

The lake is real (a trained champion and its published batch lists), so is Redis (a
private server on a free port), and the service runs as `lakehouse serve recommendations`
where a process matters (outages, hot swaps, SIGTERM), in process otherwise.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from pydantic import SecretStr
from starlette.testclient import TestClient

from lakehouse.models.recommender import MODEL_NAME, build_user_recommendations_partition
from lakehouse.models.registry import champion, load_artifact, register
from lakehouse.online.publication import latest_publication, open_store, publish_recommendations
from lakehouse.settings import Settings
from streaming.recommendations.app import create_app
from tests.conftest import lakehouse_command, settings_env
from tests.support.net import free_port
from tests.support.online import OnlineLake, online_lake
from tests.support.redis_server import RedisServer
from tests.support.session_features import SessionWriter

TOKEN = "test-token-of-the-service"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN_USER = 10**9


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> OnlineLake:
    lake = online_lake(tmp_path_factory.mktemp("service"))
    publish_recommendations(lake.settings, lake.day)
    return lake


@pytest.fixture
def settings(lake: OnlineLake, redis_server: RedisServer) -> Settings:
    return lake.settings.model_copy(
        update={
            "redis_url": redis_server.url,
            "lakehouse_api_token": SecretStr(TOKEN),
            "recommendations_reload_seconds": 0.2,
            "redis_breaker_reset_seconds": 0.5,
        }
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        wait_ready(lambda: client.get("/readyz").status_code)
        yield client


def wait_ready(status: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while status() != 200:  # type: ignore[operator]
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.05)


def known_user(lake: OnlineLake) -> tuple[int, list[int]]:
    """A user of the published batch and their list."""
    store = open_store(lake.settings)
    try:
        user = int(store._users[len(store._users) // 2])  # type: ignore[attr-defined]
        return user, [product for product, _ in store.top(user, 10) or []]
    finally:
        store.close()


def products_of(body: dict) -> list[int]:
    return [item["product_id"] for item in body["products"]]


def test_clicks_turn_batch_into_realtime_and_newcomers_start_from_popular(
    client: TestClient, lake: OnlineLake, settings: Settings
) -> None:
    user, batch = known_user(lake)
    first = client.get(f"/v1/recommendations/{user}", headers=AUTH).json()
    assert first["source"] == "batch" and products_of(first) == batch
    assert first["model_version"] == latest_publication(lake.settings).model_version

    newcomer = client.get(f"/v1/recommendations/{UNKNOWN_USER}?k=5", headers=AUTH).json()
    store = open_store(lake.settings)
    assert newcomer["source"] == "popular"
    assert products_of(newcomer) == [product for product, _ in store.popular(5)]

    clicked = [product for product, _ in store.popular(40)][20:24]
    writer = SessionWriter(settings)
    writer.views(user, clicked)
    after = client.get(f"/v1/recommendations/{user}", headers=AUTH).json()
    assert after["source"] == "realtime" and len(after["products"]) == 10
    assert products_of(after) != batch and not set(clicked) & set(products_of(after))
    assert after["model_version"] == champion(lake.settings, MODEL_NAME).version

    bought = products_of(after)[:2]
    writer.purchases(user, bought)
    again = client.get(f"/v1/recommendations/{user}", headers=AUTH).json()
    assert again["source"] == "realtime" and not set(bought) & set(products_of(again))

    writer.views(UNKNOWN_USER, clicked)
    folded = client.get(f"/v1/recommendations/{UNKNOWN_USER}", headers=AUTH).json()
    assert folded["source"] == "realtime" and not set(clicked) & set(products_of(folded))
    store.close()


def test_the_token_and_the_parameters_are_checked(client: TestClient, lake: OnlineLake) -> None:
    user, _ = known_user(lake)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = client.get(f"/v1/recommendations/{user}", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in answer.text
    for bad in (f"{user}?k=0", f"{user}?k=101", f"{user}?k=ten", "abc", "-1", "1.5",
                f"{2**63}", f"{user}?k=5&k=500"):
        answer = client.get(f"/v1/recommendations/{bad}", headers=AUTH)
        assert answer.status_code == 422, bad
        assert answer.json()["detail"], bad
    ok = client.get(f"/v1/recommendations/{user}?k=3", headers=AUTH)
    assert ok.status_code == 200 and len(ok.json()["products"]) == 3
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["model_version"] == champion(lake.settings, MODEL_NAME).version
    metrics = client.get("/metrics").text
    assert 'recommendations_requests_total{source="batch",status="200"}' in metrics
    assert 'recommendations_requests_total{source="none",status="401"} 3.0' in metrics
    assert "recommendations_redis_breaker_state 0.0" in metrics


def test_the_openapi_contract_holds_under_fuzzing(settings: Settings) -> None:
    """Schemathesis generates requests from /openapi.json (valid and invalid ids, k,
    tokens) and checks every answer against the schema: no 5xx, no undocumented status."""
    app = create_app(settings)
    with TestClient(app) as warm:
        wait_ready(lambda: warm.get("/readyz").status_code)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: list[str] = []
        for operation in schema.get_all_operations():
            strategy = operation.ok().as_strategy()

            @given(case=strategy)
            @examples(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                case.headers = {**(case.headers or {}), **AUTH}
                response = case.call()
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
                case.validate_response(response)

            check()
        assert not failures


# --- as a process: outages, hot swaps, SIGTERM ----------------------------------------------


class Service:
    """`lakehouse serve recommendations` on a free port, with the test's settings."""

    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {**settings_env(settings), "LAKEHOUSE_API_TOKEN": TOKEN, **env}
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                lakehouse_command("serve", "recommendations", "--port", str(self.port)),
                env=environment, stdout=sink, stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.base}{path}", headers=AUTH)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read() or b"{}")

    def wait_ready(self) -> None:
        def status() -> int:
            assert self.process.poll() is None, self.log.read_text()
            try:
                return self.get("/readyz")[0]
            except (urllib.error.URLError, ConnectionError):
                return 0
        wait_ready(status)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


class Traffic:
    """A thread asking for one user's recommendations as fast as it can; every answer's
    status and source are kept, in order."""

    def __init__(self, service: Service, user: int) -> None:
        self.service, self.user = service, user
        self.answers: list[tuple[int, str | None, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.service.get(f"/v1/recommendations/{self.user}")
            except OSError as error:  # a refused or dropped connection is a failure too
                self.answers.append((0, repr(error), None))
                continue
            self.answers.append((status, body.get("source"), body.get("model_version")))

    def wait_for(self, source: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.answers)
        while not any(answer[1] == source for answer in self.answers[seen:]):
            assert time.monotonic() < deadline, f"no {source} answer: {self.answers[-5:]}"
            time.sleep(0.05)


@pytest.fixture
def service(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    running = Service(settings, tmp_path / "service.log")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def test_redis_killed_mid_traffic_never_fails_a_request_and_realtime_comes_back(
    service: Service, redis_server: RedisServer, settings: Settings, lake: OnlineLake
) -> None:
    user, _ = known_user(lake)
    SessionWriter(settings).views(user, [1, 2, 3])
    with Traffic(service, user) as traffic:
        traffic.wait_for("realtime")
        redis_server.stop()
        traffic.wait_for("batch")
        outage_metrics = urllib.request.urlopen(f"{service.base}/metrics").read().decode()
        time.sleep(1.0)
        redis_server.start()  # back empty, as a Redis without persistence comes back
        SessionWriter(settings).views(user, [1, 2, 3])
        traffic.wait_for("realtime")
    assert service.stop() == 0
    statuses = Counter(status for status, _, _ in traffic.answers)
    assert statuses == {200: len(traffic.answers)}, statuses
    assert "recommendations_redis_errors_total" in outage_metrics
    sources = [source for _, source, _ in traffic.answers]
    assert sources[0] == "realtime" and sources[-1] == "realtime" and "batch" in sources


def test_a_hung_redis_costs_one_timeout_then_the_breaker_answers_from_batch(
    lake: OnlineLake, tmp_path: Path
) -> None:
    """A Redis that accepts connections and never answers (a hung process): requests time
    out at `redis_timeout_ms` until the breaker opens, and all of them are answered."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    settings = lake.settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{hung.getsockname()[1]}/0",
                "lakehouse_api_token": SecretStr(TOKEN)}
    )
    user, batch = known_user(lake)
    try:
        with TestClient(create_app(settings)) as client:
            wait_ready(lambda: client.get("/readyz").status_code)
            answers = [client.get(f"/v1/recommendations/{user}", headers=AUTH) for _ in range(20)]
            metrics = client.get("/metrics").text
    finally:
        hung.close()
    assert all(a.status_code == 200 and a.json()["source"] == "batch" for a in answers)
    assert all(products_of(a.json()) == batch for a in answers)
    assert "recommendations_redis_breaker_state 1.0" in metrics
    errors = next(line for line in metrics.splitlines()
                  if line.startswith("recommendations_redis_errors_total "))
    assert float(errors.split()[-1]) < 20  # the open breaker spared the rest


def test_a_new_champion_and_publication_swap_in_under_traffic(
    service: Service, lake: OnlineLake
) -> None:
    user, _ = known_user(lake)
    before = champion(lake.settings, MODEL_NAME)
    with Traffic(service, user) as traffic:
        traffic.wait_for("batch")
        promoted = register(
            lake.settings, MODEL_NAME, load_artifact(lake.settings, before),
            params=before.params, metrics={**before.metrics, "precision_at_10": 1.0},
            training_data=before.training_data, promotion_metric=before.promotion_metric,
        )
        assert promoted.promoted
        build_user_recommendations_partition(lake.settings, lake.day)
        publication = publish_recommendations(lake.settings, lake.day).publication
        deadline = time.monotonic() + 20
        while not any(v == promoted.version for _, _, v in traffic.answers):
            assert time.monotonic() < deadline, traffic.answers[-3:]
            time.sleep(0.05)
    assert service.stop() == 0
    assert {status for status, _, _ in traffic.answers} == {200}
    versions = [version for _, _, version in traffic.answers]
    assert versions[0] == before.version and versions[-1] == promoted.version
    assert publication.model_version == promoted.version


def test_outside_the_local_profile_it_refuses_to_start_without_a_token(
    lake: OnlineLake, tmp_path: Path
) -> None:
    environment = {
        key: value for key, value in settings_env(lake.settings).items()
        if key != "LAKEHOUSE_API_TOKEN"
    }
    result = subprocess.run(
        lakehouse_command("serve", "recommendations", "--port", str(free_port())),
        env={**environment, "LAKEHOUSE_PROFILE": "production-like"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "LAKEHOUSE_API_TOKEN is not set" in result.stdout + result.stderr

