"""The evaluations on public data as Dagster assets: in the graph with their group, owner,
kinds and on-demand job; NAB's machine temperature scored for real through
`dg.materialize`; the RUL model, trained on slices of the real FD001 files, registered
so that a worse test RMSE never replaces a better champion; and the RUL asset trained for
real from silver engine_cycles, filled by the C-MAPSS import, or failing with what to
run when silver holds none."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xgboost
from deltalake import write_deltalake

from assets.ecommerce.real_data import online_retail_recommenders
from assets.iot.real_data import (
    NAB_EVALUATION_KEY,
    REAL_DATA_GROUP,
    RUL_MODEL_KEY,
    cmapss_rul,
    nab_machine_temperature,
    nab_metadata,
    register_rul,
)
from assets.resources import platform_resources
from assets.tables import asset_key
from lakehouse.catalog import BRONZE_ENGINE_CYCLES, BRONZE_IOT_ALERTS, SILVER_ENGINE_CYCLES, Domain
from lakehouse.delta import ensure_table, open_table
from lakehouse.models import nab, nab_replay, registry, rul
from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition
from orchestration.definitions import defs
from orchestration.jobs import real_data_evaluations_job
from quality.gate import QualityGate
from streaming.importers import CmapssImport
from tests.support.landing import land_in_bronze
from tests.test_import_cmapss import write_slice

SLICE_GRID = ({"max_depth": 3, "min_child_weight": 1.0},)
"""One candidate, as tests/test_rul.py trains on a slice: the search is not under test."""


def test_the_evaluations_are_in_the_graph_with_their_team_and_job() -> None:
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    for key, kind in ((RUL_MODEL_KEY, "xgboost"), (NAB_EVALUATION_KEY, "python")):
        spec = specs[key]
        assert spec.group_name == REAL_DATA_GROUP
        assert list(spec.owners) == [Domain.IOT.owner]
        assert kind in spec.kinds
        assert spec.partitions_def is None
    graph = defs.resolve_asset_graph()
    assert graph.get(RUL_MODEL_KEY).parent_keys == {asset_key(SILVER_ENGINE_CYCLES)}
    assert real_data_evaluations_job.selection.resolve(graph) == {
        online_retail_recommenders.key,
        RUL_MODEL_KEY,
        NAB_EVALUATION_KEY,
    }
    assert defs.resolve_job_def(real_data_evaluations_job.name).name == "real_data_evaluations"
    scheduled = {schedule.job_name for schedule in defs.schedules or ()}
    assert real_data_evaluations_job.name not in scheduled


def test_nab_asset_materialises_the_reference_scores(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    result = dg.materialize(
        [nab_machine_temperature], resources=platform_resources(settings.lakehouse_root)
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == NAB_EVALUATION_KEY
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    assert metadata["rows"] == 22_695 and metadata["windows"] == 4
    for profile in nab.PROFILES:
        assert metadata[f"null_{profile}_normalised"] == 0.0
        assert metadata[f"perfect_{profile}_normalised"] == 100.0
        assert 0.0 < metadata[f"windowed_gaussian_{profile}_normalised"] < 100.0
    # docs/models.md's figure for the standard profile
    assert metadata["windowed_gaussian_standard_normalised"] == pytest.approx(45.51, abs=0.005)
    assert "| windowed Gaussian | standard |" in metadata["table: scores"]
    windows = metadata["table: windows"].splitlines()
    assert len(windows) == 2 + 3 * 4  # header, rule, 4 windows under each profile
    assert sum("| missed |" in line for line in windows) >= 1
    (chart,) = [value for name, value in metadata.items() if name.startswith("chart: ")]
    assert "data:image/png;base64," in chart


def test_nab_asset_scores_the_replayed_alerts_it_finds_in_bronze(
    make_settings: Callable[..., Settings],
) -> None:
    """Once a replay has landed the processor's alerts, the asset scores them beside the
    references: here the alert records of a perfect detector, each open record twice
    (a processor restart resends its outbox) and one of another device (not counted)."""
    settings = make_settings()
    series = nab.load_series(settings.real_data_dir)
    openings = pa.array(nab.perfect_detections(series.windows, series.timestamps)).cast(
        pa.timestamp("us", "UTC")
    )
    count = len(openings)
    records = {
        "alert_id": [f"a{i}" for i in range(count)] * 2 + ["other"],
        "state": ["open"] * (2 * count + 1),
        "device_id": [nab_replay.REPLAY_DEVICE] * (2 * count) + ["dev-0001"],
        "rule": ["zscore"] * (2 * count + 1),
        "opened_at": pa.concat_arrays([openings, openings, openings[:1]]),
    }
    records["event_time"] = records["opened_at"]
    rows = pa.table(
        {
            field.name: records.get(field.name, pa.nulls(2 * count + 1, field.type))
            for field in BRONZE_IOT_ALERTS.schema
        },
        schema=BRONZE_IOT_ALERTS.schema,
    )
    rows = rows.set_column(
        rows.schema.get_field_index("event_date"),
        "event_date",
        pc.cast(pc.cast(rows["opened_at"], pa.timestamp("us")), pa.date32()),
    )
    write_deltalake(
        ensure_table(BRONZE_IOT_ALERTS, settings), rows, mode="append", partition_by=["event_date"]
    )
    result = dg.materialize(
        [nab_machine_temperature], resources=platform_resources(settings.lakehouse_root)
    )
    (event,) = result.get_asset_materialization_events()
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    for profile in nab.PROFILES:
        assert metadata[f"platform_alerts_{profile}_normalised"] == 100.0


def test_alert_times_are_scored_beside_the_references() -> None:
    """The way in for the replayed platform's alerts: named alert times, every profile."""
    series = nab.load_series(Settings().real_data_dir)
    alerts = nab.perfect_detections(series.windows, series.timestamps)
    runs = nab.evaluate_detectors(series, alerts={"platform alerts": alerts})
    assert [run.detector for run in runs[:4]] == [*nab.REFERENCE_DETECTORS, "platform alerts"]
    metadata = nab_metadata(series, runs)
    for profile in nab.PROFILES:
        assert metadata[f"platform_alerts_{profile}_normalised"].value == 100.0


def _slice_report(train_units: int) -> rul.RulReport:
    """The RUL model on the first `train_units` training engines of the real FD001 files,
    judged on the first 30 test engines."""
    data = rul.load_fd001(Settings())
    train = data.train.filter(pc.less_equal(data.train["unit"], train_units))
    test = data.test.filter(pc.less_equal(data.test["unit"], 30))
    return rul.evaluate_rul(train, test, data.test_rul[:30], grid=SLICE_GRID)


def test_rul_registration_keeps_the_champion_with_the_lower_rmse(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    better, worse = sorted(
        (_slice_report(30), _slice_report(10)), key=lambda r: r.metrics[rul.PROMOTION_METRIC]
    )
    assert better.metrics["model_rmse"] < worse.metrics["model_rmse"]

    lake = rul.LakeFd001(rul.load_fd001(Settings()), version=3)
    first = register_rul(dg.build_asset_context(), settings, better, lake)
    second = register_rul(dg.build_asset_context(), settings, worse, lake)

    champion_row, challenger_row = registry.versions(settings, rul.MODEL_NAME)
    assert champion_row.promoted and not challenger_row.promoted
    assert "does not beat" in challenger_row.decision
    assert registry.champion(settings, rul.MODEL_NAME) == champion_row
    assert champion_row.promotion_metric == rul.PROMOTION_METRIC
    assert champion_row.promotion_value == better.metrics["model_rmse"]
    assert champion_row.training_data == {SILVER_ENGINE_CYCLES.key: 3}
    assert champion_row.params["source"] == {
        "table": SILVER_ENGINE_CYCLES.key,
        "version": 3,
        "train_cycles": 20_631,
        "test_cycles": 13_096,
        "test_engines": 100,
    }
    assert champion_row.params["max_depth"] == 3

    metadata = first.metadata or {}
    assert metadata["promoted"].value is True and second.metadata["promoted"].value is False
    assert metadata["model_rmse"].value == pytest.approx(better.metrics["model_rmse"])
    assert (
        "AGCNN (Liu et al. 2020)"
        in metadata["table: comparison with published FD001 results"].value
    )
    assert "data:image/png;base64," in metadata["chart: predicted vs true RUL"].value

    archive = zipfile.ZipFile(io.BytesIO(registry.load_artifact(settings, champion_row)))
    booster = xgboost.Booster(model_file=bytearray(archive.read("model.json")))
    assert booster.num_boosted_rounds() == better.choice.rounds
    again = rul.trained_model(better, rul.training_source(lake)).artifact
    assert registry.load_artifact(settings, champion_row) == again


def test_the_rul_asset_learns_from_silver_engine_cycles(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A slice of FD001 imported as events, landed by the ingest's decoder, put through
    silver day by day with its checks, then the asset: trained on what silver holds."""
    settings = make_settings()
    directory = write_slice(tmp_path / "cmapss", train_units=10, test_units=10)
    importer = CmapssImport(directory)
    land_in_bronze(settings, importer, importer.plan().selected)
    bronze_days = open_table(BRONZE_ENGINE_CYCLES, settings).to_pyarrow_table(
        columns=["event_date"]
    )
    days = sorted(set(bronze_days.column("event_date").to_pylist()))
    assert len(days) == 12  # the longest of these engines flies 287 cycles, one an hour
    for day in days:
        build_silver_partition(
            settings, SILVER_ENGINE_CYCLES.source_topic or "", day, QualityGate(settings)
        )
    version = open_table(SILVER_ENGINE_CYCLES, settings).version()

    result = dg.materialize([cmapss_rul], resources=platform_resources(settings.lakehouse_root))
    assert result.success
    (row,) = registry.versions(settings, rul.MODEL_NAME)
    files = rul.read_fd001(directory)
    assert row.training_data == {SILVER_ENGINE_CYCLES.key: version}
    assert row.params["source"]["train_cycles"] == files.train.num_rows
    assert row.params["source"]["test_cycles"] == files.test.num_rows
    assert row.params["source"]["test_engines"] == 10
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    # The same engines read from the files train the same model: the two paths agree.
    from_files = rul.evaluate_rul(files.train, files.test, files.test_rul)
    assert metadata["model_rmse"].value == from_files.metrics["model_rmse"]
    assert metadata["model_nasa_score"].value == from_files.metrics["model_nasa_score"]


def test_the_rul_asset_says_what_to_run_when_silver_holds_no_engines(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    result = dg.materialize(
        [cmapss_rul], resources=platform_resources(settings.lakehouse_root), raise_on_error=False
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert "silver.engine_cycles holds no C-MAPSS FD001" in message
    assert "lakehouse import cmapss" in message
