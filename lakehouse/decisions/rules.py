"""The fraud rules engine: declarative rules in a versioned YAML file, validated on load
with errors that name the line at fault, evaluated for a whole batch of transactions at
once.

A rule set holds four kinds of rule (`fraud-rules.yaml` beside this module is the default
and the documentation by example):

- **blocklists** of cards, devices and IP addresses;
- **amount caps** per merchant category;
- **signal rules**: every condition on a signal of `lakehouse.features.fraud.SIGNALS`
  (the model's features and the real-time aggregates) must hold; a NaN signal (unknown)
  never satisfies a condition, so missing state cannot fire a rule;
- **how score and rules combine**: the model probabilities at which a payment is blocked
  or sent to review, and each rule's action.

The decision service evaluates one transaction per call and training evaluates weeks of
them for the rules-only baseline: both go through `RuleSet.signal_hits`, so the baseline
is exactly what the service would have done.

Hand-written rather than Drools-like engines (durable_rules, business-rules): those bring
their own expression languages and per-fact evaluation loops, where this needs a few
vectorised comparisons and line-precise validation of a small file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakehouse.features.fraud import SIGNALS, Signals

DEFAULT_RULES_PATH = Path(__file__).with_name("fraud-rules.yaml")
Action = Literal["block", "review"]
_OPERATORS = {
    "above": np.greater,
    "at_least": np.greater_equal,
    "below": np.less,
    "at_most": np.less_equal,
}


class RulesError(ValueError):
    """A rules file that cannot be used, with every problem and the line it is on."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One comparison of a signal: exactly one of the operators, or `is` for flags."""

    signal: str
    above: float | None = None
    at_least: float | None = None
    below: float | None = None
    at_most: float | None = None
    is_: bool | None = Field(None, alias="is")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        if name not in SIGNALS:
            raise ValueError(f"unknown signal {name!r}; known: {', '.join(SIGNALS)}")
        return name

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [name for name in (*_OPERATORS, "is_") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a condition needs exactly one of {', '.join([*_OPERATORS, 'is'])}; "
                f"found {', '.join(given) or 'none'}"
            )
        return self

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Where the condition holds (never where the signal is NaN)."""
        with np.errstate(invalid="ignore"):
            if self.is_ is not None:
                return (values > 0) if self.is_ else (values == 0)
            for name, compare in _OPERATORS.items():
                threshold = getattr(self, name)
                if threshold is not None:
                    return compare(values, threshold)
        raise AssertionError("validated to have one operator")


class SignalRule(_Strict):
    """A named rule: all its conditions hold, so it fires, with its action and reason."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    action: Action
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    when: Annotated[list[Condition], Field(min_length=1)]


class Blocklists(_Strict):
    """Cards, devices and IP addresses whose payments are refused outright."""

    action: Action = "block"
    cards: list[str] = []
    devices: list[str] = []
    ips: list[str] = []


class AmountCaps(_Strict):
    """The largest amount per merchant category that passes without the cap's action."""

    action: Action = "review"
    max_amount: dict[str, Annotated[float, Field(gt=0)]] = {}


class DecisionPolicy(_Strict):
    """How the model's probability maps to decisions: `champion` is the threshold trained
    into the serving model, a number overrides it."""

    block_probability: Literal["champion"] | Annotated[float, Field(gt=0, le=1)] = "champion"
    review_probability: Literal["champion"] | Annotated[float, Field(gt=0, le=1)] = 0.2


class RulesFile(_Strict):
    """The whole file, as written."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    decision: DecisionPolicy = DecisionPolicy()
    blocklists: Blocklists = Blocklists()
    amount_caps: AmountCaps = AmountCaps()
    rules: list[SignalRule] = []


@dataclass(frozen=True)
class RuleSet:
    """A validated rules file, ready to evaluate; `version` is the file's declared version
    and the digest of its bytes, so an edit that forgot to bump it still shows."""

    spec: RulesFile
    version: str
    path: Path

    @cached_property
    def _signals(self) -> tuple[str, ...]:
        """The signals the rules read, each once (computed once per rule set)."""
        return tuple(dict.fromkeys(c.signal for rule in self.spec.rules for c in rule.when))

    @property
    def signal_rules(self) -> list[SignalRule]:
        """The rules on signals, in file order (the columns of `signal_hits`)."""
        return self.spec.rules

    def signal_hits(self, signals: pa.Table | Signals) -> np.ndarray:
        """(rows x signal rules) booleans for a table of `transaction_features` output, or
        the decision service's `Signals` block of the same values."""
        columns = {name: np.asarray(signals[name]) for name in self._signals}
        hits = [
            np.logical_and.reduce([c.holds(columns[c.signal]) for c in rule.when])
            for rule in self.spec.rules
        ]
        if not hits:
            return np.zeros((signals.num_rows, 0), dtype=bool)
        return np.column_stack(hits)

    def request_hits(
        self,
        card_id: str,
        device_id: str | None,
        ip_address: str | None,
        merchant_category: str,
        amount: float,
    ) -> list[tuple[str, Action, str]]:
        """The blocklist and amount-cap rules a transaction's own fields fire:
        (name, action, reason) each."""
        lists, caps = self.spec.blocklists, self.spec.amount_caps
        fired: list[tuple[str, Action, str]] = []
        for name, value, listed in (
            ("blocklisted_card", card_id, lists.cards),
            ("blocklisted_device", device_id, lists.devices),
            ("blocklisted_ip", ip_address, lists.ips),
        ):
            if value is not None and value in listed:
                fired.append((name, lists.action, f"{name.split('_')[1]} is on the blocklist"))
        cap = caps.max_amount.get(merchant_category)
        if cap is not None and amount > cap:
            fired.append(
                ("amount_cap", caps.action, f"amount above the {merchant_category} cap of {cap:g}")
            )
        return fired


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file (the default one when `path` is None); raises
    `RulesError` listing each problem with its line."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_bytes()
    except OSError as error:
        raise RulesError(f"{path}: cannot read the rules file: {error}") from error
    data, lines = _parse(path, text)
    try:
        spec = RulesFile.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{path}:{_line_of(lines, tuple(issue['loc']))}: "
            f"{_dotted(issue['loc']) or 'file'}: {issue['msg']}"
            for issue in error.errors()
        ]
        raise RulesError("invalid rules file:\n  " + "\n  ".join(problems)) from None
    seen: set[str] = set()
    for index, rule in enumerate(spec.rules):
        if rule.name in seen:
            line = _line_of(lines, ("rules", index, "name"))
            raise RulesError(
                f"invalid rules file:\n  {path}:{line}: rules[{index}].name: "
                f"rule names must be unique; repeated: {rule.name}"
            )
        seen.add(rule.name)
    digest = hashlib.sha256(text).hexdigest()[:8]
    return RuleSet(spec, f"{spec.version}+{digest}", path)


def _parse(path: Path, text: bytes) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The YAML document and the line (1-based) of every mapping key and list item."""
    try:
        loader = yaml.SafeLoader(text.decode("utf-8"))
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except UnicodeDecodeError as error:
        raise RulesError(f"{path}: not UTF-8 text: {error}") from error
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise RulesError(f"{path}:{line}: not valid YAML: {error.problem}") from error
    except yaml.YAMLError as error:
        raise RulesError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise RulesError(f"{path}:1: the rules file must be a mapping (version, rules, ...)")
    return data, dict(_lines(node, ()))


def _lines(node: yaml.Node, at: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], int]]:
    yield at, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*at, key.value)
            yield path, key.start_mark.line + 1
            for item in _lines(value, path):
                if item[0] != path:
                    yield item
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _lines(item, (*at, index))


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    """The line of the deepest part of `loc` the file has (pydantic adds model names for
    unions, and a missing field has no line of its own: its parent's is used)."""
    loc = tuple("is" if part == "is_" else part for part in loc)
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + ("is" if part == "is_" else str(part)))
    return "".join(parts)
