"""The model registry: versions round-trip with their training data versions, only a better
model is promoted, artifacts are verified, concurrent registrations never share a
version, and the same works on S3."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from lakehouse.models.registry import (
    ModelVersion,
    champion,
    load_artifact,
    register,
    versions,
)
from lakehouse.query import run_query
from lakehouse.settings import Settings
from tests.conftest import s3_lake_options

DATA = {"gold.fraud_user_profiles": 12, "silver.transactions": 40}


def fraud_model(settings: Settings, pr_auc: float, artifact: bytes = b"model", **extra: object):
    return register(
        settings,
        "fraud",
        artifact,
        params={"max_depth": 6, **extra},
        metrics={"pr_auc": pr_auc, "recall_at_fpr_0.1pct": pr_auc / 2},
        training_data=DATA,
        promotion_metric="pr_auc",
    )


def test_a_version_round_trips_with_what_it_was_trained_on(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    first = fraud_model(settings, 0.61, b"\x00booster-bytes")
    assert (first.version, first.promoted, first.champion_version) == (1, True, None)
    (stored,) = versions(settings, "fraud")
    assert stored == first
    assert stored.training_data == DATA and stored.params == {"max_depth": 6}
    assert load_artifact(settings, stored) == b"\x00booster-bytes"
    rows = run_query(settings, "SELECT model_name, version, promoted FROM models.registry")
    assert rows.to_pylist() == [{"model_name": "fraud", "version": 1, "promoted": True}]


def test_only_a_better_model_replaces_the_champion(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    fraud_model(settings, 0.61, b"v1")
    worse = fraud_model(settings, 0.55, b"v2")
    assert not worse.promoted and worse.champion_version == 1
    assert "does not beat the champion v1" in worse.decision
    assert champion(settings, "fraud").version == 1

    better = fraud_model(settings, 0.70, b"v3")
    assert better.promoted and "beats the champion v1" in better.decision
    assert champion(settings, "fraud").version == 3
    assert load_artifact(settings, champion(settings, "fraud")) == b"v3"

    tie = fraud_model(settings, 0.70, b"v4")
    assert not tie.promoted  # equal is not better: the champion stays


def test_a_model_judged_on_another_metric_is_not_compared(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    fraud_model(settings, 0.61)
    other = register(
        settings,
        "fraud",
        b"other",
        params={},
        metrics={"log_loss": 0.1},
        training_data=DATA,
        promotion_metric="log_loss",
        higher_is_better=False,
    )
    assert not other.promoted and "not comparable" in other.decision
    with pytest.raises(ValueError, match="not among the metrics"):
        register(
            settings,
            "fraud",
            b"x",
            params={},
            metrics={"a": 1.0},
            training_data={},
            promotion_metric="pr_auc",
        )


def test_a_tampered_artifact_is_refused(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    version = fraud_model(settings, 0.61, b"original")
    with open(version.artifact_uri, "wb") as artifact:
        artifact.write(b"tampered")
    with pytest.raises(RuntimeError, match="does not match its recorded digest"):
        load_artifact(settings, version)


def test_concurrent_registrations_never_share_a_version(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    fraud_model(settings, 0.5, b"seed")  # the table exists before the race
    with ThreadPoolExecutor(max_workers=4) as pool:
        registered = list(
            pool.map(lambda i: fraud_model(settings, 0.5 + i / 100, f"m{i}".encode()), range(6))
        )
    numbers = sorted(v.version for v in versions(settings, "fraud"))
    assert numbers == list(range(1, 8))
    assert sorted(v.version for v in registered) == list(range(2, 8))


def test_the_registry_works_on_s3(
    make_settings: Callable[..., Settings], moto_server: str, s3_bucket: str
) -> None:
    settings = make_settings(**s3_lake_options(moto_server, s3_bucket))
    version = fraud_model(settings, 0.61, b"on-s3")
    assert version.artifact_uri.startswith(f"s3://{s3_bucket}/lake/models/artifacts/fraud/")
    assert load_artifact(settings, champion(settings, "fraud")) == b"on-s3"


def test_a_champion_rescored_on_the_new_held_out_data_is_compared_there(
    make_settings: Callable[..., Settings],
) -> None:
    """A daily retrain tests on a newer day: the champion is judged on that day too."""
    settings = make_settings()
    fraud_model(settings, 0.90, b"champion")  # scored 0.90 on its own, easier, test day
    rescored: list[int] = []

    def on_todays_rows(current: ModelVersion) -> float:
        rescored.append(current.version)
        return 0.70  # the champion on the new test day

    challenger = register(
        settings, "fraud", b"challenger", params={}, metrics={"pr_auc": 0.80},
        training_data=DATA, promotion_metric="pr_auc", rescore_champion=on_todays_rows,
    )
    assert rescored == [1]
    assert challenger.promoted
    assert "beats the champion v1 (0.7 on the same held-out data)" in challenger.decision


def test_a_champion_that_learnt_from_the_held_out_data_is_not_compared(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    fraud_model(settings, 0.90, b"champion")
    backfill = register(
        settings, "fraud", b"older-day", params={}, metrics={"pr_auc": 0.99},
        training_data=DATA, promotion_metric="pr_auc", rescore_champion=lambda current: None,
    )
    assert not backfill.promoted
    assert "not comparable: the champion v1 has learnt from" in backfill.decision
    assert champion(settings, "fraud").version == 1
