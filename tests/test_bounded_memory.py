"""A day built under a memory cap so small that DuckDB must spill to disk gives exactly the
rows of the in-memory build: silver (dedupe of redelivered events, the rules, the order),
its rejected rows, the gold aggregates and the quality checks' verdicts; and building the
day again replaces it with the same rows.

The day is generated traffic with faults (missing fields, values out of range, duplicate
messages) and its first events redelivered in a later commit, so that every path of the
build has rows to take: the dedupe window, the rejected rows, failing checks."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from lakehouse.catalog import (
    CATALOG,
    GOLD_PRODUCT_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    REJECTED_ROWS,
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    SILVER_SEARCH,
    TableSpec,
)
from lakehouse.delta import ensure_table, open_table
from lakehouse.settings import Settings
from lakehouse.transforms import duck
from lakehouse.transforms.ecommerce import (
    build_product_daily_partition,
    build_user_activity_daily_partition,
    product_daily,
    user_activity_daily,
)
from lakehouse.transforms.engine import row_count
from lakehouse.transforms.silver import build_silver_partition, to_silver
from lakehouse.transforms.tables import read_days
from quality.suites import suite_for
from quality.validate import CheckOutcome, validate
from streaming.generators import DomainGenerator, Faults, make_generator
from tests.support.landing import land_in_bronze
from tests.support.rows import assert_same_rows

DAY = date(2026, 3, 2)
MILLISECOND = timedelta(milliseconds=1)
EVENTS = 160_000  # about 140K clickstream rows: tens of MB in DuckDB, past the cap
REDELIVERED = 15_000  # the first events land a second time, later: duplicates to drop
CAP = "64MB"  # DuckDB 2.0 could not sort a day of clicks under 32MB
SILVER = (SILVER_CLICKSTREAM, SILVER_CART_EVENTS, SILVER_SEARCH, SILVER_PURCHASES)


FAULTS = Faults(nulls=0.002, out_of_range=0.002, duplicates=0.01)


def generator() -> DomainGenerator:
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    return make_generator(
        "ecommerce", seed=11, start=start, span=timedelta(hours=20), faults=FAULTS
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A generated e-commerce day in bronze, its first events redelivered in a later commit."""
    root = tmp_path_factory.mktemp("bounded")
    settings = Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"))
    land_in_bronze(settings, generator(), EVENTS)
    land_in_bronze(settings, generator(), REDELIVERED)
    land_rule_breakers(settings)
    return settings


def land_rule_breakers(settings: Settings, rows: int = 50) -> None:
    """Some of the day's clicks again under new ids, breaking silver's rules (a user id
    that is not positive, an unknown event type): rows for the rejected-rows table."""
    spec = CATALOG.bronze_for_topic("clickstream")
    clicks = read_days(settings, spec, None, DAY).slice(0, rows)
    broken = {
        "event_id": pa.array([f"broken-{i}" for i in range(rows)]),
        "user_id": pa.array([-1] * (rows // 2) + clicks["user_id"].to_pylist()[rows // 2 :]),
        "event_type": pa.array(["teleport"] * rows),
    }
    for name, values in broken.items():
        clicks = clicks.set_column(clicks.schema.get_field_index(name), name, values)
    write_deltalake(ensure_table(spec, settings), clicks.cast(spec.schema), mode="append")


def capped(settings: Settings, spill: Path) -> Settings:
    return settings.model_copy(
        update={"duckdb_memory_limit": CAP, "duckdb_threads": 1, "duckdb_spill_dir": spill}
    )


class SpillWatcher:
    """Whether DuckDB wrote anything to the spill folder while a build ran."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.files_seen = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> SpillWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            if self.folder.exists():
                seen = sum(1 for path in self.folder.rglob("*") if path.is_file())
                self.files_seen = max(self.files_seen, seen)


class RecordingGuard:
    """Validates what it is handed as the quality gate does, records every outcome, and
    never refuses: the faulty day must be written for the comparisons."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outcomes: dict[str, list[CheckOutcome]] = {}
        self.kinds: set[type] = set()

    def __call__(self, spec: TableSpec, day: date, rows: Any) -> None:
        self.kinds.add(type(rows))
        self.outcomes[spec.key] = validate(suite_for(spec), rows, day, self.settings)


def build_day(settings: Settings, guard: RecordingGuard | None = None) -> None:
    """What the medallion runs for the day: the four silver tables, then two gold ones."""
    with duck.bounded(settings):
        for spec in SILVER:
            build_silver_partition(settings, spec.source_topic or "", DAY, guard)
        build_user_activity_daily_partition(settings, DAY, guard)
        build_product_daily_partition(settings, DAY, guard)


@pytest.fixture(scope="module")
def built(lake: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    spill = tmp_path_factory.mktemp("spill")
    settings = capped(lake, spill)
    guard = RecordingGuard(settings)
    with SpillWatcher(spill) as watcher:
        build_day(settings, guard)
    yield settings, guard, watcher


def in_memory_silver(settings: Settings, spec: TableSpec) -> tuple[pa.Table, pa.Table]:
    bronze = read_days(settings, CATALOG.bronze_for_topic(spec.source_topic), None, DAY)
    result = to_silver(bronze, spec.source_topic)
    return result.rows, result.rejected


def written(settings: Settings, spec: TableSpec) -> pa.Table:
    return read_days(settings, spec, None, DAY)


def test_the_cap_made_duckdb_spill(built: tuple) -> None:
    _, _, watcher = built
    assert watcher.files_seen > 0


@pytest.mark.parametrize("spec", SILVER, ids=lambda spec: spec.name)
def test_silver_under_the_cap_equals_the_in_memory_build(built: tuple, spec: TableSpec) -> None:
    settings = built[0]
    rows, _ = in_memory_silver(settings, spec)
    assert rows.num_rows > 0
    # Silver keeps rows in landing order, not sorted: the same rows, in whichever order.
    by_id = [("event_id", "ascending")]
    assert written(settings, spec).sort_by(by_id).equals(rows.sort_by(by_id))


def test_the_redelivered_events_were_dropped_once(built: tuple) -> None:
    settings = built[0]
    bronze = read_days(settings, CATALOG.bronze_for_topic("clickstream"), ["event_id"], DAY)
    silver = written(settings, SILVER_CLICKSTREAM)
    assert bronze.num_rows > silver.num_rows
    assert len(silver.column("event_id").unique()) == silver.num_rows
    rejected = read_days(settings, REJECTED_ROWS, ["event_id"], DAY)
    kept = set(silver.column("event_id").to_pylist()) | set(rejected["event_id"].to_pylist())
    assert kept == set(bronze.column("event_id").to_pylist())


def test_rejected_rows_under_the_cap_equal_the_in_memory_build(built: tuple) -> None:
    settings = built[0]
    rejected = read_days(settings, REJECTED_ROWS, None, DAY).drop_columns(["rejected_at"])
    expected = pa.concat_tables(
        in_memory_silver(settings, spec)[1] for spec in SILVER
    ).drop_columns(["rejected_at"])
    assert rejected.num_rows > 0
    assert sorted(rejected.to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)


def test_gold_under_the_cap_equals_the_in_memory_build(built: tuple) -> None:
    settings = built[0]
    silver = {spec.name: written(settings, spec) for spec in SILVER}
    activity = user_activity_daily(**silver)
    products = product_daily(silver["clickstream"], silver["cart_events"], silver["purchases"])
    # Sums of doubles agree to the last bits only: the bounded build ran on one thread.
    assert_same_rows(activity, written(settings, GOLD_USER_ACTIVITY_DAILY), "user_activity")
    assert_same_rows(products, written(settings, GOLD_PRODUCT_DAILY), "product_daily")


def verdicts(outcomes: list[CheckOutcome]) -> list[tuple]:
    return [
        (o.check.name, o.passed, [(e.success, e.unexpected_count) for e in o.expectations])
        for o in outcomes
    ]


def test_the_checks_see_the_staged_day_and_give_the_in_memory_verdicts(built: tuple) -> None:
    settings, guard, _ = built
    assert guard.kinds == {duck.Staged, pa.Table}  # silver staged, gold in Arrow
    failed = 0
    for spec in SILVER:
        rows, _ = in_memory_silver(settings, spec)
        expected = validate(suite_for(spec), rows, DAY, settings)
        assert verdicts(guard.outcomes[spec.key]) == verdicts(expected), spec.key
        failed += sum(not outcome.passed for outcome in expected)
    assert failed > 0  # the faults made some checks fail: both paths were tested on failures


def test_building_the_day_again_replaces_it_with_the_same_rows(
    built: tuple, tmp_path: Path
) -> None:
    settings = built[0]
    tables = (*SILVER, GOLD_USER_ACTIVITY_DAILY, GOLD_PRODUCT_DAILY, REJECTED_ROWS)
    before = {spec.key: written(settings, spec) for spec in tables}
    versions = {spec.key: open_table(spec, settings).version() for spec in tables}
    build_day(capped(settings, tmp_path / "spill"))
    for spec in tables:
        again = written(settings, spec)
        if spec is REJECTED_ROWS:
            again = again.drop_columns(["rejected_at"])
            before[spec.key] = before[spec.key].drop_columns(["rejected_at"])
        assert again.equals(before[spec.key]), spec.key
        assert open_table(spec, settings).version() > versions[spec.key], spec.key


def test_the_files_duckdb_wrote_carry_the_statistics_file_skipping_reads(built: tuple) -> None:
    settings = built[0]
    table = open_table(SILVER_CLICKSTREAM, settings)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    assert actions
    lows = []
    for action in actions:
        rows = pq.read_table(Path(settings.lake_root, "silver", "clickstream", action["path"]))
        assert action["num_records"] == rows.num_rows
        # In milliseconds, as delta-rs writes them: the minimum rounded down and the
        # maximum up, so that the bounds hold every row of the file.
        low, high = pc.min(rows["event_time"]).as_py(), pc.max(rows["event_time"]).as_py()
        assert low - MILLISECOND < action["min.event_time"] <= low
        assert high <= action["max.event_time"] < high + MILLISECOND
        assert action["null_count.product_id"] == rows["product_id"].null_count
        lows.append(low)
    # A filter at the earliest time still finds its rows: the statistics, which a reader
    # skips files by, do not make it skip the file holding them.
    early = table.to_pyarrow_dataset().filter(pc.field("event_time") <= min(lows))
    assert early.to_table().num_rows >= 1


def test_a_day_without_redeliveries_under_the_cap_equals_the_in_memory_build(
    tmp_path: Path,
) -> None:
    # No event lands twice: silver is built straight from bronze (nothing staged first).
    settings = Settings(lakehouse_home=tmp_path / "home", lakehouse_root=str(tmp_path / "lake"))
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    land_in_bronze(settings, make_generator("ecommerce", seed=3, start=start), 100_000)
    land_rule_breakers(settings)
    result = build_silver_partition(capped(settings, tmp_path / "spill"), "clickstream", DAY)
    assert result.duplicates == 0
    rows, rejected = in_memory_silver(settings, SILVER_CLICKSTREAM)
    assert written(settings, SILVER_CLICKSTREAM).equals(rows)
    assert row_count(result.rejected) == rejected.num_rows > 0


def test_sessions_draw_no_progress_bar_into_logs() -> None:
    """A build's session in a process whose stderr is a pipe (Dagster's compute logs, a
    service's log stream) draws no progress bar there: DuckDB would, for every query past
    two seconds."""
    script = (
        "from lakehouse.transforms import duck\n"
        "with duck.session() as connection:\n"
        "    shown = \"SELECT current_setting('enable_progress_bar')\"\n"
        "    print(connection.execute(shown).fetchone())"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    assert run.stdout.decode().strip() == "(False,)"


def test_a_session_opens_in_a_process_without_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process started without a stderr (`sys.stderr` is None: detached, or `pythonw`)
    still opens sessions, without a progress bar."""
    monkeypatch.setattr(sys, "stderr", None)
    with duck.session() as connection:
        shown = connection.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    assert shown == (False,)
