"""Compaction of day partitions and the lock that makes it exclusive, on real Delta tables,
a real PostgreSQL and the real ingest sidecar."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.catalog import (
    BRONZE_CLICKSTREAM,
    BRONZE_SENSOR_READINGS,
    CLICKSTREAM,
    MODEL_REGISTRY,
    QUARANTINE,
    SILVER_SENSOR_READINGS,
    TableSpec,
    table_uri,
)
from lakehouse.delta import ensure_table, last_data_version
from lakehouse.maintenance.compaction import (
    ALREADY_COMPACTED,
    CompactionRowsChanged,
    PartitionFiles,
    compact_day,
    date_partition,
    days_to_compact,
    verify_compaction,
)
from lakehouse.maintenance.locks import MaintenanceBusy, exclusive
from lakehouse.settings import Settings
from lakehouse.transforms.silver import to_silver
from tests.conftest import lakehouse_command, s3_lake_options, settings_env
from tests.support.traffic import SteadyTraffic, assert_exactly_once, stop, wait_for_rows
from tests.support.traffic import bronze as landed_bronze
from tests.test_silver import DAY, NOON, bronze, reading

OTHER_DAY = DAY - timedelta(days=1)
MIB = 1024 * 1024


def land_batches(
    settings: Settings, batches: int, per_batch: int = 5, when: date = DAY, prefix: str = "r"
) -> None:
    """`batches` appends (one small file each) of `per_batch` readings on one day."""
    spec = ensure_table(BRONZE_SENSOR_READINGS, settings)
    noon = NOON + (when - DAY)
    for batch in range(batches):
        rows = [
            reading(f"{prefix}{batch}-{i}", offset=batch * per_batch + i, when=noon)
            for i in range(per_batch)
        ]
        write_deltalake(spec, bronze(*rows), mode="append")


def table(spec: TableSpec, settings: Settings, version: int | None = None) -> DeltaTable:
    uri, options = table_uri(spec, settings), settings.storage_options()
    return DeltaTable(uri, version=version, storage_options=options)


def event_ids(spec: TableSpec, settings: Settings, day: date = DAY) -> Counter[str]:
    """How often each event id of one day is in the table: every count must be 1."""
    rows = table(spec, settings).to_pyarrow_table(columns=["event_date", "event_id"])
    ids = rows.filter(pc.equal(rows["event_date"], pa.scalar(day)))["event_id"]
    return Counter(ids.to_pylist())


def day_files(spec: TableSpec, settings: Settings, day: date, version: int | None = None) -> int:
    actions = pa.table(table(spec, settings, version).get_add_actions(flatten=True))
    return pc.sum(pc.equal(actions["partition.event_date"], pa.scalar(day))).as_py() or 0


# --- compacting a day -----------------------------------------------------------------------


def test_compaction_merges_a_days_small_files_and_keeps_every_row_and_the_history(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 20)
    land_batches(settings, 3, when=OTHER_DAY, prefix="o")
    ids = event_ids(BRONZE_SENSOR_READINGS, settings)
    other_files = day_files(BRONZE_SENSOR_READINGS, settings, OTHER_DAY)

    result = compact_day(BRONZE_SENSOR_READINGS, settings, DAY)

    assert result.compacted and result.skipped is None
    assert (result.files_before, result.files_after) == (20, 1)
    assert (result.rows_before, result.rows_after) == (100, 100)
    assert result.bytes_after < result.bytes_before
    assert result.zorder_by == ()  # bronze is not z-ordered
    assert (result.version_before, result.version_after) == (23, 24)
    assert event_ids(BRONZE_SENSOR_READINGS, settings) == ids
    assert day_files(BRONZE_SENSOR_READINGS, settings, OTHER_DAY) == other_files
    (commit,) = table(BRONZE_SENSOR_READINGS, settings).history(1)
    assert (commit["operation"], commit["version"]) == ("OPTIMIZE", 24)
    # Time travel before the compaction still reads the small files.
    assert day_files(BRONZE_SENSOR_READINGS, settings, DAY, version=23) == 20
    assert table(BRONZE_SENSOR_READINGS, settings, 23).to_pyarrow_table().num_rows == 115


def test_a_compacted_day_is_not_rewritten_again(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    land_batches(settings, 10)
    compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
    version = table(BRONZE_SENSOR_READINGS, settings).version()

    again = compact_day(BRONZE_SENSOR_READINGS, settings, DAY)

    assert again.skipped == ALREADY_COMPACTED and not again.compacted
    assert again.version_before == again.version_after == version
    assert table(BRONZE_SENSOR_READINGS, settings).version() == version
    # A new small file next to the compacted one is worth merging again.
    land_batches(settings, 1, prefix="late")
    assert compact_day(BRONZE_SENSOR_READINGS, settings, DAY).files_after == 1


def test_silver_is_z_ordered_by_the_catalogs_columns_and_not_rewritten_twice(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    silver = ensure_table(SILVER_SENSOR_READINGS, settings)
    for batch in range(8):
        rows = [
            reading(f"s{batch}-{i}", sensor_type=("temperature", "vibration")[i % 2], offset=i)
            for i in range(6)
        ]
        write_deltalake(silver, to_silver(bronze(*rows), "sensor_readings").rows, mode="append")
    ids = event_ids(SILVER_SENSOR_READINGS, settings)

    result = compact_day(SILVER_SENSOR_READINGS, settings, DAY)

    assert result.zorder_by == ("device_id", "sensor_id")
    assert (result.files_before, result.files_after, result.rows_after) == (8, 1, 48)
    assert event_ids(SILVER_SENSOR_READINGS, settings) == ids
    (commit,) = table(SILVER_SENSOR_READINGS, settings).history(1)
    assert commit["operationMetrics"]["plannerStrategy"] == "zOrder"
    # delta-rs's z-order rewrites a whole partition every time it runs: we do not.
    assert compact_day(SILVER_SENSOR_READINGS, settings, DAY).skipped == ALREADY_COMPACTED


def test_a_small_target_size_splits_the_day_into_several_files(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 40, per_batch=50)
    actions = pa.table(table(BRONZE_SENSOR_READINGS, settings).get_add_actions(flatten=True))
    target = 8 * pc.max(actions["size_bytes"]).as_py()

    result = compact_day(BRONZE_SENSOR_READINGS, settings, DAY, target_size=target)

    assert 2 <= result.files_after < 40
    assert result.rows_after == 2_000


@pytest.mark.parametrize(
    ("files", "size", "small", "worth"),
    [
        (1_440, 1_440 * MIB, 1_440, True),  # the seed's day of one-minute files
        (10, 1_100 * MIB, 1, False),  # compacted: nine near-target files and a remainder
        (12, 1_000 * MIB, 0, False),  # compacted into files smaller than the target
        (12, 600 * MIB, 12, True),  # ... but not much of it merged: worth another pass
        (12, 1_000 * MIB, 3, False),  # a few late files beside a compacted day: they wait
        (2, 2 * MIB, 2, True),
        (1, 1 * MIB, 1, False),
    ],
)
def test_a_day_is_worth_compacting_when_its_bytes_fit_in_fewer_files(
    files: int, size: int, small: int, worth: bool
) -> None:
    figures = PartitionFiles(
        version=1, files=files, bytes=size, rows=1, small_files=small, target=128 * MIB
    )
    assert figures.worth_compacting is worth


def test_a_dry_run_reports_the_day_and_writes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 6)
    version = table(BRONZE_SENSOR_READINGS, settings).version()

    plan = compact_day(BRONZE_SENSOR_READINGS, settings, DAY, dry_run=True)

    assert plan.dry_run and plan.skipped is None and not plan.compacted
    assert (plan.files_before, plan.rows_before, plan.version_before) == (6, 30, version)
    assert plan.bytes_before > 0
    assert table(BRONZE_SENSOR_READINGS, settings).version() == version
    compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
    dry = compact_day(BRONZE_SENSOR_READINGS, settings, DAY, dry_run=True)
    assert dry.skipped == ALREADY_COMPACTED


def test_the_days_worth_compacting_are_those_with_several_small_files(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 4)
    land_batches(settings, 3, when=OTHER_DAY, prefix="o")
    land_batches(settings, 1, when=DAY - timedelta(days=2), prefix="single")

    assert days_to_compact(BRONZE_SENSOR_READINGS, settings) == [OTHER_DAY, DAY]
    assert days_to_compact(BRONZE_SENSOR_READINGS, settings, since=DAY) == [DAY]
    compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
    assert days_to_compact(BRONZE_SENSOR_READINGS, settings) == [OTHER_DAY]
    assert days_to_compact(SILVER_SENSOR_READINGS, settings) == []  # not created yet


def test_a_day_without_files_is_skipped(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    land_batches(settings, 2)
    assert compact_day(BRONZE_SENSOR_READINGS, settings, OTHER_DAY).skipped == "no files"


def test_tables_without_a_date_partition_are_refused(
    make_settings: Callable[..., Settings],
) -> None:
    assert date_partition(QUARANTINE) == "quarantine_date"
    with pytest.raises(ValueError, match=r"models\.registry is not partitioned by a date"):
        compact_day(MODEL_REGISTRY, make_settings(), DAY)


def test_the_last_data_version_skips_compactions_and_vacuums(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 3)  # versions 1 to 3 (0 created the table)
    compact_day(BRONZE_SENSOR_READINGS, settings, DAY)  # 4
    table(BRONZE_SENSOR_READINGS, settings).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )  # 5 and 6: VACUUM START and END
    latest = table(BRONZE_SENSOR_READINGS, settings).version()
    assert latest == 6

    assert last_data_version(BRONZE_SENSOR_READINGS, settings, latest) == 3
    assert last_data_version(BRONZE_SENSOR_READINGS, settings, 2) == 2
    land_batches(settings, 1, prefix="new")
    assert last_data_version(BRONZE_SENSOR_READINGS, settings, 7) == 7


def test_compaction_on_s3_under_the_postgres_lock(
    make_settings: Callable[..., Settings],
    moto_server: str,
    s3_bucket: str,
    postgres_database: str,
) -> None:
    """The production-like combination: the lake in S3, the lock in PostgreSQL."""
    settings = make_settings(
        **s3_lake_options(moto_server, s3_bucket),
        maintenance_lock_url=postgres_database,
    )
    land_batches(settings, 6)
    ids = event_ids(BRONZE_SENSOR_READINGS, settings)

    result = compact_day(BRONZE_SENSOR_READINGS, settings, DAY)

    assert (result.files_before, result.files_after, result.rows_after) == (6, 1, 30)
    assert event_ids(BRONZE_SENSOR_READINGS, settings) == ids
    assert last_data_version(BRONZE_SENSOR_READINGS, settings, result.version_after) == 6
    with exclusive(BRONZE_SENSOR_READINGS, settings), pytest.raises(MaintenanceBusy):
        compact_day(BRONZE_SENSOR_READINGS, settings, DAY)


# --- the hazard: two OPTIMIZE runs from one version ----------------------------------------


def test_without_the_lock_two_compactions_from_one_version_both_commit_and_duplicate_the_day(
    make_settings: Callable[..., Settings],
) -> None:
    """delta-rs 1.6.6's conflict checker lets both commit: why compaction takes a lock.
    If this starts failing, delta-rs fixed it; the lock stays harmless."""
    settings = make_settings()
    land_batches(settings, 8)
    day = [("event_date", "=", DAY.isoformat())]
    first, second = table(BRONZE_SENSOR_READINGS, settings), table(BRONZE_SENSOR_READINGS, settings)

    first.optimize.compact(partition_filters=day)
    second.optimize.compact(partition_filters=day)

    assert table(BRONZE_SENSOR_READINGS, settings).to_pyarrow_table().num_rows == 80  # not 40
    assert set(event_ids(BRONZE_SENSOR_READINGS, settings).values()) == {2}
    # The row check over the second commit catches it, with the figures.
    with pytest.raises(CompactionRowsChanged, match="from 40 to 80") as caught:
        verify_compaction(BRONZE_SENSOR_READINGS, settings, DAY, second.version())
    assert (caught.value.result.rows_before, caught.value.result.rows_after) == (40, 80)
    first_check = verify_compaction(BRONZE_SENSOR_READINGS, settings, DAY, first.version())
    assert first_check.rows_after == 40


def test_two_compactions_at_once_keep_every_row(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    land_batches(settings, 60)
    ids = event_ids(BRONZE_SENSOR_READINGS, settings)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def compact() -> None:
        start.wait()
        try:
            result = compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
        except MaintenanceBusy:
            outcomes.append("busy")
        else:
            outcomes.append("compacted" if result.compacted else result.skipped or "")

    workers = [threading.Thread(target=compact) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # One wins; the other found the lock held, or (if it came second) nothing to do.
    assert sorted(outcomes) in (["busy", "compacted"], [ALREADY_COMPACTED, "compacted"])
    assert event_ids(BRONZE_SENSOR_READINGS, settings) == ids
    assert set(ids.values()) == {1}
    history = table(BRONZE_SENSOR_READINGS, settings).history()
    assert [c["operation"] for c in history].count("OPTIMIZE") == 1


def test_a_compaction_refuses_while_the_table_is_held_or_waits_when_asked(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    land_batches(settings, 5)
    version = table(BRONZE_SENSOR_READINGS, settings).version()
    with exclusive(BRONZE_SENSOR_READINGS, settings, "vacuum"):
        with pytest.raises(MaintenanceBusy, match=r"bronze\.sensor_readings .*vacuum of"):
            compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
        assert table(BRONZE_SENSOR_READINGS, settings).version() == version

    held = exclusive(BRONZE_SENSOR_READINGS, settings)
    held.__enter__()
    threading.Timer(0.5, held.__exit__, (None, None, None)).start()
    began = time.monotonic()
    assert compact_day(BRONZE_SENSOR_READINGS, settings, DAY, lock_timeout=10).compacted
    assert 0.4 < time.monotonic() - began < 10


# --- appends and compaction -----------------------------------------------------------------


def test_appends_and_a_compaction_from_an_older_version_do_not_conflict(
    make_settings: Callable[..., Settings],
) -> None:
    """Both orders, as stack.md records for delta-rs 1.6.6: the sidecar's blind appends
    never fail because of a compaction, and a compaction never fails because of them."""
    settings = make_settings()
    land_batches(settings, 5, prefix="a")
    stale = table(BRONZE_SENSOR_READINGS, settings)
    land_batches(settings, 3, prefix="b")  # appends land after the compaction read
    stale.optimize.compact(partition_filters=[("event_date", "=", DAY.isoformat())])
    assert stale.history(1)[0]["readVersion"] == 5
    appender = table(BRONZE_SENSOR_READINGS, settings)  # an append read before a compaction
    compact_day(BRONZE_SENSOR_READINGS, settings, DAY)
    write_deltalake(appender, bronze(reading("c", offset=99)), mode="append")

    ids = event_ids(BRONZE_SENSOR_READINGS, settings)
    assert len(ids) == 41 and set(ids.values()) == {1}


# --- the lock, both kinds ---------------------------------------------------------------------


@pytest.fixture(params=["file", "postgres"])
def lock_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Settings:
    """Settings whose maintenance lock is a local file, or a PostgreSQL advisory lock."""
    if request.param == "file":
        return make_settings()
    return make_settings(maintenance_lock_url=request.getfixturevalue("postgres_database"))


HOLD_LOCK = """
import sys
from lakehouse.catalog import BRONZE_SENSOR_READINGS
from lakehouse.maintenance.locks import exclusive
from lakehouse.settings import Settings
with exclusive(BRONZE_SENSOR_READINGS, Settings(), "vacuum"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(lock_settings: Settings) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of bronze.sensor_readings until killed."""
    env = settings_env(lock_settings)
    if lock_settings.maintenance_lock_url is not None:
        env["MAINTENANCE_LOCK_URL"] = lock_settings.maintenance_lock_url.get_secret_value()
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()


def test_the_lock_excludes_a_second_holder_and_names_the_first(lock_settings: Settings) -> None:
    with exclusive(BRONZE_SENSOR_READINGS, lock_settings):
        with (
            pytest.raises(MaintenanceBusy) as busy,
            exclusive(BRONZE_SENSOR_READINGS, lock_settings, "vacuum"),
        ):
            pass
        assert busy.value.table == "bronze.sensor_readings"
        assert busy.value.holder is not None
        assert busy.value.holder.startswith("compaction of bronze.sensor_readings by pid")
        with exclusive(SILVER_SENSOR_READINGS, lock_settings):  # another table: its own lock
            pass
    with exclusive(BRONZE_SENSOR_READINGS, lock_settings):  # released on leaving
        pass


def test_the_lock_excludes_another_process_until_it_dies(
    lock_settings: Settings, holder: subprocess.Popen[str]
) -> None:
    expected = rf"held by vacuum of bronze\.sensor_readings by pid {holder.pid} on"
    with (
        pytest.raises(MaintenanceBusy, match=expected),
        exclusive(BRONZE_SENSOR_READINGS, lock_settings),
    ):
        pass
    holder.kill()  # no clean exit: the kernel or the server releases the lock
    holder.wait()
    with exclusive(BRONZE_SENSOR_READINGS, lock_settings, timeout=10):
        pass


def test_the_lock_url_may_be_written_for_sqlalchemy_or_for_libpq(
    make_settings: Callable[..., Settings], postgres_database: str
) -> None:
    assert postgres_database.startswith("postgresql+psycopg2://")
    plain = make_settings(maintenance_lock_url=postgres_database.replace("+psycopg2", ""))
    sqlalchemy = make_settings(maintenance_lock_url=postgres_database)
    with (
        exclusive(BRONZE_SENSOR_READINGS, plain),
        pytest.raises(MaintenanceBusy),
        exclusive(BRONZE_SENSOR_READINGS, sqlalchemy),
    ):
        pass
    assert not (Path(plain.home) / "locks").exists()  # no file lock was taken


# --- beside the running ingest sidecar ------------------------------------------------------


def test_compaction_beside_the_running_ingest_sidecar_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """The real `lakehouse ingest` lands clickstream traffic (all on DAY) while that day is
    compacted again and again; afterwards every event is there once and each Kafka
    partition's recorded offset (the sidecar's txn version) is still its last row's."""
    log = tmp_path / "ingest.log"
    traffic = SteadyTraffic(settings, rate=2_000)
    with log.open("ab") as sink:
        ingest = subprocess.Popen(
            lakehouse_command("ingest", "--topics", "clickstream"),
            env=settings_env(settings),
            stdout=sink,
            stderr=sink,
        )
    try:
        traffic.start()
        wait_for_rows(settings, "clickstream", 1, timeout=60)
        compactions = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            result = compact_day(BRONZE_CLICKSTREAM, settings, DAY)
            compactions += [result] if result.compacted else []
            time.sleep(0.3)
        produced = traffic.finish()
        wait_for_rows(settings, "clickstream", produced, timeout=60)
        assert stop(ingest) == 0, log.read_text()[-3000:]
    finally:
        if ingest.poll() is None:
            ingest.kill()
            ingest.wait()

    assert_exactly_once(settings, "clickstream", traffic.expected_ids())
    assert len(compactions) >= 5
    assert all(c.rows_before == c.rows_after for c in compactions)
    landed = landed_bronze(settings, "clickstream")
    delta = table(BRONZE_CLICKSTREAM, settings)
    for partition in range(CLICKSTREAM.partitions):
        offsets = landed.filter(pc.equal(landed["_kafka_partition"], partition))["_kafka_offset"]
        app_id = f"{settings.ingest_app_id}:clickstream:{partition}"
        assert delta.transaction_version(app_id) == pc.max(offsets).as_py()
    # The compactions really interleaved with the sidecar's commits.
    operations = [c["operation"] for c in reversed(delta.history())]
    first, last = operations.index("OPTIMIZE"), len(operations) - operations[::-1].index("OPTIMIZE")
    assert "WRITE" in operations[first:last]
