"""How the model's probability and the fired rules combine into APPROVE, REVIEW or BLOCK.

The strongest verdict wins: a blocking rule or a probability at or above the BLOCK
threshold blocks; otherwise a reviewing rule or a probability at or above the REVIEW
threshold sends the payment to review; otherwise it is approved. Every verdict other than
APPROVE carries the reasons that caused it, in the order rules then model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lakehouse.decisions.rules import Action, RuleSet


class Verdict(StrEnum):
    """The answer to the payment network, weakest first."""

    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"


_VERDICT_OF: dict[Action, Verdict] = {"block": Verdict.BLOCK, "review": Verdict.REVIEW}


@dataclass(frozen=True)
class Thresholds:
    """Model probabilities at which a payment is blocked or reviewed."""

    block: float
    review: float

    @classmethod
    def resolve(cls, rules: RuleSet, champion_block: float | None,
                champion_review: float | None) -> Thresholds | None:
        """The rule set's policy applied to the serving model's trained thresholds (None
        without a model). A REVIEW threshold above the BLOCK one is capped at it."""
        if champion_block is None:
            return None
        policy = rules.spec.decision
        block = champion_block if policy.block_probability == "champion" else float(
            policy.block_probability)
        if policy.review_probability == "champion":
            review = champion_review if champion_review is not None else block
        else:
            review = float(policy.review_probability)
        return cls(block, min(review, block))


@dataclass(frozen=True)
class Outcome:
    """A decision and why."""

    verdict: Verdict
    rules_fired: list[str]
    reasons: list[str]


def combine(fired: list[tuple[str, Action, str]], probability: float | None,
            thresholds: Thresholds | None) -> Outcome:
    """The verdict for one transaction from its fired rules (name, action, reason) and its
    model probability (None when no model was available)."""
    verdict = Verdict.APPROVE
    reasons = []
    for _, action, reason in fired:
        verdict = max(verdict, _VERDICT_OF[action], key=_strength)
        reasons.append(reason)
    if probability is not None and thresholds is not None:
        if probability >= thresholds.block:
            verdict = Verdict.BLOCK
            reasons.append(f"model probability {probability:.3f} at or above the BLOCK "
                           f"threshold {thresholds.block:.3f}")
        elif probability >= thresholds.review:
            verdict = max(verdict, Verdict.REVIEW, key=_strength)
            reasons.append(f"model probability {probability:.3f} at or above the REVIEW "
                           f"threshold {thresholds.review:.3f}")
    return Outcome(verdict, [name for name, _, _ in fired], reasons)


def _strength(verdict: Verdict) -> int:
    return list(Verdict).index(verdict)
