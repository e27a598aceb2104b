"""The SparkSession the platform runs on, configured from the settings object alone.

`spark_config` is a plain dictionary so that the same properties serve a session built
here, Dagster's `PySparkResource(spark_config=...)` and a `spark-submit --conf` line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "lakehouse"


def spark_config(settings: Settings) -> dict[str, str]:
    """Spark properties for the settings: master, memory, UTC, timestamps delta-rs and
    DuckDB read, S3A credentials when the lake is on S3, extra jars, then `SPARK_CONF`.

    UTC because the lake's days and timestamps are UTC; microsecond timestamps because
    Spark's default INT96 is what neither delta-rs's statistics nor the catalog's
    `timestamp[us, UTC]` expect. `SPARK_CONF` comes last so a deployment can override any
    of it.
    """
    config = {
        "spark.master": settings.spark_master,
        "spark.app.name": APP_NAME,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if settings.lake_is_s3:
        config.update(_s3a_config(settings))
    if settings.spark_extra_jars:
        config["spark.jars"] = ",".join(settings.spark_extra_jars)
    config.update(settings.spark_conf)
    return config


def _s3a_config(settings: Settings) -> dict[str, str]:
    """Hadoop S3A properties from the lake's AWS settings; without keys S3A keeps its own
    credential chain (instance or pod role), as delta-rs does."""
    s3a = "spark.hadoop.fs.s3a."
    config = {f"{s3a}endpoint.region": settings.aws_region}
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        config[f"{s3a}access.key"] = settings.aws_access_key_id.get_secret_value()
        config[f"{s3a}secret.key"] = settings.aws_secret_access_key.get_secret_value()
    if settings.aws_endpoint_url:
        config[f"{s3a}endpoint"] = settings.aws_endpoint_url
        config[f"{s3a}path.style.access"] = "true"  # custom stores (moto, MinIO) need it
    if settings.aws_allow_http:
        config[f"{s3a}connection.ssl.enabled"] = "false"
    return config


def spark_session(settings: Settings) -> SparkSession:
    """The SparkSession for the settings (Spark reuses a running one in this process and
    only applies the properties a running session can still take)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_config(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def delta_jars_available(spark: SparkSession) -> bool:
    """Whether delta-spark's classes are on the session's JVM classpath: then Delta tables
    are read and written by delta-spark itself, otherwise through the delta-rs bridge.

    Asked through Spark's own class loader, which also sees the jars of `spark.jars`
    (`SPARK_EXTRA_JARS`), not only the JVM's start-up classpath.
    """
    from py4j.protocol import Py4JJavaError

    utils = spark._jvm.org.apache.spark.util.Utils  # type: ignore[union-attr]
    try:
        utils.classForName("io.delta.tables.DeltaTable", False, False)
    except Py4JJavaError:  # java.lang.ClassNotFoundException
        return False
    return True
