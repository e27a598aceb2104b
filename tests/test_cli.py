"""The `lakehouse` console script, run for real as a subprocess against real services.

The CLI is the user's handle on everything outside the Dagster UI, so these tests go
through the installed entry point (argument parsing, exit codes, what lands on stdout and
stderr) rather than calling the functions behind it.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from lakehouse.broker import pid_alive, running_broker, terminate_pid
from lakehouse.catalog import BRONZE_CLICKSTREAM, CATALOG, topic_partitions
from lakehouse.delta import ensure_table
from lakehouse.online.fraud_state import CATEGORY_RISK_KEY
from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.conftest import lakehouse_command, settings_env
from tests.support.net import free_port
from tests.support.redis_server import RedisServer
from tests.support.traffic import click_event, produce
from tests.test_profiles import SILVER_AND_GOLD


def lakehouse(
    settings: Settings, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `lakehouse ARGS` with the test's settings; wide output so rich does not wrap."""
    env = {**settings_env(settings), "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        lakehouse_command(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lakehouse {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def landed(settings: Settings) -> Settings:
    """1,000 clickstream events (ids c0..c999) landed in bronze by an in-process worker."""
    produce(settings, "clickstream", map(click_event, range(1_000)))
    options = IngestOptions(topics=["clickstream"], until_idle=True, handle_signals=False)
    report = IngestWorker(settings, options).run()
    assert report.written == 1_000
    return settings


def test_up_is_idempotent_status_lists_topics_and_down_stops_it(
    make_settings: Callable[..., Settings],
) -> None:
    # A free port where no broker runs, so `up` has to start its own.
    settings = make_settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    try:
        first = lakehouse(settings, "up").stdout
        assert "broker started" in first
        for topic in CATALOG.topics:
            assert topic in first.split("created:")[1]
        state = running_broker(settings)
        assert state is not None and pid_alive(int(state["pid"]))

        second = lakehouse(settings, "up").stdout
        assert "already running" in second
        assert "none (all exist)" in second
        assert running_broker(settings) == state  # the same process, not a second one

        status = lakehouse(settings, "status").stdout
        assert f"pid {state['pid']}" in status
        for topic in CATALOG.topics.values():
            wanted = topic_partitions(topic, settings)
            line = next(line for line in status.splitlines() if f"topic {topic.name} " in line)
            assert f"{wanted} partitions" in line, line
    finally:
        down = lakehouse(settings, "down", check=False)
        leftover = running_broker(settings)
        if leftover is not None:  # never leave a broker behind, even if `down` is broken
            terminate_pid(int(leftover["pid"]))
    assert down.returncode == 0 and "broker stopped" in down.stdout
    assert not pid_alive(int(state["pid"]))
    after = lakehouse(settings, "status").stdout
    assert "down" in next(line for line in after.splitlines() if "kafka" in line)


def test_tables_lists_every_catalogued_table(landed: Settings) -> None:
    output = lakehouse(landed, "tables").stdout
    for key in CATALOG.tables:
        assert key in output, f"{key} missing from `lakehouse tables`"
    clickstream = next(line for line in output.splitlines() if "bronze.clickstream" in line)
    assert "1,000" in clickstream  # rows
    assert "not created" not in clickstream


def test_query_answers_as_json_and_csv(landed: Settings) -> None:
    sql = (
        "SELECT count(*) AS events, count(DISTINCT event_id) AS ids, "
        "min(_kafka_offset) >= 0 AS has_offsets FROM bronze.clickstream"
    )
    as_json = orjson.loads(lakehouse(landed, "query", sql, "--format", "json").stdout)
    assert as_json == [{"events": 1_000, "ids": 1_000, "has_offsets": True}]

    sql = (
        "SELECT event_id, user_id FROM bronze.clickstream "
        "WHERE event_id IN ('c1', 'c2', 'c998') ORDER BY event_id"
    )
    rows = list(csv.reader(io.StringIO(lakehouse(landed, "query", sql, "-f", "csv").stdout)))
    assert rows == [["event_id", "user_id"], ["c1", "1"], ["c2", "2"], ["c998", "1"]]
    explained = lakehouse(landed, "query", sql, "-f", "csv", "--explain-files")
    assert list(csv.reader(io.StringIO(explained.stdout))) == rows
    assert "bronze.clickstream: " in explained.stderr
    assert "(event_id IN ('c1', 'c2', 'c998'))" in explained.stderr

    nested = "SELECT 'a,b' AS text, [1, 2] AS numbers, NULL::INTEGER AS nothing"
    rows = list(csv.reader(io.StringIO(lakehouse(landed, "query", nested, "-f", "csv").stdout)))
    assert rows == [["text", "numbers", "nothing"], ["a,b", "[1,2]", ""]]


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        ("SELEC nonsense", "syntax error"),
        ("SELECT * FROM bronze.no_such_table", "no_such_table"),
        ("SELECT count(*) FROM gold.product_daily", "gold.product_daily not written yet"),
    ],
)
def test_bad_sql_fails_with_a_clear_message(
    make_settings: Callable[..., Settings], sql: str, hint: str
) -> None:
    result = lakehouse(make_settings(), "query", sql, check=False)  # DuckDB needs no broker
    assert result.returncode == 1
    assert "query failed" in result.stderr
    assert hint in result.stderr.lower()
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("domain", ["retail", "platform"])
def test_generate_rejects_an_unknown_domain(
    make_settings: Callable[..., Settings], domain: str
) -> None:
    # Rejected before any connection is made: no broker needed.
    result = lakehouse(make_settings(), "generate", domain, "--events", "10", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_ingest_command_lands_until_idle(settings: Settings) -> None:
    produce(settings, "clickstream", map(click_event, range(500)))
    output = lakehouse(settings, "ingest", "--topics", "clickstream", "--until-idle").stdout
    assert "ingested" in output and "500 rows landed" in output
    answer = lakehouse(
        settings, "query", "SELECT count(*) AS n FROM bronze.clickstream", "-f", "json"
    )
    assert orjson.loads(answer.stdout) == [{"n": 500}]


def test_materialize_rebuilds_silver_and_gold_through_dagster(landed: Settings) -> None:
    run = lakehouse(landed, "materialize", timeout=180)
    output = run.stdout
    assert "succeeded" in output
    assert "Warning" not in run.stderr  # e.g. PySpark's on pandas 3, from GX's import
    assert f"{len(SILVER_AND_GOLD)} assets materialized for 2026-11-23..2026-11-23" in output
    answer = lakehouse(
        landed,
        "query",
        "SELECT (SELECT count(*) FROM silver.clickstream) AS kept, "
        "(SELECT count(*) FROM silver.rejected_rows) AS rejected",
        "-f",
        "json",
    )
    # user_id = number % 997: events c0 and c997 have user 0, which silver sets aside.
    assert orjson.loads(answer.stdout) == [{"kept": 998, "rejected": 2}]


def test_a_failed_training_says_why_in_one_line_per_model(landed: Settings) -> None:
    """Clicks only: neither model has what it learns from. The command says so for each,
    without Dagster's tracebacks (the run's logs keep them)."""
    failed = lakehouse(landed, "train", "--day", "2026-11-23", check=False)
    assert failed.returncode == 1
    assert "models__fraud_xgboost: ValueError: no silver transactions" in failed.stderr
    assert "models__recommender_als: ValueError:" in failed.stderr
    assert "Traceback" not in failed.stderr and "STEP_FAILURE" not in failed.stderr


def test_faulty_traffic_is_stopped_by_its_quality_check_end_to_end(settings: Settings) -> None:
    """generate --faults -> Kafka -> ingest -> materialize: the blocking check fires."""
    lakehouse(
        settings,
        "generate",
        "iot",
        "--events",
        "3000",
        "--start",
        "2026-11-23",
        "--faults",
        "out_of_range=0.05",
    )
    lakehouse(settings, "ingest", "--until-idle", "--no-json-logs", timeout=120)
    failed = lakehouse(settings, "materialize", check=False, timeout=180)
    assert failed.returncode == 1
    assert "silver/sensor_readings:value_physically_possible (error)" in failed.stdout
    # The refused write said once, in the CLI's words; Dagster's traces stay in the run's log.
    assert "silver__sensor_readings: quality.gate.BlockedWrite" in failed.stderr
    assert "Stack Trace" not in failed.stderr and "Traceback" not in failed.stderr
    bad = lakehouse(settings, "generate", "iot", "--faults", "typos=0.1", check=False)
    assert bad.returncode == 2 and "unknown fault 'typos'" in bad.stderr


def test_several_generated_days_train_and_register_the_daily_models(
    settings: Settings, redis_server: RedisServer
) -> None:
    """generate --days -> Kafka -> ingest -> materialize -> train: both daily models are
    registered and promoted (the registry is empty), and the fraud service's profiles are
    published (to a private Redis). Retrained on the same day, the fraud model is compared
    with its champion on that test day; the recommender's champion was refit on its
    held-out day, so it cannot be judged there and is kept."""
    settings = settings.model_copy(update={"redis_url": redis_server.url})
    # Three days, the fewest both time-based splits take (the fraud model's training,
    # validation and test days; the recommender's held-out last day), at the same events
    # per day as four days of 40,000 and 60,000 had: the materialize and both trainings
    # cost a quarter less, and each day still has as much traffic (and fraud) as before.
    for domain, events in (("fraud", "30000"), ("ecommerce", "45000")):
        lakehouse(
            settings, "generate", domain, "--events", events, "--days", "3", "--start", "2026-11-20"
        )
    lakehouse(settings, "ingest", "--until-idle", "--no-json-logs", timeout=180)
    lakehouse(settings, "materialize", timeout=300)
    first = lakehouse(settings, "train", "--day", "2026-11-22", timeout=300)
    for model in ("models/recommender_als", "models/fraud_xgboost", "online/fraud_user_profiles"):
        assert model in first.stdout
    assert first.stdout.count("first version: promoted") == 2
    published = redis_server.client()
    assert published.exists(CATEGORY_RISK_KEY) and any(published.scan_iter("fraud:profile:*"))
    again = lakehouse(settings, "train", timeout=300)  # the last landed day: the same one
    assert again.stdout.count("on the same held-out data") == 1
    assert "not comparable: the champion v1 has learnt from" in again.stdout


def test_training_without_data_is_refused_clearly(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    empty = lakehouse(settings, "train", check=False)
    assert empty.returncode == 1 and "bronze holds no data yet" in empty.stderr
    lakehouse_days = lakehouse(settings, "train", "--day", "2026-11-22", "--weekly", check=False)
    assert lakehouse_days.returncode == 1
    assert "silver.transactions holds no rows yet" in lakehouse_days.stderr


def test_materialize_refuses_days_it_cannot_run(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    empty = lakehouse(settings, "materialize", check=False)
    assert empty.returncode == 1
    assert "bronze holds no data yet" in empty.stderr
    early = lakehouse(
        settings, "materialize", "--from", "2024-01-01", "--to", "2024-01-02", check=False
    )
    assert early.returncode == 2
    assert "outside the daily partitions" in early.stderr


def ingested(output: str) -> int:
    """The messages the demo's ingest stage landed."""
    return _number(r"ingested\s+([\d,]+)\s+messages", output)


def edge_counts(output: str) -> int:
    """What the IoT edge put on Kafka, as its processes reported it: readings forwarded
    and quarantined by the gateway, alert records produced by the alert processor."""
    return (
        _number(r"([\d,]+)\s+forwarded", output)
        + _number(r"([\d,]+)\s+quarantined,\s+[\d,]+\s+filtered", output)
        + _number(r"([\d,]+)\s+alert\s+records", output)
    )


def _number(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    assert found is not None, f"{pattern!r} not in the output:\n{output}"
    return int(found.group(1).replace(",", ""))


def test_demo_runs_end_to_end_and_survives_a_broker_restart(
    make_settings: Callable[..., Settings], redis_server: RedisServer
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", redis_url=redis_server.url
    )
    lake = Path(settings.lake_root)
    try:
        first = lakehouse(settings, "demo", "--scale", "0.01", timeout=240).stdout
        assert "broker started" in first and "Done in" in first
        # 10K e-commerce + 2.5K fraud straight to Kafka; 5K IoT readings over MQTT, less
        # the redeliveries the gateway filtered; the alerts the processor raised.
        assert "5,000 readings published over MQTT" in first, first
        assert ingested(first) == 12_500 + edge_counts(first), first
        assert "quarantined" in first and "moved the old lake" not in first
        assert f"materialized {len(SILVER_AND_GOLD)} assets" in first
        assert "fraud gold: fraud rate by merchant category" in first
        assert "nightly maintenance of" in first and "maintenance/bronze_compaction" in first
        assert "e-commerce gold: the session funnel yesterday" in first
        assert "dagster dev" in first
        today = datetime.now(UTC).date()
        first_day, yesterday = today - timedelta(days=3), today - timedelta(days=1)
        assert f"lakehouse materialize --from {first_day} --to {yesterday}" in first
        # The online half: trained, published, served, and the shopper's clicks seen.
        assert "session processor running" in first
        assert "recommendation service ready" in first
        answers = [re.split(r"\s*│\s*", line) for line in first.splitlines() if "│" in line]
        after = [cells for cells in answers if "after" in cells]
        before = [cells for cells in answers if "before" in cells]
        assert len(after) == 2 and all("realtime" in cells for cells in after), first
        assert any("popular" in cells for cells in before), first  # the newcomer
        assert "stopped with SIGTERM (exit code 0)" in first

        # The in-memory topics die with the broker while the lake stays: the next demo
        # must notice the lake is ahead of the new topics and move it aside.
        lakehouse(settings, "down")
        second = lakehouse(settings, "demo", "--scale", "0.01", timeout=240).stdout
        assert "moved the old lake" in second, second
        assert (lake.parent / f"{lake.name}.previous").is_dir()
        assert ingested(second) == 12_500 + edge_counts(second), second
    finally:
        lakehouse(settings, "reset", "--yes", check=False)
        leftover = running_broker(settings)
        if leftover is not None:
            terminate_pid(int(leftover["pid"]))
    assert not lake.exists()


def test_reset_asks_before_deleting(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ensure_table(BRONZE_CLICKSTREAM, settings)
    refused = lakehouse(settings, "reset", check=False)  # stdin is closed: no confirmation
    assert refused.returncode == 1
    assert Path(settings.lake_root, "bronze", "clickstream", "_delta_log").is_dir()
