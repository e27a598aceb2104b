"""`lakehouse import cmapss`: NASA C-MAPSS FD001's engines as `engine_cycles` events.

The mapping is checked on slices of the real files and on hand-made bad lines, one per
reason; every line's counted reason against what the ingest's own decoder and silver's own
rules do with its message (also for fuzzed garbage); the per-cycle table read back from
the messages against `read_fd001`'s for the same engines, so the platform's path and the
bench's agree; silver's suite on a slice's rows, clean and faulty; and the command sends a
slice through the real broker and the ingest sidecar into bronze and the quarantine.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.catalog import ENGINE_CYCLES, SILVER_ENGINE_CYCLES
from lakehouse.models import rul
from lakehouse.settings import Settings
from lakehouse.transforms.silver import to_silver
from quality.suites import suite_for
from quality.validate import validate
from streaming.importers import IMPORTERS, CmapssImport
from streaming.importers.cmapss import REASONS, SOURCE
from streaming.importers.common import CLEAN, QUARANTINED
from streaming.ingest.decode import BatchDecoder, Reason
from streaming.ingest.provenance import with_provenance
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.conftest import REPO, settings_env
from tests.support import importing
from tests.support.traffic import bronze, quarantine

REAL = Settings().real_data_dir / SOURCE
TRAIN_FILE, TEST_FILE, RUL_FILE = rul.FD001_FILES


def write_slice(directory: Path, train_units: int, test_units: int) -> Path:
    """The first engines of the real FD001 files (and their true RULs) as an FD001 folder."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, units in ((TRAIN_FILE, train_units), (TEST_FILE, test_units)):
        lines = (REAL / name).read_text().splitlines()
        kept = [line for line in lines if int(line.split()[0]) <= units]
        (directory / name).write_text("\n".join(kept) + "\n")
    rul_lines = (REAL / RUL_FILE).read_text().splitlines()[:test_units]
    (directory / RUL_FILE).write_text("\n".join(rul_lines) + "\n")
    return directory


def messages(importer: CmapssImport) -> list[dict[str, object]]:
    """Every message the import sends, decoded back from JSON, in order."""
    return importing.sent_messages(importer, batch_size=50)


def landed(values: list[bytes]) -> tuple[pa.Table, dict[int, Reason]]:
    """The messages as the ingest lands them in bronze (its own decoder and provenance),
    and the decoder's reason for each message it quarantines, by index."""
    decoded = BatchDecoder(ENGINE_CYCLES.event, 1 << 20).decode(values)
    rows = with_provenance(
        decoded.table,
        np.zeros(decoded.table.num_rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    return rows, {reject.index: reject.reason for reject in decoded.rejects}


def _line(unit: object, cycle: object, *values: object) -> str:
    """A cycles line: the given leading values, then 0.5, 1.5, ... up to 26 fields."""
    given_values = [str(value) for value in values]
    rest = [f"{0.5 + i:.2f}" for i in range(len(given_values), 24)]
    return " ".join([str(unit), str(cycle), *given_values, *rest]) + " "


def test_lines_map_to_engine_cycles_with_hourly_times_and_stable_ids(tmp_path: Path) -> None:
    directory = write_slice(tmp_path / "cmapss", train_units=2, test_units=2)
    importer = CmapssImport(directory)
    events = messages(importer)
    train, test = rul.read_fd001(directory).train, rul.read_fd001(directory).test
    assert len(events) == train.num_rows + test.num_rows
    assert {tuple(event) for event in events} == {tuple(ENGINE_CYCLES.event.schema.names)}

    first = events[0]
    assert first["event_id"] == hashlib.md5(b"nasa-cmapss|train_FD001.txt|1|1").hexdigest()
    assert first["event_time"] == "2008-01-01T01:00:00.000000Z"
    assert (first["device_id"], first["split"], first["unit"], first["cycle"]) == (
        "cmapss-fd001-train-001",
        "train",
        1,
        1,
    )
    # The file's first line: "1 1 -0.0007 -0.0004 100.0 518.67 ... 39.06 23.4190".
    assert (first["setting_1"], first["setting_3"], first["sensor_1"]) == (-0.0007, 100.0, 518.67)
    assert (first["sensor_20"], first["sensor_21"]) == (39.06, 23.419)
    assert first["label_failure_cycle"] == 192  # training engine 1 fails after cycle 192

    tests = [event for event in events if event["split"] == "test"]
    assert tests[0]["device_id"] == "cmapss-fd001-test-001"
    # Test engine 1 stops at cycle 31 with 112 cycles left (RUL_FD001.txt, line 1).
    assert {event["label_failure_cycle"] for event in tests if event["unit"] == 1} == {143}
    assert tests[30]["event_time"] == "2008-01-02T07:00:00.000000Z"  # cycle 31: 1 day 7 h
    assert len({event["event_id"] for event in events}) == len(events)

    head = messages(CmapssImport(directory, limit=3))
    assert head == events[:3] + tests[:3]  # the first lines of each file, unchanged
    keys = [key for batch in importer.batches(len(events)) for key in batch.keys]
    assert keys[0] == b"cmapss-fd001-train-001" and keys[-1] == b"cmapss-fd001-test-002"
    assert importer.plan().per_reason == {CLEAN: len(events)}
    assert IMPORTERS["cmapss"] is CmapssImport


def test_the_lake_path_reads_what_the_bench_reads_from_the_files(tmp_path: Path) -> None:
    """The messages, landed and read back as per-cycle tables, are `read_fd001`'s."""
    directory = write_slice(tmp_path / "cmapss", train_units=3, test_units=4)
    values = [
        batch_value for b in CmapssImport(directory).batches(10**6) for batch_value in b.values
    ]
    rows, rejects = landed(values)
    assert not rejects
    from_lake = rul.from_engine_cycles(rows)
    from_files = rul.read_fd001(directory)
    assert from_lake.train.equals(from_files.train)
    assert from_lake.test.equals(from_files.test)
    assert from_lake.test_rul.tolist() == from_files.test_rul.tolist() == [112, 98, 69, 82]

    partial = [value for b in CmapssImport(directory, limit=100).batches(200) for value in b.values]
    with pytest.raises(ValueError, match="do not run to failure: unit 1 ends at cycle 100"):
        rul.from_engine_cycles(landed(partial)[0])


BAD_TRAIN = [
    _line(1, 1),
    _line(1, 2),
    _line(1, 3).rsplit(" ", 2)[0],  # 25 fields
    "",  # a blank line is no line
    _line("1.5", 4),
    _line(1, "x"),
    _line(1, 5, "nan"),
    _line(1, 6, "0.1", "1e999"),
    _line(0, 1),
    _line(1, 0),
    _line(1, 2, "9.9"),  # engine 1's cycle 2 again, other values
    _line(1, 7),
]
BAD_TEST = [_line(1, 1), _line(2, 1)]  # RUL_FD001.txt has a line for engine 1 only


def write_bad(directory: Path, train: list[str], test: list[str], truths: str = "10\n") -> Path:
    """An FD001 folder of hand-made lines."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TRAIN_FILE).write_text("\n".join(train) + "\n")
    (directory / TEST_FILE).write_text("\n".join(test) + "\n")
    (directory / RUL_FILE).write_text(truths)
    return directory


QUARANTINE_REASONS = {reason.name for reason in REASONS if reason.goes_to == QUARANTINED}
RULE_OF = {
    reason.name: reason.goes_to.split("(")[1].rstrip(")")
    for reason in REASONS
    if "rejected_rows" in reason.goes_to
}


def assert_accounted(importer: CmapssImport) -> list[str]:
    """Every line is sent once and counted once, and its counted reason is what the
    ingest's decoder and silver's rules do with it; return the reasons in order."""
    rows = list(importer.rows())
    plan = importer.plan()
    reasons = [row.reason for row in rows]
    assert plan.selected == len(rows) == sum(plan.per_reason.values())
    assert {r: reasons.count(r) for r in set(reasons)} == plan.per_reason
    bronze_rows, rejects = landed([row.value for row in rows])
    silver = to_silver(bronze_rows, ENGINE_CYCLES.name)
    assert isinstance(silver.rows, pa.Table) and isinstance(silver.rejected, pa.Table)
    broken = dict(
        zip(
            silver.rejected.column("event_id").to_pylist(),
            silver.rejected.column("broken_rules").to_pylist(),
            strict=True,
        )
    )
    kept = set(silver.rows.column("event_id").to_pylist())
    assert silver.duplicates == reasons.count("repeated_cycle")
    for index, row in enumerate(rows):
        message = orjson.loads(row.value)
        if row.reason in QUARANTINE_REASONS:
            assert rejects.get(index) is Reason.MISSING_FIELD, row
            assert "source_row" in message, row
        else:
            assert index not in rejects and "source_row" not in message, row
            if row.reason in RULE_OF:
                assert RULE_OF[row.reason] in broken[message["event_id"]], row
            else:
                assert message["event_id"] in kept and message["event_id"] not in broken, row
    return reasons


def test_bad_lines_are_counted_per_reason_and_take_the_bad_input_path(tmp_path: Path) -> None:
    importer = CmapssImport(write_bad(tmp_path / "cmapss", BAD_TRAIN, BAD_TEST))
    reasons = assert_accounted(importer)
    assert reasons == [
        CLEAN,
        CLEAN,
        "wrong_field_count",
        "unreadable_unit",
        "unreadable_cycle",
        "unreadable_value",
        "unreadable_value",
        "non_positive_unit",
        "non_positive_cycle",
        "repeated_cycle",
        CLEAN,
        CLEAN,
        "no_true_rul",
    ]
    assert {reason.name for reason in REASONS} == set(reasons) - {CLEAN}
    sent = [orjson.loads(row.value) for row in importer.rows()]
    short, unit, cycle, value = sent[2:6]
    assert short["source_row"] == BAD_TRAIN[2]
    assert all(short[name] is None for name in ("device_id", "unit", "cycle", "event_time"))
    assert short["split"] == "train"
    assert short["event_id"] == hashlib.md5(b"nasa-cmapss|train_FD001.txt|line 3").hexdigest()
    assert unit["unit"] is None and unit["device_id"] is None and unit["cycle"] == 4
    assert cycle["cycle"] is None and cycle["event_time"] is None and cycle["unit"] == 1
    assert value["setting_1"] is None and value["setting_2"] == 1.5
    assert sent[6]["setting_2"] is None and sent[6]["setting_1"] == 0.1
    # The repeated cycle has its first line's id; silver keeps that first line.
    assert sent[9]["event_id"] == sent[1]["event_id"] and sent[9]["setting_1"] == 9.9
    # Engine 1 fails after its last readable cycle, 7; test engine 1 at 1 + 10.
    assert sent[0]["label_failure_cycle"] == 7 and sent[11]["label_failure_cycle"] == 11
    assert sent[12]["label_failure_cycle"] is None


def test_a_malformed_truth_or_a_missing_file_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    directory = write_bad(tmp_path / "cmapss", BAD_TEST, BAD_TEST, truths="10\n-3\n")
    with pytest.raises(ValueError, match=r"RUL_FD001\.txt: data line 2 has RUL -3"):
        CmapssImport(directory)
    (directory / TEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="REAL_DATA_DIR"):
        CmapssImport(directory)


_TOKEN = st.one_of(
    st.sampled_from(["1", "2", "0", "-1", "7.0", "1.5", "0.25", "-0.0007", "1e3", "nan", "x"]),
    st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=6),
)
_LINE = st.one_of(
    st.lists(_TOKEN, min_size=26, max_size=26).map(" ".join),
    st.lists(_TOKEN, max_size=30).map(" ".join),
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(train=st.lists(_LINE, min_size=1, max_size=12), test=st.lists(_LINE, max_size=8))
def test_garbage_lines_never_crash_and_are_all_accounted_for(
    tmp_path: Path, train: list[str], test: list[str]
) -> None:
    assert_accounted(CmapssImport(write_bad(tmp_path / "fuzz", train, test, "5\n3\n")))


def silver_day(directory: Path) -> tuple[pa.Table, date]:
    """Silver's rows of a slice's first event day, as the medallion would write them."""
    values = [value for b in CmapssImport(directory).batches(10**6) for value in b.values]
    silver = to_silver(landed(values)[0], ENGINE_CYCLES.name)
    assert isinstance(silver.rows, pa.Table)
    day = date(2008, 1, 1)
    return silver.rows.filter(pc.equal(silver.rows["event_date"], day)), day


def test_the_silver_suite_passes_a_slice_and_blocks_a_second_snapshot_of_a_cycle(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    rows, day = silver_day(write_slice(tmp_path / "cmapss", train_units=2, test_units=2))
    suite = suite_for(SILVER_ENGINE_CYCLES)
    assert rows.num_rows == 4 * 23  # four engines, cycles 1..23 on the first day
    assert all(outcome.passed for outcome in validate(suite, rows, day, settings))

    retried = rows.slice(0, 1).to_pylist()[0] | {"event_id": "a retry with a new id"}
    unknown = rows.slice(1, 1).to_pylist()[0] | {"event_id": "validation", "split": "validation"}
    faulty = pa.concat_tables([rows, pa.Table.from_pylist([retried, unknown], rows.schema)])
    failed = {o.check.name for o in validate(suite, faulty, day, settings) if not o.passed}
    assert failed == {"natural_key_unique", "categories_known"}
    assert all(check.blocking for check in suite.checks if check.name in failed)


def test_the_command_sends_a_slice_that_the_ingest_lands_and_quarantines(
    settings: Settings, tmp_path: Path
) -> None:
    directory = write_slice(tmp_path / "real" / "cmapss", train_units=1, test_units=1)
    train_lines = (directory / TRAIN_FILE).read_text().splitlines()
    bad = _line(1, "x")
    (directory / TRAIN_FILE).write_text("\n".join([*train_lines[:5], bad]) + "\n")
    command = [sys.executable, "-m", "cli.app", "import", "cmapss", "--limit", "6"]
    environment = {**settings_env(settings), "REAL_DATA_DIR": str(tmp_path / "real")}
    done = subprocess.run(
        command,
        cwd=REPO,
        env={**environment, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = " ".join(done.stdout.split())
    assert "events sent │ 12 │" in table
    assert "unreadable_cycle │ 1 │ bronze.quarantine (missing_required_field)" in table
    assert "clean │ 11 │ silver" in table

    options = IngestOptions(topics=[ENGINE_CYCLES.name], until_idle=True, handle_signals=False)
    IngestWorker(settings, options).run()
    landed_rows = bronze(settings, ENGINE_CYCLES.name)
    assert landed_rows.num_rows == 11
    assert sorted(set(landed_rows.column("device_id").to_pylist())) == [
        "cmapss-fd001-test-001",
        "cmapss-fd001-train-001",
    ]
    assert sorted(set(landed_rows.column("event_date").to_pylist())) == [date(2008, 1, 1)]
    held = quarantine(settings)
    assert held.column("reason").to_pylist() == [Reason.MISSING_FIELD.value]
    assert orjson.loads(held.column("value")[0].as_py())["source_row"] == bad
