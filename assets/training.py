"""What every model asset shares: its decorator settings, registering the trained model,
and the metadata a data scientist looks at (held-out metrics, the registry's decision,
the evaluation charts and comparison tables).

A model asset is partitioned by day like the tables it learns from: partition D is the
model trained on the data up to D and tested on D. A ranged run (a backfill, the weekly
run) trains once, as of the range's last day, since a model of every past day would only
be replaced by the newest. The trained model is registered in `models.registry`, which
decides its promotion; the asset reports the decision, it does not make it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.metadata import preview
from assets.partitions import DAILY, SINGLE_RUN
from assets.tables import asset_deps
from lakehouse.catalog import Domain, Layer, TableSpec
from lakehouse.models.plots import markdown_image
from lakehouse.models.registry import ModelVersion, register
from lakehouse.models.trained import TrainedModel
from lakehouse.settings import Settings


class TrainingConfig(dg.Config):
    """Run configuration of the training assets."""

    full_history: bool = Field(
        default=False,
        description="Learn from every day there is (the weekly full retrain) rather than "
        "the daily retrain's window.",
    )


def model_key(name: str) -> dg.AssetKey:
    """The asset of the model `name` (a model module's `MODEL_NAME`): `models/<name>`."""
    return dg.AssetKey(["models", name])


def model_asset(
    name: str,
    domain: Domain,
    description: str,
    deps: Sequence[TableSpec | dg.AssetsDefinition],
    **extra: Any,
) -> dict[str, Any]:
    """`@dg.asset` arguments for the model `name`: key `models/<name>`, owned by its
    domain's team, daily partitions with single-run backfills, tagged `layer: models`,
    which keeps it out of the `medallion` job (that job selects silver and gold by the
    same tag). `deps` are the tables it learns from (or the model it serves)."""
    return {
        "key": model_key(name),
        "description": description,
        "partitions_def": DAILY,
        "backfill_policy": SINGLE_RUN,
        "group_name": domain.value,
        "kinds": {"python"},
        "owners": [domain.owner],
        "tags": {"layer": Layer.MODELS.value},
        "deps": asset_deps(deps),
        **extra,
    }


def register_trained(
    context: dg.AssetExecutionContext,
    settings: Settings,
    trained: TrainedModel,
    training_data: dict[str, int],
    rescore_champion: Callable[[ModelVersion], float | None] | None = None,
    higher_is_better: bool = True,
) -> dg.MaterializeResult:
    """Register `trained` (promotion decided by the registry, on a metric where higher is
    better unless said otherwise) and describe the result."""
    version = register(
        settings,
        trained.name,
        trained.artifact,
        params=trained.params,
        metrics=trained.metrics,
        training_data=training_data,
        promotion_metric=trained.promotion_metric,
        higher_is_better=higher_is_better,
        rescore_champion=rescore_champion,
    )
    context.log.info(f"{trained.name} v{version.version}: {version.decision}")
    return dg.MaterializeResult(metadata=model_metadata(trained, version))


def model_metadata(trained: TrainedModel, version: ModelVersion) -> dict[str, object]:
    """Numbers as numbers (the UI plots them across materializations), the decision as
    text, charts as inline images and comparison tables as Markdown."""
    metadata: dict[str, object] = {
        "model_version": dg.MetadataValue.int(version.version),
        "promoted": dg.MetadataValue.bool(version.promoted),
        "decision": dg.MetadataValue.text(version.decision),
        "artifact": dg.MetadataValue.path(version.artifact_uri),
        "training_data": dg.MetadataValue.json(version.training_data),
        "params": dg.MetadataValue.json(trained.params),
        "fit_seconds": dg.MetadataValue.float(round(trained.seconds, 3)),
    }
    for name, value in sorted(trained.metrics.items()):
        metadata[name] = dg.MetadataValue.float(float(value))
    for title, png in trained.charts.items():
        metadata[f"chart: {title}"] = dg.MetadataValue.md(markdown_image(png, title))
    for title, rows in trained.tables.items():
        if rows:
            metadata[f"table: {title}"] = preview(pa.Table.from_pylist(rows), limit=len(rows))
    return metadata
