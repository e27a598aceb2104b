"""The Dagster resources the assets need: the lakehouse settings, so asset code never
reads the environment, and the Spark session of LAKEHOUSE_ENGINE=spark.

It lives with the assets that require it (orchestration only binds it): the same assets
run under every profile; only this resource's configuration differs (from the environment
by default, or overridden in tests).
"""

from __future__ import annotations

import functools
from typing import Any, Literal, cast

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from lakehouse.settings import Settings, get_settings
from lakehouse.spark.session import spark_config
from lakehouse.transforms import duck
from lakehouse.transforms.engine import Transform, on_engine


class LakehouseResource(dg.ConfigurableResource):
    """Where the lake lives and which engine builds it; defaults come from the
    environment (lakehouse.settings)."""

    lakehouse_root: str | None = None
    engine: str | None = None  # local or spark (Dagster config takes no Literal)

    def settings(self) -> Settings:
        """The platform settings, with this resource's overrides applied (validated as
        the environment's values are)."""
        overrides = {"lakehouse_root": self.lakehouse_root, "lakehouse_engine": self.engine}
        given = {name: value for name, value in overrides.items() if value is not None}
        settings = get_settings()
        return Settings.model_validate(settings.model_dump() | given) if given else settings


def platform_resources(
    lakehouse_root: str | None = None, engine: Literal["local", "spark"] | None = None
) -> dict[str, dg.ConfigurableResource]:
    """Every resource the assets require, by key: the lake (at `lakehouse_root` and on
    `engine` if given, else as the settings say) and the Spark session resource of the
    settings."""
    return {
        "lakehouse": LakehouseResource(lakehouse_root=lakehouse_root, engine=engine),
        "spark": spark_resource(),
    }


def spark_resource(settings: Settings | None = None) -> LazyPySparkResource:
    """dagster-pyspark's session resource configured from the settings (`spark_config`):
    master, memory, UTC, S3A and extra jars all come from the one settings object.

    The lazy variant starts Spark only when a step first asks for the session: every
    heavy asset takes it, and on the local engine none asks (`start_engine`).
    """
    return LazyPySparkResource(spark_config=spark_config(settings or get_settings()))


def transform_on_engine(
    context: dg.AssetExecutionContext,
    settings: Settings,
    spark: LazyPySparkResource,
    transform: Transform,
) -> Transform:
    """The engine's twin of `transform` (`on_engine`), logged. Locally, every DuckDB
    session it opens is bounded by the settings' memory limit and spill folder
    (`duck.bounded`); on Spark, the step's session is started through the resource
    first, and the twins run on it (`spark_session` finds the running one)."""
    chosen = on_engine(transform, settings)
    context.log.info(f"{settings.lakehouse_engine} engine: {chosen.__module__}.{chosen.__name__}")
    if settings.lakehouse_engine == "spark":
        spark.spark_session  # noqa: B018 (the property starts the session)
        return chosen

    @functools.wraps(chosen)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        with duck.bounded(settings):
            return chosen(*args, **kwargs)

    return cast(Transform, bounded)
