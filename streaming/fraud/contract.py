"""The decision API's request and response: a payment as the `transactions` event carries
it, and the decision with everything that explains it.

The request is the event itself (field for field, so a producer's record can be posted as
is), validated strictly: every field is untrusted, bounded in length and range, unknown
fields are refused. The two `label_*` fields exist for simulations only: the generators
know the ground truth and the audit trail forwards it to the lake; the decision never
reads them (a test pins that).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
Code = Annotated[str, Field(min_length=1, max_length=64)]


class Transaction(BaseModel):
    """One payment to decide (the fields of a `transactions` event)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(description="The transaction id (idempotency key)")
    event_time: AwareDatetime = Field(description="When the payment happened, with its zone")
    user_id: int = Field(ge=0, le=2**63 - 1, description="The card holder")
    card_id: Identifier
    merchant_id: Identifier
    merchant_category: Code
    amount: float = Field(gt=0, le=1e9, description="In `currency`")
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    city: Annotated[str, Field(max_length=100)] | None = None
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    device_id: Identifier
    ip_address: Annotated[str, Field(max_length=45, pattern=r"^[0-9A-Fa-f.:]+$")] | None = None
    channel: Literal["pos", "online", "mobile"]
    label_is_fraud: bool | None = Field(None, description="Simulations only; never read")
    label_fraud_pattern: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Simulations only; never read"
    )

    @field_validator("amount", "latitude", "longitude")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class FeatureContribution(BaseModel):
    """One feature's value and its push on the model's log-odds (positive: towards fraud)."""

    name: str
    value: float | None
    contribution: float


class StageTimes(BaseModel):
    """Milliseconds spent in each stage of this decision (the seed's latency budget)."""

    enrichment: float
    aggregates: float
    model: float
    rules: float
    record: float
    total: float


class Decision(BaseModel):
    """The answer: the verdict, the probability, and why."""

    transaction_id: str
    decision: Literal["APPROVE", "REVIEW", "BLOCK"]
    fraud_probability: float | None = Field(description="None when no model was loaded")
    reasons: list[str]
    rules_fired: list[str]
    top_features: list[FeatureContribution]
    model_version: int | None
    rules_version: str
    degraded: bool
    missing: list[str] = Field(description="What the decision was made without")
    stage_ms: StageTimes
