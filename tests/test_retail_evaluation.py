"""The Online Retail recommender evaluation on hand-made inputs: the monthly split, the new
items that count, EASE's closed form, popularity by distinct buyers, and choices made on
validation alone; then the Dagster asset on a tiny Online Retail import built into silver
beside a generated shop's purchases, and the platform's path and the file's giving the same
purchases on a slice of the real file."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake
from scipy.sparse import csr_matrix

from assets.ecommerce.real_data import online_retail_recommenders
from assets.resources import LakehouseResource
from lakehouse.catalog import PURCHASES, SILVER_PURCHASES, Domain
from lakehouse.delta import ensure_table, open_table
from lakehouse.features.ecommerce import INTERACTION_EVENTS
from lakehouse.models.real_data import (
    IMPORTED_ONLINE_RETAIL,
    ONLINE_RETAIL,
    NoImportedLines,
    imported_online_retail,
    online_retail,
)
from lakehouse.models.recommender import BASELINE, InteractionMatrix, evaluate
from lakehouse.models.retail_evaluation import (
    Candidate,
    CandidateFit,
    ScoredModel,
    Scorer,
    best_per_family,
    ease_weights,
    evaluate_candidates,
    judge,
    month_before,
    monthly_splits,
    prepare,
)
from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition, to_silver
from streaming.generators import make_generator
from streaming.importers import OnlineRetailImport
from streaming.importers.online_retail import COLUMNS
from streaming.ingest.decode import BatchDecoder
from streaming.ingest.provenance import with_provenance
from tests.support.landing import land_in_bronze

EARLY, VALIDATION, TEST = date(2011, 9, 20), date(2011, 10, 20), date(2011, 11, 20)
"""Days before the validation month (from 5 October), in it, and in the test month (from
5 November: a month before the last event, 5 December)."""
LAST = datetime(2011, 12, 5, 12, tzinfo=UTC)


def events(rows: list[tuple[int, int, date | datetime]]) -> pa.Table:
    """`INTERACTION_EVENTS` purchases of (user, product, day or time)."""
    times = [
        when
        if isinstance(when, datetime)
        else datetime(when.year, when.month, when.day, 9, tzinfo=UTC)
        for _, _, when in rows
    ]
    return pa.table(
        {
            "user_id": [user for user, _, _ in rows],
            "product_id": [product for _, product, _ in rows],
            "interaction": ["purchase"] * len(rows),
            "event_time": times,
        },
        schema=INTERACTION_EVENTS,
    )


SHOP = events(
    [
        (1, 10, EARLY), (1, 20, EARLY), (2, 10, EARLY), (3, 30, EARLY),
        (1, 20, VALIDATION), (1, 30, VALIDATION), (2, 20, VALIDATION),
        (1, 10, TEST), (1, 40, TEST), (2, 30, TEST), (3, 30, LAST),
    ]
)  # fmt: skip


def test_the_test_month_is_the_last_and_validation_the_month_before() -> None:
    splits = monthly_splits(SHOP)
    assert splits.test.start == datetime(2011, 11, 5, tzinfo=UTC)
    assert splits.validation.start == datetime(2011, 10, 5, tzinfo=UTC)
    assert splits.validation.end == splits.test.start
    assert month_before(date(2011, 3, 31)) == date(2011, 2, 28)
    assert month_before(date(2011, 1, 15)) == date(2010, 12, 15)


def test_no_judged_month_reaches_the_fit_that_is_judged_on_it() -> None:
    splits = monthly_splits(SHOP)
    validation, test = splits.validation, splits.test
    assert pc.max(validation.fit["event_time"]).as_py() < validation.start
    assert pc.min(validation.judged["event_time"]).as_py() >= validation.start
    assert pc.max(validation.judged["event_time"]).as_py() < test.start
    assert pc.max(test.fit["event_time"]).as_py() < test.start
    assert test.fit.num_rows == validation.fit.num_rows + validation.judged.num_rows
    assert test.judged.num_rows == 4


def test_only_each_customer_s_new_items_count() -> None:
    # Test month: customer 1 rebuys 10 (not new) and buys 40 (new, unknown to the fit);
    # customer 2 buys 30 (new); customer 3 rebuys 30 (nothing new: not judged). Before
    # the month, 10, 20 and 30 have two buyers each; customer 1 has bought all three.
    prepared = prepare(monthly_splits(SHOP).test)
    model = ScoredModel(prepared.matrix, lambda rows: np.zeros((rows.size, 3)))
    result = evaluate(model, prepared.heldout, popularity=True)
    assert result.users == 2
    assert result.precision == pytest.approx((0 / 10 + 1 / 10) / 2)
    assert result.recall == pytest.approx((0 / 1 + 1 / 1) / 2)
    assert result.coverage == pytest.approx(1 / 3)


def test_popularity_ranks_by_distinct_buyers_not_order_lines() -> None:
    # Product 1: one customer, five order lines; product 2: three customers, one line each.
    shop = events(
        [(9, 1, EARLY)] * 5 + [(7, 2, EARLY), (8, 2, EARLY), (9, 2, EARLY), (5, 3, EARLY)]
    )
    prepared = prepare(monthly_splits(shop, test_start=VALIDATION).test)
    model = ScoredModel(prepared.matrix, lambda rows: np.zeros((rows.size, 3)))
    top, scores = model.top_items(model.user_rows(np.array([5, 9])), k=3, popularity=True)
    assert model.item_ids[top[0, :2]].tolist() == [2, 1]  # 3 is customer 5's own
    assert scores[0, :2].tolist() == [3.0, 1.0]
    assert model.item_ids[top[1, 0]] == 3  # all customer 9 has not bought
    assert top[1, 1:].tolist() == [-1, -1]


def test_ease_weights_match_the_closed_form_by_hand() -> None:
    # X = [[1, 1], [1, 0]]: XᵀX + I = [[3, 1], [1, 2]], inverse P = [[2, -1], [-1, 3]] / 5;
    # B_ij = -P_ij / P_jj: B_01 = (1/5) / (3/5) = 1/3, B_10 = (1/5) / (2/5) = 1/2.
    weights = ease_weights(csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]])), lam=1.0)
    np.testing.assert_allclose(weights, [[0.0, 1 / 3], [1 / 2, 0.0]])


def prefer(product: int) -> CandidateFit:
    """A fit whose scorer recommends `product` alone."""

    def fit(_interactions: pa.Table, matrix: InteractionMatrix) -> Scorer:
        wanted = np.where(matrix.item_ids == product, 1.0, -np.inf)
        return lambda rows: np.tile(wanted, (rows.size, 1))

    return fit


# Customers 1 and 2 buy 2 new in the validation month and 3 new in the test month.
DRIFT = events(
    [
        (1, 1, EARLY), (2, 1, EARLY), (3, 1, EARLY), (3, 2, EARLY), (3, 3, EARLY),
        (1, 2, VALIDATION), (2, 2, VALIDATION),
        (1, 3, TEST), (2, 3, TEST), (3, 1, LAST),
    ]
)  # fmt: skip


def test_settings_and_champion_are_chosen_on_validation_only() -> None:
    candidates = [
        Candidate("A", {"item": 3}, prefer(3)),
        Candidate("A", {"item": 2}, prefer(2)),
        Candidate("B", {"item": 3}, prefer(3)),
        Candidate(BASELINE, {}, prefer(1)),
    ]
    result = evaluate_candidates(DRIFT, candidates)
    assert result.result("A").settings == {"item": 2}
    assert result.champion == "A"
    assert result.result("A").validation.precision == pytest.approx(0.1)
    assert result.result("B").test.precision == pytest.approx(0.1)
    assert result.result("A").test.precision == 0.0  # best on test: B, not chosen
    validation = prepare(monthly_splits(DRIFT).validation)
    trials = [judge(candidate, validation) for candidate in candidates[:2]]
    assert best_per_family(trials)["A"].candidate.settings == {"item": 2}


ORDER_LINES = [
    ("536365", "A1", 6, "2011-09-20 09:00:00", "17850.0"),
    ("536366", "B2", 1, "2011-09-21 09:00:00", "17850.0"),
    ("536367", "A1", 2, "2011-09-22 09:00:00", "13047.0"),
    ("536368", "C3", 1, "2011-09-23 09:00:00", "12583.0"),
    ("536368", "D4", 1, "2011-09-23 09:00:00", "14911.0"),
    ("536368", "E5", 1, "2011-09-23 09:00:00", "14911.0"),
    ("536369", "B2", 1, "2011-10-20 09:00:00", "13047.0"),
    ("536370", "C3", 3, "2011-10-21 09:00:00", "17850.0"),
    ("C536371", "B2", -1, "2011-10-22 09:00:00", "12583.0"),
    ("536372", "C3", 1, "2011-11-20 09:00:00", "13047.0"),
    ("536373", "B2", 1, "2011-11-21 09:00:00", "12583.0"),
    ("536374", "A1", 1, "2011-12-05 12:00:00", "12583.0"),
]


def write_online_retail(path: Path, lines: list[str]) -> Path:
    """UCI-shaped order lines (`InvoiceNo,...,Country`, no header) as a gzipped CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("\n".join([",".join(COLUMNS), *lines, ""]).encode()))
    return path


def tiny_online_retail(path: Path) -> Path:
    """`ORDER_LINES` as a tiny UCI-shaped file."""
    return write_online_retail(
        path,
        [
            f"{invoice},{code},ITEM,{quantity},{when},1.0,{customer},United Kingdom"
            for invoice, code, quantity, when, customer in ORDER_LINES
        ],
    )


def build_silver_purchases(settings: Settings, days: set[date]) -> None:
    """Silver purchases of `days` from bronze, by the function the silver asset runs."""
    for day in sorted(days):
        build_silver_partition(settings, PURCHASES.name, day)


def test_the_asset_evaluates_the_imported_lines_that_reached_silver(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    activate: Callable[[Settings], None],
) -> None:
    """The import's messages, landed by the ingest's decoder and built into silver by the
    silver asset's function, beside a generated shop's purchases of the same day: the
    asset evaluates the imported clean lines alone (the cancellation is rejected)."""
    settings = make_settings()
    activate(settings)
    importer = OnlineRetailImport(tiny_online_retail(tmp_path / "retail.csv.gz"))
    land_in_bronze(settings, importer, importer.plan().selected)
    shop_day = date(2011, 11, 20)
    shop = make_generator(
        Domain.ECOMMERCE, seed=3, start=datetime(2011, 11, 20, tzinfo=UTC), n_users=50
    )
    landed = land_in_bronze(settings, shop, 3_000)
    assert landed[PURCHASES.name] > 0
    build_silver_purchases(
        settings, {datetime.fromisoformat(line[3]).date() for line in ORDER_LINES} | {shop_day}
    )
    silver = open_table(SILVER_PURCHASES, settings)
    assert silver is not None
    everything = silver.to_pyarrow_dataset().to_table()
    imported = silver.to_pyarrow_dataset().to_table(filter=IMPORTED_ONLINE_RETAIL)
    # The marker keeps every clean imported line and none of the generated shop's.
    assert imported.num_rows == len(ORDER_LINES) - 1
    assert everything.num_rows - imported.num_rows == landed[PURCHASES.name]

    result = dg.materialize(
        [online_retail_recommenders], resources={"lakehouse": LakehouseResource()}
    )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["order_lines"].value == len(ORDER_LINES) - 1
    assert metadata["silver_purchases_version"].value == silver.version()
    table = metadata["table: candidates"].value
    for family in ("ALS", "item-kNN", "BPR", "EASE", BASELINE):
        assert family in table
    assert metadata["test_start"].value == "2011-11-05"
    assert metadata["validation_start"].value == "2011-10-05"
    assert metadata["champion"].value in ("ALS", "item-kNN", "BPR", "EASE", BASELINE)
    assert "chart: test precision@10 per candidate" in metadata


def test_without_imported_lines_the_asset_says_how_to_import_them(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    settings = make_settings()
    activate(settings)
    with pytest.raises(NoImportedLines, match="lakehouse import online-retail"):
        imported_online_retail(settings)
    result = dg.materialize(
        [online_retail_recommenders],
        resources={"lakehouse": LakehouseResource()},
        raise_on_error=False,
    )
    assert not result.success


SLICE_STEP = 20
"""Every 20th line of the real file (27,096 lines, December 2010 to December 2011: both
clock changes, cancellations and lines without a customer among them)."""


def test_the_import_and_the_file_give_the_same_interactions(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """On a slice of the real file, the interactions the importer's messages yield once
    the ingest's decoder (which quarantines lines without a customer) and silver's rules
    (which reject cancellations) have had them equal the file loader's, line for line,
    once each dense product id is read as the importer's hash of its stock code: so the
    platform's path and the benchmark's evaluate the same purchases."""
    with gzip.open(Settings().real_data_dir / ONLINE_RETAIL, "rt", encoding="utf-8") as file:
        lines = file.read().splitlines()[1:]
    path = write_online_retail(tmp_path / "real" / ONLINE_RETAIL, lines[::SLICE_STEP])

    settings = make_settings(real_data_dir=tmp_path / "real")
    importer = OnlineRetailImport(path)
    values = [
        value for batch in importer.batches(importer.plan().selected) for value in batch.values
    ]
    decoded = BatchDecoder(PURCHASES.event, 1 << 20).decode(values)
    assert decoded.rejects  # the lines without a customer, quarantined
    landed = with_provenance(
        decoded.table,
        np.zeros(decoded.table.num_rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    silver = to_silver(landed, PURCHASES.name)
    assert isinstance(silver.rows, pa.Table) and isinstance(silver.rejected, pa.Table)
    assert silver.rejected.num_rows > 0  # the cancellations
    write_deltalake(
        ensure_table(SILVER_PURCHASES, settings),
        silver.rows.cast(SILVER_PURCHASES.schema),
        mode="append",
        partition_by=list(SILVER_PURCHASES.partition_by),
    )
    through_platform = imported_online_retail(settings).events

    retail = online_retail(settings)
    hashed = {
        row["product_id"]: int(hashlib.md5(row["stock_code"].encode()).hexdigest()[:13], 16)
        for row in retail.stock_codes.to_pylist()
    }
    from_file = retail.events.set_column(
        1,
        "product_id",
        pa.array([hashed[p] for p in retail.events["product_id"].to_pylist()], pa.int64()),
    )
    assert from_file.num_rows > 1_000
    assert sorted_rows(through_platform) == sorted_rows(from_file)


def sorted_rows(events: pa.Table) -> list[tuple[object, ...]]:
    """`INTERACTION_EVENTS` rows as sorted tuples: the same purchases in any order."""
    return sorted(tuple(row.values()) for row in events.cast(INTERACTION_EVENTS).to_pylist())
