"""The Dagster resources the assets need: the lakehouse settings, so asset code never
reads the environment, and the Spark session of LAKEHOUSE_ENGINE=spark.

It lives with the assets that require it (orchestration only binds it): the same assets
run under every profile; only this resource's configuration differs (from the environment
by default, or overridden in tests).
"""

from __future__ import annotations

import dagster as dg

from lakehouse.settings import Settings, get_settings
from lakehouse.spark.session import spark_config


class LakehouseResource(dg.ConfigurableResource):
    """Where the lake lives; defaults come from the environment (lakehouse.settings)."""

    lakehouse_root: str | None = None

    def settings(self) -> Settings:
        """The platform settings, with this resource's overrides applied."""
        settings = get_settings()
        if self.lakehouse_root is None:
            return settings
        return settings.model_copy(update={"lakehouse_root": self.lakehouse_root})


def spark_resource(settings: Settings | None = None) -> dg.ConfigurableResource:
    """dagster-pyspark's session resource configured from the settings (`spark_config`):
    master, memory, UTC, S3A and extra jars all come from the one settings object.

    The lazy variant starts Spark only when a step first asks for the session, so a step
    that requires the resource but runs on the local engine pays nothing. dagster-pyspark
    is imported here, not at module import: the code location loads without the Spark
    extra.
    """
    from dagster_pyspark import LazyPySparkResource

    return LazyPySparkResource(spark_config=spark_config(settings or get_settings()))
