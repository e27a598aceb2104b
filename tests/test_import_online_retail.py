"""`lakehouse import online-retail`: UCI Online Retail's lines as `purchases` events.

The mapping is checked on small hand-written slices of the file; every line's predicted
fate (the reason the import counts it under) is checked against what the ingest's own
decoder and silver's own rules do with the message; and one slice goes through the real
broker and the ingest sidecar into bronze and on to silver.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.catalog import PURCHASES
from lakehouse.settings import Settings
from lakehouse.transforms.silver import to_silver
from streaming.importers import IMPORTERS, OnlineRetailImport
from streaming.importers.common import CLEAN
from streaming.importers.online_retail import COLUMNS, REASONS
from streaming.ingest.decode import BatchDecoder, Reason
from streaming.ingest.provenance import with_provenance
from streaming.ingest.worker import IngestOptions, IngestWorker
from streaming.producer import produce
from tests.conftest import REPO, settings_env
from tests.support import importing
from tests.support.traffic import bronze, quarantine

LINES = [
    # Winter (GMT = UTC): two lines of one invoice, then a summer one (BST = UTC + 1).
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "6",
        "2010-12-01 08:26:00",
        "2.55",
        "17850.0",
        "United Kingdom",
    ),
    (
        "536365",
        "71053",
        "WHITE METAL LANTERN",
        "6",
        "2010-12-01 08:26:00",
        "3.39",
        "17850.0",
        "United Kingdom",
    ),
    (
        "556001",
        "22633",
        "HAND WARMER UNION JACK",
        "12",
        "2011-06-08 10:15:00",
        "1.85",
        "13047.0",
        "United Kingdom",
    ),
    # A cancellation, a line without a customer, a stock adjustment, a bad debt.
    (
        "C556002",
        "22633",
        "HAND WARMER UNION JACK",
        "-2",
        "2011-06-08 11:00:00",
        "1.85",
        "13047.0",
        "United Kingdom",
    ),
    (
        "556003",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "4",
        "2011-06-09 09:00:00",
        "2.95",
        "",
        "United Kingdom",
    ),
    ("556004", "22139", "damaged", "-12", "2011-06-09 12:00:00", "0.0", "14911.0", "EIRE"),
    (
        "A556005",
        "B",
        "Adjust bad debt",
        "1",
        "2011-06-10 14:51:00",
        "-11062.06",
        "16000.0",
        "United Kingdom",
    ),
    # The same product twice in one invoice: two lines, two events.
    (
        "556006",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "1",
        "2011-06-10 15:00:00",
        "2.95",
        "12583.0",
        "France",
    ),
    (
        "556006",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "1",
        "2011-06-10 15:00:00",
        "2.95",
        "12583.0",
        "France",
    ),
]


def write_csv(path: Path, lines: list[tuple[str, ...]]) -> Path:
    """The lines as the data set's CSV (gzip is not needed: DuckDB reads either)."""
    return importing.write_csv(path, COLUMNS, lines)


def messages(importer: OnlineRetailImport) -> list[dict[str, object]]:
    """Every message the import sends, decoded back from JSON, in file order."""
    return importing.sent_messages(importer, batch_size=4)


def test_lines_map_to_purchases_with_utc_times_and_stable_ids(tmp_path: Path) -> None:
    importer = OnlineRetailImport(write_csv(tmp_path / "retail.csv", LINES))
    events = messages(importer)
    assert len(events) == len(LINES)
    assert [list(event) for event in events] == [PURCHASES.event.schema.names] * len(LINES)

    first, _, summer = events[:3]
    assert first["event_time"] == "2010-12-01T08:26:00.000000Z"
    assert summer["event_time"] == "2011-06-08T09:15:00.000000Z"
    assert first["order_id"] == "536365" and first["user_id"] == 17850
    assert first["product_id"] == int(hashlib.md5(b"85123A").hexdigest()[:13], 16)
    assert (first["quantity"], first["unit_price"], first["total_amount"]) == (6, 2.55, 15.3)
    assert first["currency"] == "GBP"
    for absent in ("session_id", "category", "payment_method", "experiment_id", "variant"):
        assert first[absent] is None
    expected_id = hashlib.md5(b"uci-online-retail|536365|1|85123A").hexdigest()
    assert first["event_id"] == expected_id
    assert len({event["event_id"] for event in events}) == len(LINES)
    assert events[4]["user_id"] is None

    keys = [key for batch in importer.batches(len(LINES)) for key in batch.keys]
    assert keys[0] == b"17850" and keys[4] == b"556003"


def test_ids_are_the_same_whatever_slice_or_run(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "retail.csv", LINES)
    everything = [event["event_id"] for event in messages(OnlineRetailImport(path))]
    assert everything == [event["event_id"] for event in messages(OnlineRetailImport(path))]
    head = [event["event_id"] for event in messages(OnlineRetailImport(path, limit=2))]
    assert head == everything[:2]
    june_10 = OnlineRetailImport(path, since=date(2011, 6, 10), until=date(2011, 6, 10))
    assert [event["event_id"] for event in messages(june_10)] == everything[6:]
    assert june_10.plan().outside_window == 6


def test_bad_lines_are_sent_and_counted_per_reason(tmp_path: Path) -> None:
    plan = OnlineRetailImport(write_csv(tmp_path / "retail.csv", LINES)).plan()
    assert plan.selected == len(LINES) and plan.outside_window == 0
    assert plan.per_reason == {
        CLEAN: 5,
        "cancellation": 1,
        "missing_customer": 1,
        "non_positive_quantity": 1,
        "negative_unit_price": 1,
    }
    assert IMPORTERS["online-retail"] is OnlineRetailImport


QUARANTINED = {reason.name for reason in REASONS if "quarantine" in reason.goes_to}
RULE_OF = {
    reason.name: reason.goes_to.split("(")[1].rstrip(")")
    for reason in REASONS
    if reason.name not in QUARANTINED
}


def fates(values: list[bytes]) -> list[str]:
    """What the platform does with each message: the ingest decoder's reason, or the
    first silver rule it breaks, or `clean`; by the platform's own code."""
    decoded = BatchDecoder(PURCHASES.event, 1 << 20).decode(values)
    outcome = {reject.index: reject.reason.value for reject in decoded.rejects}
    rows = decoded.table.num_rows
    landed = with_provenance(
        decoded.table,
        np.zeros(rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    silver = to_silver(landed, PURCHASES.name)
    assert isinstance(silver.rejected, pa.Table) and isinstance(silver.rows, pa.Table)
    broken = dict(
        zip(
            silver.rejected.column("event_id").to_pylist(),
            silver.rejected.column("broken_rules").to_pylist(),
            strict=True,
        )
    )
    ids = decoded.table.column("event_id").to_pylist()
    for index, event_id in zip(decoded.indices.tolist(), ids, strict=True):
        outcome[index] = " ".join(broken.get(event_id, [CLEAN]))
    return [outcome[index] for index in range(len(values))]


def assert_accounted(importer: OnlineRetailImport, lines: int) -> None:
    """Every line is sent once, counted once, and its counted reason is its fate."""
    plan = importer.plan()
    assert plan.selected == lines and sum(plan.per_reason.values()) == lines
    encoded = pa.Table.from_batches(list(importer.encoded()))
    assert encoded.column("line").to_pylist() == list(range(1, lines + 1))
    reasons = encoded.column("reason").to_pylist()
    assert {r: reasons.count(r) for r in set(reasons)} == plan.per_reason
    values = encoded.column("value").cast(pa.binary()).to_pylist()
    for reason, fate in zip(reasons, fates(values), strict=True):
        if reason in QUARANTINED:
            assert fate == Reason.MISSING_FIELD.value, (reason, fate)
        elif reason == CLEAN:
            assert fate == CLEAN, fate
        else:
            assert RULE_OF[reason] in fate.split(), (reason, fate)


def test_the_counted_reason_is_what_ingest_and_silver_do(tmp_path: Path) -> None:
    assert_accounted(OnlineRetailImport(write_csv(tmp_path / "retail.csv", LINES)), len(LINES))


_GARBAGE = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), include_characters="\n\r\t"), max_size=12
)


def _field(valid: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(valid), _GARBAGE)


_ROW = st.tuples(
    _field(["536365", "C536379", "A563185", ""]),
    _field(["85123A", "POST", "B", ""]),
    _GARBAGE,
    _field(["6", "-1", "0", "2147483648", "1.5", ""]),
    _field(
        [
            "2010-12-01 08:26:00",
            "6/1/2011 10:00",
            "2011-03-27 01:30:00",
            "1969-01-01 00:00",
            "2011-02-30 10:00:00",
            "",
        ]
    ),
    _field(["2.55", "0", "-11062.06", "0.001", "1e3", "nan", ""]),
    _field(["17850.0", "0", "12583", "-5", "1.5", ""]),
    _GARBAGE,
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_ROW, min_size=1, max_size=25))
def test_malformed_lines_never_crash_and_are_all_accounted_for(
    tmp_path: Path, rows: list[tuple[str, ...]]
) -> None:
    assert_accounted(OnlineRetailImport(write_csv(tmp_path / "fuzz.csv", rows)), len(rows))


def test_a_slice_lands_in_bronze_once_and_silver_rejects_its_bad_lines(
    settings: Settings, tmp_path: Path
) -> None:
    importer = OnlineRetailImport(write_csv(tmp_path / "retail.csv", LINES))
    plan = importer.plan()
    ids = [str(event["event_id"]) for event in messages(importer)]
    missing_customer = ids[4]
    expected = [event_id for event_id in ids if event_id != missing_customer]
    options = IngestOptions(topics=[PURCHASES.name], until_idle=True, handle_signals=False)

    assert produce(settings, importer, plan.selected, progress=False).total == len(LINES)
    IngestWorker(settings, options).run()
    assert sorted(bronze(settings, PURCHASES.name).column("event_id").to_pylist()) == sorted(
        expected
    )
    held = quarantine(settings)
    assert held.column("reason").to_pylist() == [Reason.MISSING_FIELD.value]
    assert b'"user_id":null' in held.column("value")[0].as_py()

    # A re-run of the import: bronze keeps both copies, silver one of each event.
    produce(settings, importer, plan.selected, progress=False)
    IngestWorker(settings, options).run()
    landed = bronze(settings, PURCHASES.name)
    assert sorted(landed.column("event_id").to_pylist()) == sorted(expected * 2)

    silver = to_silver(landed, PURCHASES.name)
    assert isinstance(silver.rejected, pa.Table) and isinstance(silver.rows, pa.Table)
    assert silver.duplicates == len(expected)
    assert sorted(silver.rows.column("event_id").to_pylist()) == sorted(
        ids[index] for index in (0, 1, 2, 7, 8)
    )
    rejected = dict(
        zip(
            silver.rejected.column("event_id").to_pylist(),
            silver.rejected.column("broken_rules").to_pylist(),
            strict=True,
        )
    )
    assert rejected == {
        ids[3]: ["quantity_positive"],
        ids[5]: ["quantity_positive"],
        ids[6]: ["unit_price_non_negative"],
    }
    dates = pc.unique(silver.rows.column("event_date")).to_pylist()
    assert sorted(dates) == [date(2010, 12, 1), date(2011, 6, 8), date(2011, 6, 10)]


def test_the_command_sends_a_slice_and_prints_where_each_line_goes(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "real" / "online_retail" / "online_retail.csv.gz"
    source.parent.mkdir(parents=True)
    source.write_bytes(gzip.compress(write_csv(tmp_path / "retail.csv", LINES).read_bytes()))
    command = [sys.executable, "-m", "cli.app", "import", "online-retail", "--limit", "5"]
    real = str(tmp_path / "real")
    environment = {**settings_env(settings), "REAL_DATA_DIR": real, "COLUMNS": "200"}
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    table = " ".join(done.stdout.split())
    assert "events sent │ 5 │" in table
    assert "cancellation │ 1 │ silver.rejected_rows (quantity_positive)" in table
    assert "missing_customer │ 1 │ bronze.quarantine (missing_required_field)" in table
    assert "clean │ 3 │ silver" in table
