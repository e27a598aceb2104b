"""Fixtures that start real services on free ports and clean up after themselves.

Nothing here is mocked: the broker is the project's embedded tansu, S3 is a local
moto_server, tables are real Delta tables in temporary folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import dagster as dg
import psycopg2
import pytest
from botocore.client import BaseClient
from xdist.scheduler import LoadFileScheduling

from lakehouse.broker import EmbeddedBroker, ensure_topics, port_open
from lakehouse.settings import Settings, get_settings
from tests.support.net import free_port
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent

# The tests build days in 2025 and 2026 on temporary lakes, several per process, while the
# daily partitions are fixed when `assets` is first imported: start them early for the
# whole session (subprocesses inherit it). `first_partition_day`'s own default (the first
# landed day) is tested on its own in test_orchestration.py.
os.environ.setdefault("LAKEHOUSE_FIRST_DAY", "2025-01-01")


# The one local Spark session of a test process (`spark`), shared by every Spark test.
pytest_plugins = ("tests.support.spark",)

SPARK_MODULES = {
    "test_engine.py",
    "test_gold_spark.py",
    "test_gold_spark_ecommerce.py",
    "test_medallion_spark.py",
    "test_quality_spark.py",
    "test_recommender_spark.py",
    "test_silver_spark.py",
    "test_spark_bridge.py",
}
"""The modules whose tests use the process's Spark session (tests/support/spark.py)."""

# About how long each module takes in CI (2 cores, two xdist workers; seconds), longest
# first; the Spark modules together as one. Only the order matters: xdist hands out the
# modules in collection order as workers free up (SparkOnOneWorker), so the longest start
# first and the short ones fill in at the end, instead of a worker running the last long
# module alone. A module missing here starts after these, in its usual order.
MODULE_SECONDS = {
    "spark": 510,
    "test_cli.py": 455,
    "test_reliability.py": 169,
    "test_orchestration.py": 129,
    "test_quality.py": 126,
    "test_profiles.py": 110,
    "test_ingest.py": 46,
    "test_webserver.py": 44,
    "test_recommendation_service.py": 42,
    "test_iot_alerts.py": 41,
    "test_session_features.py": 39,
    "test_fraud_audit.py": 36,
    "test_recommender.py": 33,
    "test_iot_edge.py": 33,
    "test_fraud_service.py": 29,
    "test_compaction.py": 29,
    "test_ingest_fuzz.py": 26,
}


def _unit(nodeid: str) -> str:
    """The work unit of a test: `spark` for the Spark modules, else its module's file."""
    module = nodeid.split("::", 1)[0]
    return "spark" if module.rsplit("/", 1)[-1] in SPARK_MODULES else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest work units first (MODULE_SECONDS), each module's tests in their order."""

    def longest_first(item: pytest.Item) -> int:
        return -MODULE_SECONDS.get(_unit(item.nodeid).rsplit("/", 1)[-1], 0)

    items.sort(key=longest_first)  # stable: within a unit, and among the others


class SparkOnOneWorker(LoadFileScheduling):
    """`--dist loadfile` (a module's tests on one worker, so module-scoped fixtures are
    built once), with every test of SPARK_MODULES in a single unit: one worker starts one
    JVM and builds each Spark module's fixtures, where two workers could each start a JVM
    on two cores. With `--no-loadscope-reorder` the units go out in collection order,
    longest first (pytest_collection_modifyitems)."""

    def _split_scope(self, nodeid: str) -> str:
        return "spark" if _unit(nodeid) == "spark" else super()._split_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadFileScheduling | None:
    if config.getvalue("dist") == "loadfile":
        return SparkOnOneWorker(config, log)
    return None  # another --dist given on the command line: xdist's own


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh in-memory tansu broker on a free port."""
    server = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log").start()
    yield server
    server.stop()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (in a temporary folder) for one test's runs and ticks."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a temporary lake; keyword arguments override fields."""

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "lakehouse_home": tmp_path / "home",
            "lakehouse_root": str(tmp_path / "lake"),
            "ingest_group_id": f"test-{uuid.uuid4().hex[:8]}",
            "ingest_flush_seconds": 1.0,
            "kafka_session_timeout_ms": 6000,
            "kafka_heartbeat_interval_ms": 500,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
def settings(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> Settings:
    """Settings pointing at the test broker, with every catalogued topic created."""
    built = make_settings(kafka_bootstrap_servers=broker.bootstrap)
    ensure_topics(built)
    return built


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess (`lakehouse ...`) see the same settings."""
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(settings.lakehouse_home),
        "LAKEHOUSE_ROOT": settings.lakehouse_root,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "INGEST_GROUP_ID": settings.ingest_group_id,
        "INGEST_FLUSH_SECONDS": str(settings.ingest_flush_seconds),
        "INGEST_FLUSH_ROWS": str(settings.ingest_flush_rows),
        "KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.kafka_heartbeat_interval_ms),
        "LAKEHOUSE_PROFILE": settings.lakehouse_profile.value,
        "AWS_REGION": settings.aws_region,
        "AWS_ALLOW_HTTP": "true" if settings.aws_allow_http else "false",
    }
    if settings.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    online = [
        name
        for name in type(settings).model_fields
        if name.startswith(
            ("redis_", "session_features_", "recommendations_", "fraud_", "iot_alerts_")
        )
    ]
    for name in online:
        value = getattr(settings, name)
        if value is not None:
            env[name.upper()] = str(value)
    for name in ("aws_access_key_id", "aws_secret_access_key", "lakehouse_api_token"):
        secret = getattr(settings, name)
        if secret is not None:
            env[name.upper()] = secret.get_secret_value()
    return env


@pytest.fixture
def activate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Settings], None]]:
    """Make given settings the process's own, as Dagster's resources read them (from the
    environment), for code that runs in this process: schedules, sensors, runs."""

    def apply(settings: Settings) -> None:
        for name, value in settings_env(settings).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def another_hash_seed() -> str:
    """A PYTHONHASHSEED for a subprocess that differs from this process's (set ordering and
    `hash()` differ between them), as it does between the CLI and `dagster dev`."""
    return "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL; yields its SQLAlchemy URL."""
    name = f"dagster_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(POSTGRES_ADMIN, connect_timeout=5)
    except psycopg2.OperationalError as error:
        raise RuntimeError(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {error}") from error
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def lakehouse_command(*args: str) -> list[str]:
    """The installed console script, run with this interpreter's environment."""
    script = Path(sys.executable).parent / "lakehouse"
    return [str(script), *args]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A local S3 (moto_server) for the whole session; yields its endpoint URL."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("moto_server is not installed: install the project's [test] extra")
    port = free_port()
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moto_server did not start")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def s3_client(endpoint: str) -> BaseClient:
    """A boto3 S3 client for the local moto_server (its credentials are accepted as is)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def s3_lake_options(endpoint: str, bucket: str) -> dict[str, object]:
    """The settings that put a lake at s3://<bucket>/lake on the local moto_server (or a
    proxy in front of it at `endpoint`), for `make_settings(**s3_lake_options(...), ...)`."""
    return {
        "lakehouse_root": f"s3://{bucket}/lake",
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_allow_http": True,
    }


@pytest.fixture
def s3_bucket(moto_server: str) -> str:
    """A fresh bucket on the local S3; yields its name."""
    name = f"lake-{uuid.uuid4().hex[:10]}"
    s3_client(moto_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, empty `redis-server` on a free port, stopped afterwards."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
