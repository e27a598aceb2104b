"""Which Dagster instance the CLI records its runs in, per profile.

`dagster dev`, the daemon and the CLI must share one instance or the runs the demo makes
would not show in the UI. An explicit DAGSTER_HOME always wins (that is how Dagster's own
tools find an instance); otherwise the profile's dagster.yaml in `orchestration/profiles`
configures an instance whose home is LAKEHOUSE_HOME/dagster.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from lakehouse.settings import Settings

PROFILES = Path(__file__).resolve().parent / "profiles"


def dagster_home(settings: Settings) -> Path:
    """The folder that holds the instance's local state (SQLite, logs, artifacts)."""
    explicit = os.environ.get("DAGSTER_HOME")
    return Path(explicit) if explicit else settings.home / "dagster"


def dagster_instance(settings: Settings) -> DagsterInstance:
    """The persistent instance for this profile (SQLite locally, PostgreSQL production-like)."""
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    # InstanceRef.from_dir is public enough to be what `dagster dev` itself uses to combine
    # a config folder with a separate home; DagsterInstance.from_config would put the
    # instance's state inside the config folder, i.e. inside this repository.
    config_dir = PROFILES / settings.lakehouse_profile.value
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home), config_dir=str(config_dir)))
