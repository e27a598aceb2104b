"""The fraud rules file: the shipped one validates, a bad one is refused with the line at
fault, any bytes at all give a clear error rather than a crash, unknown signals never fire,
and the verdict is the strongest of rules and model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from lakehouse.decisions.decide import Thresholds, Verdict, combine
from lakehouse.decisions.rules import DEFAULT_RULES_PATH, RulesError, load_rules
from lakehouse.features.fraud import SIGNALS

VALID = """\
version: "7"
decision:
  block_probability: 0.9
  review_probability: champion
blocklists:
  cards: ["c-1"]
amount_caps:
  max_amount: {gift_cards: 100}
rules:
  - name: fast
    action: review
    reason: many payments
    when:
      - {signal: txn_count_5m, at_least: 2}
  - name: far_and_new
    action: block
    reason: far away on a new device
    when:
      - {signal: km_from_last, above: 500}
      - {signal: new_device, is: true}
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def signals(**columns: list[float]) -> pa.Table:
    rows = len(next(iter(columns.values())))
    return pa.table({name: pa.array(columns.get(name, [np.nan] * rows), pa.float32())
                     for name in SIGNALS})


def test_the_shipped_rules_validate_and_carry_a_version_with_a_digest() -> None:
    rules = load_rules()
    assert rules.path == DEFAULT_RULES_PATH
    declared, digest = rules.version.split("+")
    assert declared == rules.spec.version and len(digest) == 8
    assert {rule.name for rule in rules.signal_rules} >= {"velocity_5m", "impossible_travel"}


def test_an_edit_changes_the_version_even_when_the_declared_one_stays(tmp_path: Path) -> None:
    first = load_rules(write(tmp_path, VALID)).version
    second = load_rules(write(tmp_path, VALID.replace("at_least: 2", "at_least: 3"))).version
    assert first.split("+")[0] == second.split("+")[0] and first != second


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("signal: txn_count_5m", "signal: txn_count_5y"), 14, "unknown signal 'txn_count_5y'"),
        (("at_least: 2}", "at_least: 2, above: 1}"), 14, "exactly one of"),
        (("action: block", "action: refuse"), 16, "rules[1].action"),
        (("block_probability: 0.9", "block_probability: 1.5"), 3, "block_probability"),
        (("    reason: many payments\n", ""), 10, "rules[0].reason: Field required"),
        (("  cards: [\"c-1\"]", "  cards: [\"c-1\"]\n  phones: []"), 7, "phones"),
        (("  - name: far_and_new", "  - name: fast"), 15, "repeated: fast"),
        (("version: \"7\"\n", ""), 1, "version: Field required"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_at_fault(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(RulesError) as refused:
        load_rules(path)
    assert f"{path}:{line}:" in str(refused.value) and message in str(refused.value)


def test_yaml_syntax_errors_name_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  - name: fast", "  - name: [fast"))
    with pytest.raises(RulesError, match=rf"{path}:1\d: not valid YAML"):
        load_rules(path)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@examples(max_examples=300, deadline=None)
def test_any_bytes_give_rules_or_a_clear_error(tmp_path_factory: pytest.TempPathFactory,
                                               data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "rules.yaml"
    path.write_bytes(data)
    try:
        load_rules(path)
    except RulesError as error:
        assert str(path) in str(error)


def test_unknown_signals_never_fire_a_rule(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, VALID))
    hits = rules.signal_hits(signals(
        txn_count_5m=[np.nan, 1, 2, 5],
        km_from_last=[900, np.nan, 900, 10],
        new_device=[1, 1, np.nan, 1],
    ))
    assert hits.tolist() == [[False, True], [False, False], [True, False], [True, False]]


def test_blocklists_and_amount_caps_read_the_request(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, VALID))
    fired = rules.request_hits("c-1", "d-1", None, "gift_cards", 150.0)
    assert [(name, action) for name, action, _ in fired] == [
        ("blocklisted_card", "block"), ("amount_cap", "review")]
    assert rules.request_hits("c-2", "d-1", "1.2.3.4", "grocery", 1e6) == []


def test_the_strongest_verdict_wins_and_says_why(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, VALID))
    thresholds = Thresholds.resolve(rules, champion_block=0.5, champion_review=0.1)
    assert thresholds == Thresholds(block=0.9, review=0.1)
    assert combine([], 0.05, thresholds).verdict is Verdict.APPROVE
    review = combine([], 0.2, thresholds)
    assert review.verdict is Verdict.REVIEW and "REVIEW threshold" in review.reasons[0]
    blocked = combine([("fast", "review", "many payments")], 0.95, thresholds)
    assert blocked.verdict is Verdict.BLOCK and blocked.rules_fired == ["fast"]
    assert blocked.reasons[0] == "many payments" and "BLOCK threshold" in blocked.reasons[1]
    ruled = combine([("far_and_new", "block", "far")], 0.0, thresholds)
    assert ruled.verdict is Verdict.BLOCK
    assert combine([("fast", "review", "x")], None, None).verdict is Verdict.REVIEW
