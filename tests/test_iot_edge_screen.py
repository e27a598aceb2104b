"""The gateway's screen on untrusted input (hypothesis): whatever the topics and payloads,
it never raises and gives every message exactly one verdict, so nothing is dropped
without being counted; plus literal cases for each verdict and the dedupe window."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.catalog import SENSOR_READINGS, SENSOR_READINGS_MQTT
from streaming.edge.screen import DedupeWindow, Filtered, Screen
from streaming.ingest.decode import BatchDecoder

LAYOUT = SENSOR_READINGS_MQTT


def make_screen(window: int = 1_000) -> Screen:
    return Screen(BatchDecoder(SENSOR_READINGS.event, 1 << 20), DedupeWindow(window))


def reading(device: str, event_id: str, value: float = 1.5) -> bytes:
    return orjson.dumps({
        "event_id": event_id, "event_time": "2026-01-01T00:00:00Z", "device_id": device,
        "sensor_id": f"{device}-temperature", "sensor_type": "temperature", "plant": "p",
        "sequence": 1, "value": value, "unit": "degC",
    })


def test_each_verdict_on_literal_input() -> None:
    screen = make_screen()
    ok = reading("dev-1", "a")
    topics = [LAYOUT.topic("p", "dev-1", "s"), LAYOUT.topic("p", "dev-1", "s"),
              LAYOUT.topic("p", "dev-2", "s"), "elsewhere/p/dev-1/s",
              LAYOUT.topic("p", "dev-1", "s")]
    payloads = [ok, ok, reading("dev-1", "b"), reading("dev-1", "c"), b"{oops"]
    verdicts = screen.judge(topics, payloads)
    assert verdicts.forward == [(0, "dev-1")]
    assert sorted(verdicts.filtered) == [(1, Filtered.DUPLICATE), (2, Filtered.DEVICE_MISMATCH),
                                         (3, Filtered.BAD_TOPIC)]
    assert [(q.index, q.device, q.reason) for q in verdicts.quarantine] == [
        (4, "dev-1", "invalid_json")]
    # The window spans batches.
    assert screen.judge([topics[0]], [ok]).filtered == [(0, Filtered.DUPLICATE)]


def test_dedupe_window_is_bounded() -> None:
    window = DedupeWindow(2)
    assert [window.seen_before(p) for p in (b"a", b"b", b"a", b"c", b"a")] == [
        False, False, True, False, False]  # "a" fell out once "c" came
    assert len(window) == 2


devices = st.sampled_from(["dev-1", "dev-2", "dev+", "", "dev/3", "\u00e9"])
topics = st.one_of(
    st.builds(lambda d: LAYOUT.topic("p", d, "s"), devices),
    st.text(max_size=30),
    st.builds(lambda d: f"factory/p/{d}", devices),
)
payloads = st.one_of(
    st.builds(reading, devices, st.text(max_size=8),
              st.floats(allow_nan=False, allow_infinity=False)),
    st.binary(max_size=64),
    # The standard library writes any integer and NaN (not JSON: more poison), unlike orjson.
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.sampled_from(
        ["event_id", "device_id", "value", "event_time", "sequence"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats()), max_size=5)),
    st.just(b""),
    st.just(b"null"),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(topics, payloads), max_size=40))
def test_every_message_gets_exactly_one_verdict(messages: list[tuple[str, bytes]]) -> None:
    screen = make_screen(window=8)
    verdicts = screen.judge([t for t, _ in messages], [p for _, p in messages])
    indices = ([i for i, _ in verdicts.forward] + [q.index for q in verdicts.quarantine]
               + [i for i, _ in verdicts.filtered])
    assert sorted(indices) == list(range(len(messages)))
    for index, device in verdicts.forward:
        assert orjson.loads(messages[index][1])["device_id"] == device
        assert LAYOUT.device_of(messages[index][0]) == device
