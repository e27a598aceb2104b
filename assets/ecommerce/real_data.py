"""The recommenders judged on real shoppers: UCI Online Retail's order lines as they
reached `silver.purchases` through the platform's own path (`lakehouse import
online-retail`, the ingest, the medallion), validation month chooses, last month reports
(`lakehouse.models.retail_evaluation`).

Not partitioned: the data set is fixed, so one materialization is the whole evaluation,
of every imported line silver holds (the marker: `IMPORTED_ONLINE_RETAIL`). Nothing is
registered: the champion on this data (EASE so far) is an item x item weight matrix, not
the factors the registry's `recommender_als` artifact and the recommendation service
hold, and the registry's promotion re-scores a champion on the lake's own days, which
this data set is not part of.
"""

import dagster as dg
import pyarrow as pa

from assets.metadata import preview
from assets.resources import LakehouseResource
from assets.tables import asset_deps
from lakehouse.catalog import SILVER_PURCHASES, Domain
from lakehouse.models.plots import markdown_image
from lakehouse.models.real_data import imported_online_retail
from lakehouse.models.recommender import BASELINE
from lakehouse.models.retail_evaluation import (
    RetailEvaluation,
    charts,
    comparison_rows,
    evaluate_candidates,
)

RETAIL_HEADLINES: dict[str, str] = {
    "champion": "champion (chosen on validation)",
    "champion_validation_precision_at_10": "champion validation precision@10",
    "champion_test_precision_at_10": "champion test precision@10",
    "champion_test_recall_at_10": "champion test recall@10",
    "popularity_test_precision_at_10": "popularity test precision@10",
    "champion_test_over_popularity": "champion test P@10 / popularity",
}
"""The evaluation's headline figures (metadata name -> label): what `lakehouse evaluate
real-data` prints of its materialization."""


@dg.asset(
    key=dg.AssetKey(["evaluations", "online_retail_recommenders"]),
    description="ALS, item-kNN, BPR, EASE and popularity by distinct buyers on the UCI "
    "Online Retail lines imported into silver.purchases: settings and champion chosen on "
    "the validation month, precision@10, recall@10 and coverage on the last month.",
    deps=asset_deps([SILVER_PURCHASES]),
    group_name=Domain.ECOMMERCE.value,
    owners=[Domain.ECOMMERCE.owner],
    kinds={"python", "implicit"},
    tags={"layer": "evaluations"},
)
def online_retail_recommenders(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Run the whole evaluation on the imported lines in silver and report every candidate."""
    imported = imported_online_retail(lakehouse.settings())
    result = evaluate_candidates(imported.events)
    context.log.info(f"champion on validation precision@10: {result.champion}")
    source = {
        "order_lines": dg.MetadataValue.int(imported.events.num_rows),
        "silver_purchases_version": dg.MetadataValue.int(imported.silver_version),
    }
    return dg.MaterializeResult(metadata={**source, **evaluation_metadata(result)})


def evaluation_metadata(result: RetailEvaluation) -> dict[str, object]:
    """The comparison table, the champion and its test figures as numbers (the UI plots
    them across materializations), and the precision charts inline."""
    champion = result.result(result.champion)
    metadata: dict[str, object] = {
        "champion": dg.MetadataValue.text(result.champion),
        "champion_settings": dg.MetadataValue.json(champion.settings),
        "validation_start": dg.MetadataValue.text(result.validation_start.date().isoformat()),
        "test_start": dg.MetadataValue.text(result.test_start.date().isoformat()),
        "champion_validation_precision_at_10": dg.MetadataValue.float(
            champion.validation.precision
        ),
        "champion_test_precision_at_10": dg.MetadataValue.float(champion.test.precision),
        "champion_test_recall_at_10": dg.MetadataValue.float(champion.test.recall),
        "champion_test_coverage": dg.MetadataValue.float(champion.test.coverage),
        "champion_test_over_popularity": dg.MetadataValue.float(
            result.ratio_over_popularity(result.champion)
        ),
        "popularity_test_precision_at_10": dg.MetadataValue.float(
            result.result(BASELINE).test.precision
        ),
        "table: candidates": preview(pa.Table.from_pylist(comparison_rows(result)), limit=20),
    }
    for title, png in charts(result).items():
        metadata[f"chart: {title}"] = dg.MetadataValue.md(markdown_image(png, title))
    return metadata
