"""The UI: `dagster-webserver` started from the repository root with no arguments (as the
README says) loads the code location, and its GraphQL API lists every asset, job,
schedule and sensor the Definitions declare."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.catalog import CATALOG, Layer
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings
from orchestration.definitions import defs
from orchestration.materialize import observe_bronze
from tests.conftest import REPO, another_hash_seed, settings_env
from tests.support.net import free_port

QUERY = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  assetNodes { assetKey { path } groupName isPartitioned }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        schedules { name cronSchedule scheduleState { status } }
        sensors { name sensorState { status } }
      }
    }
  }
}
"""


@pytest.fixture
def ui_settings(make_settings) -> Settings:
    """The settings the webserver runs with."""
    return make_settings()


@pytest.fixture
def ui_home(tmp_path: Path) -> Path:
    """The webserver's DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


@pytest.fixture
def webserver(ui_settings: Settings, ui_home: Path, tmp_path: Path) -> Iterator[str]:
    """dagster-webserver on a free port, its instance in a temporary DAGSTER_HOME, in a
    process whose hash seed differs from this one's."""
    port = free_port()
    env = {
        **settings_env(ui_settings),
        "DAGSTER_HOME": str(ui_home),
        "PYTHONHASHSEED": another_hash_seed(),
    }
    executable = Path(sys.executable).parent / "dagster-webserver"
    process = subprocess.Popen(
        [str(executable), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "webserver.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log = (tmp_path / "webserver.log").read_text()[-3000:]
                raise RuntimeError(f"dagster-webserver exited early:\n{log}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("dagster-webserver did not answer within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def graphql(url: str, query: str) -> dict:
    """POST a query; a rejected query fails with the server's explanation."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)["data"]
    except urllib.error.HTTPError as error:
        raise AssertionError(f"GraphQL refused the query: {error.read().decode()}") from None


def test_the_ui_loads_every_asset_job_schedule_and_sensor(webserver: str) -> None:
    data = graphql(webserver, QUERY)

    (location,) = data["workspaceOrError"]["locationEntries"]
    assert location["name"] == "lakehouse"
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location

    assets = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    expected = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert set(assets) == expected
    assert {node["groupName"] for node in assets.values()} == {
        "ecommerce", "fraud", "iot", "maintenance", "real_data"
    } | ({"platform"} if "bronze/quarantine" in assets else set())
    # Bronze is observed, the weekly maintenance covers the whole lake, not a day, and the
    # evaluations on public data run on demand over their whole data set.
    on_demand = {
        key
        for key, node in assets.items()
        if key.startswith("evaluations/") or node["groupName"] == "real_data"
    }
    daily = {
        key for key in assets if key.split("/")[0] not in ("bronze", "maintenance")
    } - on_demand | {key for key in assets if key.endswith("_compaction")}
    assert all(assets[key]["isPartitioned"] for key in daily)

    (repository,) = data["repositoriesOrError"]["nodes"]
    jobs = {job["name"] for job in repository["jobs"]}
    assert {"medallion", "observe_bronze"} <= jobs
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert set(schedules) == {s.name for s in defs.schedules}
    assert schedules["nightly_medallion"]["cronSchedule"] == "30 0 * * *"
    assert all(s["scheduleState"]["status"] == "RUNNING" for s in schedules.values())
    sensors = {s["name"]: s for s in repository["sensors"]}
    assert set(sensors) == {"bronze_advanced"}
    assert sensors["bronze_advanced"]["sensorState"]["status"] == "RUNNING"


RUN_AND_JOBS = """
{
  runOrError(runId: "%s") {
    ... on Run {
      pipelineName
      pipelineSnapshotId
      parentPipelineSnapshotId
      repositoryOrigin { repositoryLocationName repositoryName }
    }
  }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } pipelines { name pipelineSnapshotId } }
    }
  }
}
"""


def test_a_run_the_cli_made_is_the_loaded_job_so_the_ui_reexecutes_it_without_a_warning(
    webserver: str,
    ui_settings: Settings,
    ui_home: Path,
    activate: Callable[[Settings], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run page's Re-execute carries no "may be a different version" warning when the
    run's origin names the loaded code location and repository and its job snapshot id is
    the loaded job's (dagster-webserver's useJobAvailabilityErrorForRun: the match type
    `origin-and-snapshot`). Asked of the webserver itself, which loaded the code location
    in its own process, with its own hash seed."""
    activate(ui_settings)
    monkeypatch.setenv("DAGSTER_HOME", str(ui_home))  # the CLI records where the UI reads
    for spec in CATALOG.in_layer(Layer.BRONZE):
        ensure_table(spec, ui_settings)
    observed = observe_bronze()
    assert observed.success

    data = graphql(webserver, RUN_AND_JOBS % observed.run_id)
    run = data["runOrError"]
    (repository,) = data["repositoriesOrError"]["nodes"]
    loaded = {job["name"]: job["pipelineSnapshotId"] for job in repository["pipelines"]}
    assert run["pipelineName"] == "observe_bronze"
    assert run["repositoryOrigin"] == {
        "repositoryLocationName": repository["location"]["name"],
        "repositoryName": repository["name"],
    }
    assert run["parentPipelineSnapshotId"] is None
    assert run["pipelineSnapshotId"] == loaded["observe_bronze"]
