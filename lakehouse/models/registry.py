"""The model registry, kept in the lake: every trained model version with what it was
trained on, how it scored, and whether it replaced the champion.

The registry is a Delta table (`models.registry`, one row per version) beside the model
artifacts, which are stored content-addressed (`models/artifacts/<model>/<sha256>`) under
the same root, so a folder or an S3 prefix holds everything and a lost race never leaves
an orphan. Promotion is decided when a version is registered: it becomes the champion
only if it beats the current champion on the same held-out metric. The online services
load the champion (`champion`, `load_artifact`).

Registering is safe under concurrency: the new row is merged in only if its (model,
version) is still free, and a writer that lost the race takes the next version.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from lakehouse.catalog import MODEL_REGISTRY
from lakehouse.delta import ensure_table, open_table
from lakehouse.settings import Settings
from lakehouse.storage import filesystem

_ATTEMPTS = 20


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    model_name: str
    version: int
    registered_at: datetime
    artifact_uri: str
    artifact_sha256: str
    params: dict[str, Any]
    metrics: dict[str, float]
    training_data: dict[str, int]
    promotion_metric: str
    promotion_value: float
    champion_version: int | None
    promoted: bool
    decision: str


def register(
    settings: Settings,
    model_name: str,
    artifact: bytes,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    training_data: dict[str, int],
    promotion_metric: str,
    higher_is_better: bool = True,
    rescore_champion: Callable[[ModelVersion], float | None] | None = None,
) -> ModelVersion:
    """Store `artifact`, record the version and decide its promotion; return the record.

    `training_data` maps each input table (`layer.name`) to the Delta version trained on,
    so any model can be traced to, and retrained from, exactly its data.

    `rescore_champion(champion)` returns the champion's `promotion_metric` on this
    version's own held-out data. Give it whenever the held-out data moves with time (a
    daily retrain tests on the newest day): the two models are then compared on the same
    rows, not each on its own test day. It returns None when the champion has learnt from
    those rows (a backfill of an older day): the two cannot be compared fairly, and the
    champion is kept. Without it, the champion's recorded value is used.
    """
    if promotion_metric not in metrics:
        raise ValueError(
            f"promotion metric {promotion_metric!r} is not among the metrics {sorted(metrics)}"
        )
    digest = hashlib.sha256(artifact).hexdigest()
    uri = _write_artifact(settings, model_name, digest, artifact)
    table = ensure_table(MODEL_REGISTRY, settings)
    rescored: dict[int, float | None] = {}
    for _ in range(_ATTEMPTS):
        history = versions(settings, model_name)
        current = next((v for v in reversed(history) if v.promoted), None)
        if (current is not None and rescore_champion is not None
                and current.promotion_metric == promotion_metric
                and current.version not in rescored):
            rescored[current.version] = rescore_champion(current)
        if current is not None and current.version in rescored:
            promoted, decision = _decide_rescored(
                current, promotion_metric, metrics, higher_is_better, rescored[current.version]
            )
        else:
            promoted, decision = _decide(current, promotion_metric, metrics, higher_is_better)
        record = ModelVersion(
            model_name=model_name,
            version=(history[-1].version + 1) if history else 1,
            registered_at=datetime.now(UTC),
            artifact_uri=uri,
            artifact_sha256=digest,
            params=params,
            metrics=metrics,
            training_data=training_data,
            promotion_metric=promotion_metric,
            promotion_value=float(metrics[promotion_metric]),
            champion_version=current.version if current else None,
            promoted=promoted,
            decision=decision,
        )
        try:
            inserted = (
                table.merge(
                    source=_row(record),
                    predicate="t.model_name = s.model_name AND t.version = s.version",
                    source_alias="s",
                    target_alias="t",
                )
                .when_not_matched_insert_all()
                .execute()
            )
        except CommitFailedError:
            inserted = {"num_target_rows_inserted": 0}  # a concurrent commit won
        if inserted["num_target_rows_inserted"] == 1:
            return record
        # The version was taken meanwhile: back off a little (jittered, so racing writers
        # spread out) and take the next one.
        time.sleep(random.uniform(0.01, 0.1))
        table.update_incremental()
    raise RuntimeError(f"could not register {model_name} after {_ATTEMPTS} concurrent attempts")


def versions(settings: Settings, model_name: str) -> list[ModelVersion]:
    """Every registered version of a model, oldest first."""
    table = open_table(MODEL_REGISTRY, settings)
    if table is None:
        return []
    rows = table.to_pyarrow_dataset().to_table(filter=pc.field("model_name") == model_name)
    return sorted((_record(row) for row in rows.to_pylist()), key=lambda v: v.version)


def champion(settings: Settings, model_name: str) -> ModelVersion | None:
    """The version the services should load: the latest promoted one (None if none is)."""
    return next((v for v in reversed(versions(settings, model_name)) if v.promoted), None)


def load_artifact(settings: Settings, version: ModelVersion) -> bytes:
    """The stored artifact of a version, checked against its recorded digest."""
    files, path = filesystem(settings, version.artifact_uri)
    with files.open_input_stream(path) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != version.artifact_sha256:
        raise RuntimeError(f"{version.artifact_uri} does not match its recorded digest")
    return data


def _decide(
    current: ModelVersion | None,
    metric: str,
    metrics: dict[str, float],
    higher_is_better: bool,
) -> tuple[bool, str]:
    """Promote only a version that beats the champion on the champion's own metric."""
    value = float(metrics[metric])
    if current is None:
        return True, f"first version: promoted with {metric}={value:.6g}"
    if current.promotion_metric != metric:
        return False, (
            f"not comparable: the champion (v{current.version}) was judged on "
            f"{current.promotion_metric}, this version on {metric}; champion kept"
        )
    return _verdict(current, metric, value, current.promotion_value, higher_is_better, "")


def _decide_rescored(
    current: ModelVersion,
    metric: str,
    metrics: dict[str, float],
    higher_is_better: bool,
    rescored: float | None,
) -> tuple[bool, str]:
    """Promote only a version that beats the champion on this version's held-out data."""
    if rescored is None:
        return False, (
            f"not comparable: the champion v{current.version} has learnt from this version's "
            "held-out data; champion kept"
        )
    value = float(metrics[metric])
    return _verdict(current, metric, value, float(rescored), higher_is_better,
                    " on the same held-out data")


def _verdict(current: ModelVersion, metric: str, value: float, reference: float,
             higher_is_better: bool, where: str) -> tuple[bool, str]:
    better = value > reference if higher_is_better else value < reference
    verdict = "beats" if better else "does not beat"
    action = "promoted" if better else "champion kept"
    return better, (
        f"{metric}={value:.6g} {verdict} the champion v{current.version} "
        f"({reference:.6g}{where}): {action}"
    )


def _row(record: ModelVersion) -> pa.Table:
    row = {
        **record.__dict__,
        "params": json.dumps(record.params, sort_keys=True, default=str),
        "metrics": json.dumps(record.metrics, sort_keys=True),
        "training_data": json.dumps(record.training_data, sort_keys=True),
    }
    return pa.Table.from_pylist([row], schema=MODEL_REGISTRY.schema)


def _record(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        **{
            **row,
            "params": json.loads(row["params"]),
            "metrics": json.loads(row["metrics"]),
            "training_data": json.loads(row["training_data"]),
        }
    )


def _write_artifact(settings: Settings, model_name: str, digest: str, artifact: bytes) -> str:
    uri = f"{settings.lake_root}/models/artifacts/{model_name}/{digest}"
    files, path = filesystem(settings, uri)
    files.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with files.open_output_stream(path) as stream:
        stream.write(artifact)
    return uri
