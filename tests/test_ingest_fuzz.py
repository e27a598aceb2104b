"""Property-based fuzz of the ingest worker through the real embedded broker: whatever a
producer puts in a message (value, key, headers, timestamp, none at all), every message
lands exactly once, in bronze or in the quarantine, and the worker never crashes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.query import run_query
from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.support.traffic import Record, click_event, landed_offsets, produce_records, quarantine

MAX_BYTES = 2048
YEAR_10000 = 253_402_300_800_000

timestamps = st.sampled_from([0, -1, -5, 1, YEAR_10000, 2**63 - 1, -(2**63)]) | st.integers(
    -(2**63), 2**63 - 1
)
json_values = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)


@st.composite
def perturbed_event(draw: st.DrawFn) -> bytes:
    event = json.loads(click_event(draw(st.integers(0, 10**6))))
    event[draw(st.sampled_from([*event, "extra"]))] = draw(json_values)
    return json.dumps(event).encode()


values = st.one_of(
    st.tuples(st.just("valid"), st.integers(0, 10**6).map(click_event)),
    st.tuples(st.just("empty"), st.sampled_from([None, b""])),
    st.tuples(st.just("any"), st.binary(max_size=48)),
    st.tuples(st.just("any"), perturbed_event()),
    st.tuples(st.just("any"), st.integers(MAX_BYTES + 1, 200_000).map(lambda n: b"{" * n)),
    st.tuples(st.just("any"), st.sampled_from([b"null", b" ", b"{}{}", b"[]", b"\xff"])),
)
records = st.builds(
    lambda value, key, headers, timestamp, partition: (
        value[0],
        Record(value[1], key, tuple(headers), timestamp, partition),
    ),
    values,
    st.none() | st.binary(max_size=16),
    st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=8)), max_size=3),
    timestamps,
    st.none() | st.integers(0, 3),
)


def test_whatever_is_produced_lands_exactly_once_in_bronze_or_quarantine(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"ingest_max_message_bytes": MAX_BYTES})
    produced: list[tuple[int, int]] = []  # the topic keeps every example's messages

    @hypothesis_settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(records, min_size=1, max_size=25))
    def example(drawn: list[tuple[str, Record]]) -> None:
        placed = produce_records(settings, "clickstream", [record for _, record in drawn])
        produced.extend(placed)
        # A fresh lake and group: the worker lands the whole topic from its start.
        name = uuid.uuid4().hex[:8]
        lake = settings.model_copy(
            update={"lakehouse_root": str(tmp_path / name), "ingest_group_id": f"fuzz-{name}"}
        )
        options = IngestOptions(topics=["clickstream"], until_idle=True, handle_signals=False)
        report = IngestWorker(lake, options).run()

        rows, rejected = landed_offsets(lake, "clickstream")
        assert report.consumed == len(produced)
        assert sorted(rows + rejected) == sorted(produced), "lost or duplicated messages"
        kinds = dict(zip(placed, (kind for kind, _ in drawn), strict=True))
        assert {at for at, kind in kinds.items() if kind == "valid"} <= set(rows)
        assert {at for at, kind in kinds.items() if kind == "empty"} <= set(rejected)
        # Every timestamp written is readable, by Python and by DuckDB.
        quarantine(lake).to_pylist()
        run_query(lake, "SELECT max(kafka_timestamp), count(*) FROM bronze.quarantine")

    example()
