"""Fit an XGBoost model as a SageMaker training job instead of in process.

Why: the in-process fit is the default and fine on one machine; when the training set
outgrows the orchestrator's machine, `TRAINING_BACKEND=sagemaker` sends the same fit
(same hyperparameters, same time-based train and validation split, same early stopping)
to SageMaker's built-in XGBoost container, with the data and the artifact in the lake's
bucket. Evaluation, thresholds and the registry stay local; only the fit moves.

How, and why this way:
- boto3 only. The job is one `create_training_job` request (`training_job_request`),
  plain data that botocore's Stubber checks against the service model in the tests, so
  the request is tested where CI runs, without the SageMaker SDK (which CI does not
  install) and without AWS. The SDK would add nothing to the request; the only thing it
  knows that we need is the container's registry account per region, which `_ACCOUNTS`
  holds for the commercial and GovCloud regions (equal to the table in sagemaker-core
  2.27's `image_uri_config/xgboost.json` for both versions below). For other regions
  (China, ISO) the optional `[sagemaker]` extra (sagemaker-core) is asked, or
  `SAGEMAKER_XGBOOST_IMAGE` names the image outright.
- Container 3.2-0 by default (XGBoost 3.2, the version this project trains with), 3.0-5
  allowed. Evidence for 3.2-0: sagemaker-core 2.27 maps it in all 37 regions, and
  aws/deep-learning-containers released it (PR 6146, promoted to production in PR 6323,
  June 2026); AWS's developer guide still lists versions up to 3.0. Older containers
  cannot be used: 1.3-1 to 1.7-1 save the legacy binary format, which XGBoost 3 no longer
  reads (checked: a model saved by XGBoost 1.7.6 fails to load with "Unknown construct"),
  and 0.90-1 to 1.2-2 pickle the booster.
- The artifact: the container's algorithm mode trains with `EarlyStopping(save_best=True)`
  (so only the rounds up to the best validation score are kept, as the local fit keeps
  them) and calls `booster.save_model("/opt/ml/model/xgboost-model")`; with no file
  extension XGBoost 2.1 and later write UBJSON (checked with XGBoost 3.0.5 and 3.2: the
  3.0.5 file loads in 3.2 and predicts identically). `booster_from_archive` takes that
  file out of `model.tar.gz`, refuses anything that is not UBJSON or JSON (it never
  unpickles), loads it to be sure, and returns UBJSON bytes for `Booster.load_model`.
- Data: CSV, label first, no header, an empty field for a missing value (the container
  reads CSV with XGBoost's own text parser, which treats empty fields and `nan` alike).

Not verified here (no AWS from this machine): that the images exist under those URIs,
that a job runs to completion with this request, and the 3.2-0 container's artifact
format (inferred from the container source and XGBoost's behaviour, not observed).
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from botocore.client import BaseClient

from lakehouse.settings import Settings
from lakehouse.storage import split_s3_uri

log = logging.getLogger(__name__)

# Registry account of the built-in XGBoost images (same for 3.0-5 and 3.2-0) in the
# regions whose ECR domain is amazonaws.com.
_ACCOUNTS = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}
MODEL_FILE = "xgboost-model"
_TERMINAL = {"Completed", "Failed", "Stopped"}


class SageMakerTrainingError(RuntimeError):
    """A training job that failed or was stopped, or whose artifact cannot be used."""


def training_region(settings: Settings) -> str:
    """The training jobs' region: SAGEMAKER_REGION, else the bucket's AWS_REGION."""
    return settings.sagemaker_region or settings.aws_region


def xgboost_image_uri(settings: Settings) -> str:
    """The built-in XGBoost training image for the configured region and version."""
    if settings.sagemaker_xgboost_image:
        return settings.sagemaker_xgboost_image
    region, version = training_region(settings), settings.sagemaker_xgboost_version
    if region in _ACCOUNTS:
        return f"{_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:{version}"
    try:
        from sagemaker.core import image_uris
    except ImportError as error:
        raise ValueError(
            f"No built-in XGBoost image known for region {region!r}: set "
            "SAGEMAKER_XGBOOST_IMAGE, or install the [sagemaker] extra to look it up."
        ) from error
    try:
        return image_uris.retrieve("xgboost", region, version=version, image_scope="training")
    except ValueError as error:
        raise ValueError(f"{error} Set SAGEMAKER_XGBOOST_IMAGE instead.") from error


def check_settings(settings: Settings) -> None:
    """Fail early, before any AWS call, on settings a training job cannot run with."""
    _role_arn(settings)
    if not settings.lake_is_s3:
        raise ValueError(
            f"LAKEHOUSE_ROOT is {settings.lakehouse_root!r}: the sagemaker training backend "
            "stages data and reads the model under an s3:// lake root."
        )


def _role_arn(settings: Settings) -> str:
    if not settings.sagemaker_role_arn:
        raise ValueError(
            "SAGEMAKER_ROLE_ARN is not set: the sagemaker training backend needs the IAM role "
            "the training job runs as (see docs/sagemaker.md)."
        )
    return settings.sagemaker_role_arn


def training_job_request(
    settings: Settings,
    *,
    job_name: str,
    train_uri: str,
    validation_uri: str,
    output_uri: str,
    hyperparameters: dict[str, str | int | float],
) -> dict[str, Any]:
    """The keyword arguments of boto3's `sagemaker.create_training_job` for one fit.

    `train_uri` and `validation_uri` are S3 prefixes holding CSV files (label first, no
    header); with several instances each gets its share of the training files.
    `hyperparameters` are the built-in algorithm's; `num_round` is required.
    """
    role_arn = _role_arn(settings)
    if "num_round" not in hyperparameters:
        raise ValueError("hyperparameters need num_round (the built-in container requires it)")
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": xgboost_image_uri(settings),
            "TrainingInputMode": "File",
        },
        "RoleArn": role_arn,
        "InputDataConfig": [
            _channel("train", train_uri, "ShardedByS3Key"),
            _channel("validation", validation_uri, "FullyReplicated"),
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": settings.sagemaker_instance_type,
            "InstanceCount": settings.sagemaker_instance_count,
            "VolumeSizeInGB": settings.sagemaker_volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.sagemaker_max_runtime_seconds},
        "HyperParameters": {name: str(value) for name, value in hyperparameters.items()},
        "Tags": [
            {"Key": "lakehouse:component", "Value": "model-training"},
            {"Key": "lakehouse:profile", "Value": settings.lakehouse_profile.value},
        ],
    }


def _channel(name: str, uri: str, distribution: str) -> dict[str, Any]:
    """One CSV input channel. Sharding by file gives each instance its own training files
    (all of them with one instance); validation is copied whole to every instance."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": distribution,
            }
        },
        "ContentType": "text/csv",
        "CompressionType": "None",
    }


def s3_client(settings: Settings) -> BaseClient:
    """An S3 client for the lake's bucket (its endpoint and credentials, if set)."""
    return _session(settings).client(
        "s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region
    )


def sagemaker_client(settings: Settings) -> BaseClient:
    """A SageMaker client in the training jobs' region."""
    return _session(settings).client("sagemaker", region_name=training_region(settings))


def _session(settings: Settings) -> boto3.Session:
    key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    return boto3.Session(
        aws_access_key_id=key.get_secret_value() if key else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


def stage_dataset(
    settings: Settings, X: np.ndarray, y: np.ndarray, uri: str, *, s3: BaseClient | None = None
) -> None:
    """Write rows to `uri` (an s3:// object) as the built-in container reads CSV: the label
    first, no header, an empty field where a feature is missing (NaN)."""
    columns = [pa.array(np.asarray(y, dtype=np.float32))]
    columns += [pa.array(X[:, j], from_pandas=True) for j in range(X.shape[1])]
    table = pa.table(columns, names=[str(j) for j in range(len(columns))])
    bucket, key = split_s3_uri(uri)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False))
        (s3 or s3_client(settings)).upload_file(str(path), bucket, key)


def train_on_sagemaker(
    settings: Settings,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    hyperparameters: dict[str, str | int | float],
    *,
    client: BaseClient | None = None,
    s3: BaseClient | None = None,
    poll_seconds: float = 30.0,
    job_name: str | None = None,
) -> bytes:
    """Fit on SageMaker and return the booster as UBJSON bytes for `Booster.load_model`.

    Stages both sets under `<LAKEHOUSE_ROOT>/models/sagemaker/<job_name>/`, starts the job,
    waits for it (checking every `poll_seconds`), then reads its `model.tar.gz`. Raises
    ValueError on unusable settings before any call, SageMakerTrainingError when the job
    fails or is stopped.
    """
    check_settings(settings)
    name = job_name or new_job_name()
    base = f"{settings.lake_root}/models/sagemaker/{name}"
    request = training_job_request(
        settings,
        job_name=name,
        train_uri=f"{base}/train/",
        validation_uri=f"{base}/validation/",
        output_uri=f"{base}/output",
        hyperparameters=hyperparameters,
    )
    s3 = s3 or s3_client(settings)
    shards = np.array_split(np.arange(len(y_train)), settings.sagemaker_instance_count)
    for number, rows in enumerate(shards):
        stage_dataset(settings, X_train[rows], y_train[rows], _part(base, "train", number), s3=s3)
    stage_dataset(settings, X_valid, y_valid, _part(base, "validation", 0), s3=s3)
    client = client or sagemaker_client(settings)
    client.create_training_job(**request)
    log.info("SageMaker training job %s started (%s)", name, request["ResourceConfig"])
    described = wait_for_training_job(client, name, poll_seconds)
    bucket, key = split_s3_uri(described["ModelArtifacts"]["S3ModelArtifacts"])
    return booster_from_archive(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def new_job_name() -> str:
    """A unique training job name (SageMaker's limit is 63 characters)."""
    return f"lakehouse-xgboost-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _part(base: str, channel: str, number: int) -> str:
    return f"{base}/{channel}/part-{number:05d}.csv"


def wait_for_training_job(client: BaseClient, name: str, poll_seconds: float) -> dict[str, Any]:
    """The job's description once it completed; SageMakerTrainingError if it did not."""
    seen = None
    while True:
        described = client.describe_training_job(TrainingJobName=name)
        status = described["TrainingJobStatus"]
        if (status, described["SecondaryStatus"]) != seen:
            seen = (status, described["SecondaryStatus"])
            log.info("SageMaker training job %s: %s (%s)", name, *seen)
        if status in _TERMINAL:
            break
        time.sleep(poll_seconds)
    if status != "Completed":
        reason = described.get("FailureReason", "no reason given")
        raise SageMakerTrainingError(
            f"SageMaker training job {name} {status.lower()}: {reason} (logs: CloudWatch group "
            f"/aws/sagemaker/TrainingJobs, streams {name}/...)"
        )
    return described


def booster_from_archive(archive: bytes) -> bytes:
    """The booster in `model.tar.gz`, checked to load, as UBJSON bytes."""
    import xgboost

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == MODEL_FILE), None)
        extracted = tar.extractfile(member) if member is not None else None
        if extracted is None:
            raise SageMakerTrainingError(f"model.tar.gz holds no {MODEL_FILE} file")
        raw = extracted.read()
    # UBJSON and JSON models both open an object with "{"; the legacy binary format starts
    # with "binf" and a pickle with 0x80. A pickle is never loaded: it can run code.
    if not raw.startswith(b"{"):
        raise SageMakerTrainingError(
            f"{MODEL_FILE} is not a UBJSON or JSON model (first bytes {raw[:4]!r}): the "
            "container is older than 3.0; use SAGEMAKER_XGBOOST_VERSION 3.2-0 or 3.0-5"
        )
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    return bytes(booster.save_raw("ubj"))
