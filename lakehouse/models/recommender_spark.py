"""The recommender's ALS fitted on Spark (`LAKEHOUSE_ENGINE=spark`): MLlib's
implicit-feedback ALS on the very interactions, confidence and hyperparameters (the same
`ALSParams` object) of `lakehouse.models.recommender`, giving back the same
`Recommender`, so that evaluation, the artifact, the batch top 10 and the service do
not know which engine fitted it.

Confidence. MLlib's implicit ALS takes a rating r and trusts it `1 + alpha * |r|`; given
`r = ln(1 + weight)` and `alpha = ALPHA` that is exactly the local model's
`confidence(weight)` (which `implicit` is handed directly, with its alpha at 1).

Ids. MLlib wants 32-bit integer ids: users and products are given their dense index in the
sorted ids (`interaction_matrix`, the local fit's own indexing) and the factor rows MLlib
returns are put back at those indices, so row i of the factors is `user_ids[i]` exactly as
the local model has it.

Regularization. `implicit` penalises every user and product by the same `regularization`;
MLlib (ALS-WR, Zhou et al. 2008) by `regParam` times its number of ratings. `regParam` is
set so that the average user's penalty is the local one:
`regularization / (interactions / users)`; busier users and products are held a little
more, quieter ones less. The fitted `Recommender` keeps the local `regularization` for the
service's fold-in (the average user's solve).

Other differences: MLlib solves each least-squares problem exactly (Cholesky), `implicit`
by three conjugate-gradient steps; their random initialisations differ. On the tests'
generated shop the two stay within a few hundredths of each other (docs/spark.md has the
figures).
"""

from __future__ import annotations

import time
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.models import recommender
from lakehouse.models.recommender import (
    ALPHA,
    DEFAULT_PARAMS,
    ALSParams,
    Engine,
    Recommender,
    interaction_matrix,
)
from lakehouse.models.trained import TrainedModel
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

def spark_hyperparameters(params: ALSParams) -> dict[str, Any]:
    """The local hyperparameters as MLlib names them (what the registry records)."""
    return {
        "rank": params.factors,
        "maxIter": params.iterations,
        "seed": params.random_state,
        "regularization": params.regularization,
        "regParam": "regularization / (interactions / users)",
    }


def reg_param(interactions: pa.Table, regularization: float) -> float:
    """MLlib's `regParam` giving the average user the local model's penalty."""
    users = pc.count_distinct(interactions["user_id"]).as_py()
    return regularization * users / interactions.num_rows


def fit_recommender(
    interactions: pa.Table, spark: SparkSession, params: ALSParams = DEFAULT_PARAMS
) -> tuple[Recommender, float]:
    """MLlib ALS with `params` on weighted interactions (`INTERACTIONS` rows) in `spark`;
    returns the recommender and the wall time of the fit alone (`ALS.fit`, which trains
    and keeps the final factors; collecting them to the driver comes after)."""
    from pyspark.ml.recommendation import ALS

    indexed = interaction_matrix(interactions)
    if max(indexed.user_ids.size, indexed.item_ids.size) > np.iinfo(np.int32).max:
        raise ValueError("MLlib ALS takes at most 2**31 - 1 users and products")
    ratings = spark.createDataFrame(
        pa.table(
            {
                "user": indexed.rows.astype(np.int32),
                "item": indexed.cols.astype(np.int32),
                "rating": np.log1p(indexed.weights).astype(np.float32),
            }
        )
    )
    blocks = spark.sparkContext.defaultParallelism
    als = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=reg_param(interactions, params.regularization),
        implicitPrefs=True,
        alpha=ALPHA,
        seed=params.random_state,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    )
    started = time.perf_counter()
    model = als.fit(ratings)
    seconds = time.perf_counter() - started
    fitted = indexed.recommender(
        _factors(model.userFactors, indexed.user_ids.size, params.factors),
        _factors(model.itemFactors, indexed.item_ids.size, params.factors),
        params.regularization,
    )
    model.userFactors.unpersist()
    model.itemFactors.unpersist()
    return fitted, seconds


def engine(spark: SparkSession, params: ALSParams = DEFAULT_PARAMS) -> Engine:
    """The Spark engine of `recommender.train_recommender`, fitting with `params` in
    `spark`."""
    return Engine(
        "spark", partial(fit_recommender, spark=spark, params=params), spark_hyperparameters(params)
    )


def train_recommender(settings: Settings, as_of: date) -> TrainedModel:
    """`recommender.train_recommender` with ALS fitted on the settings' SparkSession."""
    from lakehouse.spark.session import spark_session

    return recommender.train_recommender(settings, as_of, engine(spark_session(settings)))


def _factors(frame: DataFrame, size: int, rank: int) -> np.ndarray:
    """MLlib's (`id`, `features`) factor rows as a matrix whose row i is id i."""
    table = frame.toArrow()
    ids = table["id"].to_numpy()
    if ids.size != size or not np.array_equal(np.sort(ids), np.arange(size)):
        raise ValueError(f"MLlib returned factors for {ids.size} of {size} dense ids")
    factors = np.empty((size, rank), dtype=np.float32)
    factors[ids] = pc.list_flatten(table["features"]).to_numpy().reshape(size, rank)
    return factors
