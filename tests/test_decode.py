"""The decoder turns message values into typed rows and gives every bad message a reason."""

from __future__ import annotations

import orjson
import pytest

from lakehouse.schemas import CLICKSTREAM, SENSOR_READINGS
from streaming.ingest.decode import BatchDecoder, Reason


def click(event_id: str, **overrides: object) -> bytes:
    event = {
        "event_id": event_id,
        "event_time": "2026-11-23T10:00:00.000001Z",
        "user_id": 7,
        "session_id": "s-1",
        "event_type": "product_view",
        "page": "product",
        "product_id": 42,
        "price": 19.5,
    }
    event.update(overrides)
    return orjson.dumps(event)


POISON = {
    b'{"event_id": "x", "user_': Reason.INVALID_JSON,
    b'{"event_id": "\xff\xfe"}': Reason.INVALID_ENCODING,
    '{"event_id": "x"}'.encode("utf-16"): Reason.INVALID_ENCODING,
    b"[1, 2, 3]": Reason.NOT_AN_OBJECT,
    b"42": Reason.NOT_AN_OBJECT,
    click("wrong-type", user_id="seven"): Reason.SCHEMA_MISMATCH,
    click("too-big-int").replace(b'"user_id":7', b'"user_id":' + str(2**70).encode()): (
        Reason.SCHEMA_MISMATCH
    ),
    click("bad-time", event_time="yesterday"): Reason.SCHEMA_MISMATCH,
    click("missing", session_id=None): Reason.MISSING_FIELD,
    b'{"event_id": "a"}{"event_id": "b"}': Reason.INVALID_JSON,
    b"": Reason.EMPTY,
    b"x" * 5000: Reason.OVERSIZE,
    # Each of these once crashed the process or mis-attributed rows (see decode.py).
    b"null": Reason.NOT_AN_OBJECT,
    b" null": Reason.NOT_AN_OBJECT,
    click("then-null") + b"\nnull": Reason.INVALID_JSON,
    b" \t": Reason.INVALID_JSON,
    click("0000", event_time="0000-01-01T00:00:00Z"): Reason.SCHEMA_MISMATCH,
    click("10000", event_time="9999-12-31T23:59:59-14:00"): Reason.SCHEMA_MISMATCH,
    b'{"deep": ' + b"[" * 1500 + b"]" * 1500 + b"}": Reason.MISSING_FIELD,
}


def decoder() -> BatchDecoder:
    return BatchDecoder(CLICKSTREAM, max_message_bytes=4096)


def test_clean_batch_decodes_to_typed_rows_in_order() -> None:
    values = [click(f"e{i}", user_id=i) for i in range(1000)]
    decoded = decoder().decode(values)
    assert decoded.rejects == []
    assert decoded.table.num_rows == 1000
    assert decoded.table.column("user_id").to_pylist() == list(range(1000))
    assert decoded.indices.tolist() == list(range(1000))
    assert str(decoded.table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"


@pytest.mark.parametrize(("value", "reason"), list(POISON.items()), ids=lambda v: str(v)[:30])
def test_each_kind_of_poison_is_rejected_with_its_reason(value: bytes, reason: Reason) -> None:
    values = [click("before"), value, click("after")]
    decoded = decoder().decode(values)
    assert [(r.index, r.reason) for r in decoded.rejects] == [(1, reason)]
    assert decoded.rejects[0].detail
    assert decoded.table.column("event_id").to_pylist() == ["before", "after"]
    assert decoded.indices.tolist() == [0, 2]


@pytest.mark.parametrize("value", [b"null", b" null", click("a") + b"\nnull"], ids=repr)
def test_a_batch_starting_with_a_top_level_null_is_judged_without_crashing(value: bytes) -> None:
    """pyarrow's JSON reader segfaults on a block that starts with `null`; it never sees one."""
    for values in ([value], [value, click("after")], [click("before"), value]):
        decoded = decoder().decode(values)
        assert len(decoded.rejects) == 1 and decoded.table.num_rows == len(values) - 1


def test_rows_are_never_shifted_between_messages() -> None:
    """Two documents in one message next to a whitespace-only one: right count, wrong rows,
    unless the batch parse refuses such a batch."""
    decoded = decoder().decode([click("a") + click("b"), b" \t", click("c")])
    assert [r.reason for r in decoded.rejects] == [Reason.INVALID_JSON, Reason.INVALID_JSON]
    assert decoded.table.column("event_id").to_pylist() == ["c"]
    assert decoded.indices.tolist() == [2]


def test_none_value_is_an_empty_message() -> None:
    decoded = decoder().decode([None, click("ok")])
    assert [(r.index, r.reason) for r in decoded.rejects] == [(0, Reason.EMPTY)]


def test_schema_mismatch_names_the_field() -> None:
    decoded = decoder().decode([click("a", user_id="seven")])
    assert "user_id" in decoded.rejects[0].detail


def test_pretty_printed_json_is_accepted() -> None:
    pretty = orjson.dumps(orjson.loads(click("pretty")), option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    decoded = decoder().decode([click("a"), pretty, click("b")])
    assert decoded.rejects == []
    assert decoded.table.column("event_id").to_pylist() == ["a", "pretty", "b"]


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    decoded = decoder().decode([click("a", brand_new_field={"nested": True})])
    assert decoded.rejects == []
    assert decoded.table.num_rows == 1


def test_a_message_fate_does_not_depend_on_its_neighbours() -> None:
    """Arrow alone judges each message: alone or among poison, the same verdict."""
    borderline = click("naive-time", event_time="2026-11-23 10:00:00")
    alone = decoder().decode([borderline])
    among_poison = decoder().decode([b"{bad", borderline, b"[]"])
    assert alone.rejects == []
    assert [r.index for r in among_poison.rejects] == [0, 2]
    assert among_poison.table.column("event_id").to_pylist() == ["naive-time"]


def test_many_scattered_poison_messages_are_all_found() -> None:
    values = [click(f"e{i}") for i in range(20_000)]
    bad = set(range(5, 20_000, 97))
    for i in bad:
        values[i] = b'{"event_id": 1}' if i % 2 else b"not json"
    decoded = decoder().decode(values)
    assert {r.index for r in decoded.rejects} == bad
    assert decoded.table.num_rows == 20_000 - len(bad)
    assert set(decoded.indices.tolist()).isdisjoint(bad)


def test_required_fields_come_from_the_event_schema() -> None:
    reading = orjson.dumps(
        {
            "event_id": "r1",
            "event_time": "2026-11-23T10:00:00Z",
            "device_id": "machine-0001",
            "sensor_id": "machine-0001/temperature",
            "sensor_type": "temperature",
            "sequence": 1,
            "unit": "celsius",
        }
    )
    decoded = BatchDecoder(SENSOR_READINGS, 4096).decode([reading])
    assert decoded.rejects[0].reason is Reason.MISSING_FIELD
    assert "value" in decoded.rejects[0].detail


def test_every_poison_kind_mixed_into_a_large_batch_gets_the_verdict_it_gets_alone() -> None:
    """The screening works over the whole batch (msgspec resuming after each refusal, UTF-8
    checked in one Arrow pass, suspects blanked out of the joined batch): each message
    still ends as it would alone, with the same reason and detail, rows in order."""
    pretty = orjson.dumps(orjson.loads(click("pretty")), option=orjson.OPT_INDENT_2)
    poison = [*POISON, pretty, click("kept") + b"\n  "]
    values = [click(f"e{i}") for i in range(9_000)]
    placed = {}
    for n, value in enumerate(poison * 3):
        index = (n * 331 + 1) % len(values) if n else 0  # the first message too
        values[index] = value
        placed[index] = value
    values[-1] = b'{"event_id": "\xff"}'  # and the last
    placed[len(values) - 1] = values[-1]
    for decode in (decoder().decode, _warm_decoder().decode):  # both paths of `decode`
        decoded = decode(values)
        assert decoded.indices.tolist() == sorted(decoded.indices.tolist())
        assert decoded.table.column("event_id").to_pylist() == [
            orjson.loads(values[i])["event_id"] for i in decoded.indices.tolist()
        ]
        verdicts = {r.index: (r.reason, r.detail) for r in decoded.rejects}
        for index, value in placed.items():
            alone = decoder().decode([value])
            expected = [(r.reason, r.detail) for r in alone.rejects]
            found = [verdicts[index]] if index in verdicts else []
            assert found == expected, value


def _warm_decoder() -> BatchDecoder:
    """A decoder whose last batch held poison: it goes straight to screening."""
    warm = decoder()
    warm.decode([click("a"), b"not json"])
    return warm


def test_runs_of_invalid_utf8_are_each_found() -> None:
    values = [click(f"e{i}") for i in range(3_000)]
    bad = {0, 1, 2, 1_000, 1_001, 2_998, 2_999}
    for i in bad:
        values[i] = click(f"bad{i}", page="\xff").replace(b"\xc3\xbf", b"\xff")
    decoded = _warm_decoder().decode(values)
    assert {r.index: r.reason for r in decoded.rejects} == dict.fromkeys(
        bad, Reason.INVALID_ENCODING
    )
    assert decoded.table.num_rows == len(values) - len(bad)


@pytest.mark.parametrize("missing", [3, 300], ids=["few", "many"])
def test_rows_missing_a_field_are_cut_out_however_many(missing: int) -> None:
    """A few such rows are sliced around, many filtered out: the same rows either way."""
    values = [click(f"e{i}") for i in range(2_000)]
    bad = set(range(0, 2_000, 2_000 // missing))
    for i in bad:
        values[i] = click(f"m{i}", session_id=None)
    for decode in (decoder().decode, _warm_decoder().decode):
        decoded = decode(values)
        assert {r.index: r.reason for r in decoded.rejects} == dict.fromkeys(
            bad, Reason.MISSING_FIELD
        )
        kept = [i for i in range(2_000) if i not in bad]
        assert decoded.indices.tolist() == kept
        assert decoded.table.column("event_id").to_pylist() == [f"e{i}" for i in kept]


def test_empty_none_and_oversize_messages_anywhere_leave_the_rows_aligned() -> None:
    """They are joined as empty lines, which Arrow skips: at either end, in a row, or all."""
    absent: list[bytes | None] = [None, b"", b"x" * 5000]
    values = [*absent, click("a"), b"", click("b"), *absent, b"not json", click("c"), *absent]
    for decode in (decoder().decode, _warm_decoder().decode):
        decoded = decode(values)
        assert decoded.table.column("event_id").to_pylist() == ["a", "b", "c"]
        assert decoded.indices.tolist() == [3, 5, 10]
        reasons = {r.index: r.reason for r in decoded.rejects}
        assert reasons.pop(9) is Reason.INVALID_JSON
        assert set(reasons) == set(range(len(values))) - {3, 5, 9, 10}
        assert decode(absent).table.num_rows == 0


@pytest.mark.parametrize("escape", [rb"\ud800", rb"\udc80", rb"x\ud800\ud800y"], ids=repr)
def test_escapes_that_make_no_utf8_are_rejected_on_both_paths(escape: bytes) -> None:
    """The screened batch's strings are not validated again (each message was, whole): so
    no escape may turn valid UTF-8 bytes into an invalid string."""
    lone = click("lone", page="PAGE").replace(b"PAGE", escape)
    values = [click("a"), lone, click("b")]
    for decode in (decoder().decode, _warm_decoder().decode):
        decoded = decode(values)
        assert [r.index for r in decoded.rejects] == [1]
        assert decoded.table.column("event_id").to_pylist() == ["a", "b"]
        decoded.table.column("page").validate(full=True)
