"""The one Dagster resource the assets need: the lakehouse settings, so asset code never
reads the environment.

It lives with the assets that require it (orchestration only binds it): the same assets
run under every profile; only this resource's configuration differs (from the environment
by default, or overridden in tests).
"""

from __future__ import annotations

import dagster as dg

from lakehouse.settings import Settings, get_settings


class LakehouseResource(dg.ConfigurableResource):
    """Where the lake lives; defaults come from the environment (lakehouse.settings)."""

    lakehouse_root: str | None = None

    def settings(self) -> Settings:
        """The platform settings, with this resource's overrides applied."""
        settings = get_settings()
        if self.lakehouse_root is None:
            return settings
        return settings.model_copy(update={"lakehouse_root": self.lakehouse_root})
