"""`lakehouse evaluate real-data`: the on-demand evaluations run through Dagster from the
command line, their headline figures read back from the run's materializations.

The cheapest evaluation (NAB's reference detectors, seconds) runs for real, in this
process as the command runs it, recorded in the profile's Dagster instance; the RUL model
and the recommenders take minutes and are covered by their own tests. A failing
evaluation (the recommenders with no imported lines in silver) exits non-zero with the
asset's own words.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from typer.testing import CliRunner

from assets.ecommerce.real_data import online_retail_recommenders
from assets.iot.real_data import NAB_EVALUATION_KEY, NAB_HEADLINES
from cli.app import app
from lakehouse.settings import Settings
from orchestration.definitions import defs
from orchestration.instance import dagster_instance
from orchestration.jobs import REAL_DATA_HEADLINES, real_data_evaluations_job
from orchestration.materialize import evaluate_real_data, evaluation_names

RUNNER = CliRunner()


def test_every_evaluation_of_the_job_has_headline_figures() -> None:
    selected = real_data_evaluations_job.selection.resolve(defs.resolve_asset_graph())
    assert set(REAL_DATA_HEADLINES) == selected
    assert set(evaluation_names().values()) == selected


def test_nab_alone_runs_through_dagster_and_prints_what_it_recorded(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    settings = make_settings()
    activate(settings)
    name = NAB_EVALUATION_KEY.path[-1]
    result = RUNNER.invoke(app, ["evaluate", "real-data", "--only", name], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    # docs/models.md's figure for the standard profile, as the run recorded it
    assert "windowed Gaussian, standard profile (0-100)" in result.output
    assert "45.5145" in result.output
    assert "succeeded" in result.output

    instance = dagster_instance(settings)
    (run,) = instance.get_runs()
    assert run.job_name == real_data_evaluations_job.name
    assert run.asset_selection == {NAB_EVALUATION_KEY}
    assert run.run_id in result.output
    recorded = instance.get_latest_materialization_event(NAB_EVALUATION_KEY)
    assert recorded is not None and recorded.run_id == run.run_id


def test_figures_are_the_recorded_metadata_in_headline_order(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    activate(make_settings())
    with dg.instance_for_test() as instance:
        run = evaluate_real_data({NAB_EVALUATION_KEY}, instance=instance)
        (event,) = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
    assert run.success and not run.failures
    metadata = event.asset_materialization.metadata
    # No replay landed: the platform alerts' figures are absent, the reference's present.
    expected = [name for name in NAB_HEADLINES if name in metadata]
    assert expected and all(name.startswith("windowed_gaussian") for name in expected)
    assert [figure.name for figure in run.figures] == expected
    assert [figure.value for figure in run.figures] == [metadata[n].value for n in expected]


def test_an_unknown_evaluation_is_refused_naming_the_known_ones() -> None:
    result = RUNNER.invoke(app, ["evaluate", "real-data", "--only", "nope"])
    assert result.exit_code == 2
    for name in evaluation_names():
        assert name in result.output


def test_a_failed_evaluation_exits_non_zero_with_its_reason(
    make_settings: Callable[..., Settings], activate: Callable[[Settings], None]
) -> None:
    activate(make_settings())
    name = online_retail_recommenders.key.path[-1]
    result = RUNNER.invoke(app, ["evaluate", "real-data", "--only", name])
    assert result.exit_code == 1
    assert "FAILED" in result.output
    said = " ".join(result.output.split())  # as one line, however the console wrapped it
    assert "lakehouse import online-retail" in said
