"""Property-based fuzz of the decoder: whatever the bytes, it never raises, accounts for
every message exactly once, and keeps only what really is a valid event, unchanged.

Two event types: clickstream (scalars only) and the fraud decisions, whose list<string>
fields take a JSON array of strings and nulls and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.schemas import CLICKSTREAM, FRAUD_DECISIONS, EventSchema
from streaming.ingest.decode import BatchDecoder, Decoded

MAX_BYTES = 4096
FIELDS = CLICKSTREAM.schema.names


def event(number: int, user: int, price: float) -> dict[str, object]:
    return {
        "event_id": f"e{number}",
        "event_time": "2026-11-23T10:00:00.000001Z",
        "user_id": user,
        "session_id": "s-1",
        "event_type": "product_view",
        "page": "product",
        "product_id": 42,
        "price": price,
    }


events = st.builds(
    event,
    st.integers(0, 10**9),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(-1e12, 1e12, allow_nan=False),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "2026-01-01T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            "",
        ]
    ),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@st.composite
def perturbed(draw: st.DrawFn) -> bytes:
    """A valid event with one field replaced or removed, or an unknown field added."""
    document = draw(events)
    name = draw(st.sampled_from([*FIELDS, "extra"]))
    if draw(st.booleans()):
        document.pop(name, None)
    else:
        document[name] = draw(json_values)
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode()


def dumps(document: dict[str, object]) -> bytes:
    return orjson.dumps(document)


poison = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=80),
    st.sampled_from([b" ", b"\t\r\n", b"\n", b"{}", b"[]", b"null", b'"x"', b"\xef\xbb\xbf{}"]),
    st.integers(MAX_BYTES + 1, MAX_BYTES * 3).map(lambda size: b"x" * size),
    events.map(lambda e: dumps(e) + dumps(e)),  # two documents in one message
    events.map(lambda e: dumps(e) + b"\n" + dumps(e)),
    events.map(lambda e: dumps(e)[:-1]),  # truncated
    events.map(lambda e: dumps(e).replace(b"s-1", b"s-\xff")),  # invalid UTF-8
    st.integers(200, 3000).map(lambda depth: b'{"deep":' + b"[" * depth + b"]" * depth + b"}"),
    perturbed(),
)
valid = events.map(lambda e: ("valid", e))
messages = st.lists(
    st.one_of(
        valid,
        valid.map(lambda pair: ("pretty", pair[1])),
        poison.map(lambda value: ("any", value)),
    ),
    max_size=40,
)


def encode(kind: str, item: object) -> bytes | None:
    if kind == "valid":
        return dumps(item)  # type: ignore[arg-type]
    if kind == "pretty":
        return orjson.dumps(item, option=orjson.OPT_INDENT_2)
    return item  # type: ignore[return-value]


SHARED = BatchDecoder(CLICKSTREAM, MAX_BYTES)  # keeps its fast/slow path state across examples


def accounted(decoder: BatchDecoder, values: list[bytes | None]) -> tuple[list[int], Decoded]:
    """Decode a batch and check that every message is kept or rejected, exactly once; the
    indices kept, and the result."""
    decoded = decoder.decode(values)
    kept = decoded.indices.tolist()
    rejected = [reject.index for reject in decoded.rejects]
    assert sorted(kept + rejected) == list(range(len(values))), "an index lost or counted twice"
    assert decoded.table.num_rows == len(kept)
    assert all(reject.detail for reject in decoded.rejects)
    return kept, decoded


def assert_each_fate_is_its_own(
    event: EventSchema, values: list[bytes | None], kept: list[int]
) -> None:
    """Each message judged alone gets the verdict it got in the batch."""
    for index, value in enumerate(values):
        alone = BatchDecoder(event, MAX_BYTES).decode([value])
        assert (alone.table.num_rows == 1) == (index in kept), repr(value)[:200]


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages)
def test_the_decoder_accounts_for_every_message_and_keeps_valid_ones_intact(
    drawn: list[tuple[str, object]],
) -> None:
    values = [encode(kind, item) for kind, item in drawn]
    kept, decoded = accounted(SHARED, values)
    rows = decoded.table.to_pylist()  # every value readable by Python (timestamps in range)

    for index, row in zip(kept, rows, strict=True):
        # A kept row is exactly the message at its index: one JSON object, same fields.
        document = json.loads(values[index])  # type: ignore[arg-type]
        assert isinstance(document, dict)
        assert row["event_id"] == document["event_id"]
        assert row["user_id"] == document["user_id"]
    for index, (kind, item) in enumerate(drawn):
        if kind in ("valid", "pretty"):
            assert index in kept, f"a valid event was rejected: {decoded.rejects}"
            row = rows[kept.index(index)]
            assert row["event_id"] == item["event_id"]  # type: ignore[index]
            assert row["price"] == item["price"]  # type: ignore[index]
            assert row["event_time"] == datetime(2026, 11, 23, 10, 0, 0, 1, tzinfo=UTC)

    assert_each_fate_is_its_own(CLICKSTREAM, values, kept)


def test_the_decoder_output_matches_the_event_schema() -> None:
    decoded = BatchDecoder(CLICKSTREAM, MAX_BYTES).decode([dumps(event(1, 2, 3.0))])
    assert decoded.table.schema == CLICKSTREAM.schema
    assert isinstance(decoded.table, pa.Table)


# --- list<string> fields: the fraud decisions ---------------------------------------------

DECISION_FIELDS = FRAUD_DECISIONS.schema.names
strings_and_nulls = st.lists(st.text(max_size=6) | st.none(), max_size=4)


def decision(number: int, rules: list[str | None], missing: list[str | None],
             probability: float | None) -> dict[str, object]:
    return {
        "event_id": f"t{number}",
        "event_time": "2026-11-23T10:00:00.000002Z",
        "transaction_id": f"t{number}",
        "transaction_time": "2026-11-23T10:00:00.000001Z",
        "user_id": number % 1000,
        "card_id": "c-1",
        "amount": 12.5,
        "merchant_category": "grocery",
        "channel": "pos",
        "decision": "REVIEW",
        "fraud_probability": probability,
        "rules_fired": rules,
        "reasons": ["r-1", *rules],  # "r-1" is where the encoding poison goes
        "model_version": None if probability is None else 3,
        "rules_version": "v1",
        "degraded": probability is None,
        "missing": missing,
        "latency_ms": 1.5,
    }


decisions = st.builds(
    decision,
    st.integers(0, 10**9),
    strings_and_nulls,
    strings_and_nulls,
    st.none() | st.floats(0, 1),
)


@st.composite
def perturbed_decision(draw: st.DrawFn) -> bytes:
    """A valid decision with one field replaced (a list's item too) or removed."""
    document = draw(decisions)
    name = draw(st.sampled_from([*DECISION_FIELDS, "extra"]))
    if draw(st.booleans()):
        document.pop(name, None)
    elif name in ("rules_fired", "reasons", "missing") and draw(st.booleans()):
        document[name] = [*document[name], draw(json_values)]  # type: ignore[misc]
    else:
        document[name] = draw(json_values)
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode()


decision_poison = st.one_of(
    st.none(),
    st.binary(max_size=80),
    decisions.map(lambda d: dumps(d)[:-1]),
    decisions.map(lambda d: dumps(d).replace(b'"r-1"', b'"r-\xff"')),  # invalid UTF-8 in a list
    decisions.map(lambda d: dumps(d).replace(b'"r-1"', b'"r-1",[]')),
    decisions.map(lambda d: dumps(d).replace(b'"r-1"', b'{"r":1}')),
    perturbed_decision(),
)
decision_messages = st.lists(
    st.one_of(
        decisions.map(lambda d: ("valid", d)),
        decisions.map(lambda d: ("pretty", d)),
        decision_poison.map(lambda value: ("any", value)),
    ),
    max_size=30,
)
SHARED_DECISIONS = BatchDecoder(FRAUD_DECISIONS, MAX_BYTES)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(decision_messages)
def test_list_fields_are_decoded_intact_and_anything_else_is_accounted_for(
    drawn: list[tuple[str, object]],
) -> None:
    values = [encode(kind, item) for kind, item in drawn]
    kept, decoded = accounted(SHARED_DECISIONS, values)
    rows = decoded.table.to_pylist()  # every string readable: valid UTF-8, lists included
    for index, row in zip(kept, rows, strict=True):
        document = json.loads(values[index])  # type: ignore[arg-type]
        assert isinstance(document, dict)
        for name in ("rules_fired", "reasons", "missing"):
            # A kept list is the message's array, item for item (nulls included).
            assert row[name] == document[name]
    for index, (kind, item) in enumerate(drawn):
        if kind in ("valid", "pretty"):
            assert index in kept, f"a valid decision was rejected: {decoded.rejects}"
            assert rows[kept.index(index)]["rules_fired"] == item["rules_fired"]  # type: ignore[index]
    assert_each_fate_is_its_own(FRAUD_DECISIONS, values, kept)


def test_list_fields_refuse_what_is_not_an_array_of_strings() -> None:
    base = decision(1, ["velocity"], [], 0.5)
    verdicts = {}
    for label, value in {
        "a string": "velocity",
        "numbers": [1, 2],
        "a nested array": [["velocity"]],
        "an object": {"velocity": True},
        "booleans": [True],
    }.items():
        decoded = BatchDecoder(FRAUD_DECISIONS, MAX_BYTES).decode(
            [dumps({**base, "rules_fired": value})]
        )
        verdicts[label] = [reject.reason.value for reject in decoded.rejects]
    assert verdicts == {label: ["schema_mismatch"] for label in verdicts}
    empty_and_null_items = BatchDecoder(FRAUD_DECISIONS, MAX_BYTES).decode(
        [dumps({**base, "rules_fired": [], "missing": [None, "model"]})]
    )
    assert empty_and_null_items.table.to_pylist()[0]["missing"] == [None, "model"]
    assert empty_and_null_items.table.schema == FRAUD_DECISIONS.schema
