"""The SageMaker training backend, without AWS: the job request passes botocore's own
validation against the SageMaker service model (Stubber), and a whole fit runs against a
stubbed SageMaker client and a real local S3 (moto_server) holding the staged CSVs and a
real `model.tar.gz` written the way the built-in container writes it."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import xgboost
from botocore.client import BaseClient
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber
from pydantic import ValidationError

from lakehouse.models.sagemaker import (
    MODEL_FILE,
    SageMakerTrainingError,
    booster_from_archive,
    train_on_sagemaker,
    training_job_request,
    xgboost_image_uri,
)
from lakehouse.settings import Settings
from tests.conftest import s3_client, s3_lake_options

ROLE = "arn:aws:iam::123456789012:role/lakehouse-sagemaker-training"
JOB = "lakehouse-xgboost-test"
# The fraud model's hyperparameters, as it hands them over (lakehouse.models.fraud).
HYPERPARAMETERS: dict[str, str | int | float] = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "max_depth": 3,
    "eta": 0.1,
    "subsample": 0.9,
    "seed": 7,
    "num_round": 400,
    "early_stopping_rounds": 30,
}


@pytest.fixture
def lake(make_settings: Callable[..., Settings], moto_server: str, s3_bucket: str) -> Settings:
    """Settings for the sagemaker backend with the lake in a bucket on the local S3."""
    return make_settings(
        **s3_lake_options(moto_server, s3_bucket),
        training_backend="sagemaker",
        sagemaker_role_arn=ROLE,
    )


def sagemaker(region: str = "us-east-1") -> BaseClient:
    """A real boto3 SageMaker client; a Stubber on it answers instead of AWS."""
    return boto3.client(
        "sagemaker",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def request_for(settings: Settings, job: str = JOB) -> dict[str, Any]:
    base = f"{settings.lake_root}/models/sagemaker/{job}"
    return training_job_request(
        settings,
        job_name=job,
        train_uri=f"{base}/train/",
        validation_uri=f"{base}/validation/",
        output_uri=f"{base}/output",
        hyperparameters=HYPERPARAMETERS,
    )


def test_the_request_passes_the_service_models_validation(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        lakehouse_root="s3://lake-bucket/lake",
        sagemaker_role_arn=ROLE,
        aws_region="eu-west-1",
        sagemaker_instance_type="ml.m5.2xlarge",
        sagemaker_volume_gb=50,
        sagemaker_max_runtime_seconds=7200,
    )
    request = request_for(settings)
    client = sagemaker("eu-west-1")
    arn = f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{JOB}"
    with Stubber(client) as stubber:
        stubber.add_response("create_training_job", {"TrainingJobArn": arn}, request)
        assert client.create_training_job(**request)["TrainingJobArn"] == arn
        stubber.assert_no_pending_responses()

    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.2-0",
        "TrainingInputMode": "File",
    }
    assert request["RoleArn"] == ROLE
    base = f"s3://lake-bucket/lake/models/sagemaker/{JOB}"
    channels = {channel["ChannelName"]: channel for channel in request["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for name, channel in channels.items():
        assert channel["ContentType"] == "text/csv"
        assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"{base}/{name}/"
    assert request["OutputDataConfig"] == {"S3OutputPath": f"{base}/output"}
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert request["HyperParameters"] == {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": "3",
        "eta": "0.1",
        "subsample": "0.9",
        "seed": "7",
        "num_round": "400",
        "early_stopping_rounds": "30",
    }
    assert {"Key": "lakehouse:component", "Value": "model-training"} in request["Tags"]


def test_the_stubber_refuses_a_malformed_request(make_settings: Callable[..., Settings]) -> None:
    request = request_for(make_settings(lakehouse_root="s3://b/lake", sagemaker_role_arn=ROLE))
    request["HyperParameters"]["num_round"] = 400  # not a string: the API would refuse it
    client = sagemaker()
    with Stubber(client) as stubber:
        stubber.add_response("create_training_job", {"TrainingJobArn": "arn"}, request)
        with pytest.raises(ParamValidationError, match=r"HyperParameters\.num_round"):
            client.create_training_job(**request)


def test_the_image_follows_region_version_and_override(
    make_settings: Callable[..., Settings],
) -> None:
    assert xgboost_image_uri(make_settings(sagemaker_region="us-west-2")) == (
        "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:3.2-0"
    )
    older = make_settings(aws_region="ap-south-1", sagemaker_xgboost_version="3.0-5")
    assert xgboost_image_uri(older) == (
        "720646828776.dkr.ecr.ap-south-1.amazonaws.com/sagemaker-xgboost:3.0-5"
    )
    mirror = "111122223333.dkr.ecr.us-east-1.amazonaws.com/xgboost-mirror:3.2-0"
    assert xgboost_image_uri(make_settings(sagemaker_xgboost_image=mirror)) == mirror
    with pytest.raises(ValueError, match="SAGEMAKER_XGBOOST_IMAGE"):
        xgboost_image_uri(make_settings(sagemaker_region="xx-nowhere-1"))
    with pytest.raises(ValidationError):
        make_settings(sagemaker_xgboost_version="1.7-1")  # saves a format XGBoost 3 cannot read


def rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A float32 feature matrix with a few missing values, and labels it predicts."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, 4)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 0).astype(np.float32)
    features[rng.random(features.shape) < 0.05] = np.nan
    return features, labels


def container_model(
    folder: Path, train: tuple[np.ndarray, ...], valid: tuple[np.ndarray, ...]
) -> tuple[xgboost.Booster, bytes]:
    """What the built-in container leaves in model.tar.gz: a booster fitted with
    `EarlyStopping(save_best=True)`, saved by `save_model` to `xgboost-model` (no extension,
    so UBJSON)."""
    stop = xgboost.callback.EarlyStopping(
        rounds=5, data_name="validation", metric_name="aucpr", maximize=True, save_best=True
    )
    params = {"objective": "binary:logistic", "eval_metric": "aucpr", "max_depth": 2}
    booster = xgboost.train(
        params,
        xgboost.DMatrix(*train),
        200,
        evals=[(xgboost.DMatrix(*valid), "validation")],
        callbacks=[stop],
        verbose_eval=False,
    )
    with warnings.catch_warnings():  # "Saving model in the UBJSON format as default"
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(folder / MODEL_FILE)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(folder / MODEL_FILE, arcname=MODEL_FILE)
    return booster, archive.getvalue()


def described(request: dict[str, Any], status: str, secondary: str, **extra: Any) -> dict:
    """A DescribeTrainingJob answer (the Stubber checks its shape too)."""
    output = request["OutputDataConfig"]["S3OutputPath"]
    return {
        "TrainingJobName": request["TrainingJobName"],
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}",
        "ModelArtifacts": {"S3ModelArtifacts": f"{output}/{JOB}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": request["StoppingCondition"],
        "CreationTime": datetime(2026, 11, 24, tzinfo=UTC),
        **extra,
    }


def stub_job(client: BaseClient, request: dict[str, Any], *answers: dict) -> Stubber:
    stubber = Stubber(client)
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:job"}, request)
    for answer in answers:
        stubber.add_response("describe_training_job", answer, {"TrainingJobName": JOB})
    stubber.activate()
    return stubber


def download(endpoint: str, uri: str, folder: Path) -> Path:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    s3_client(endpoint).download_file(bucket, key, str(path))
    return path


def parsed(path: Path) -> np.ndarray:
    """The rows of a CSV file; an empty field is NaN, anything else must be a number."""
    with path.open() as lines:
        return np.array(
            [[float(cell) if cell else np.nan for cell in row] for row in csv.reader(lines)]
        )


def read_as_the_container_does(path: Path) -> xgboost.DMatrix:
    """The container sniffs the delimiter from the first line, then hands the file to
    XGBoost's text parser with the label in column 0."""
    delimiter = csv.Sniffer().sniff(path.read_text().splitlines()[0]).delimiter
    with warnings.catch_warnings():  # XGBoost 3.1 deprecated text input; the container uses it
        warnings.simplefilter("ignore", UserWarning)
        return xgboost.DMatrix(f"{path}?format=csv&label_column=0&delimiter={delimiter}")


@pytest.mark.parametrize("instances", [1, 2])
def test_a_fit_stages_csv_waits_and_returns_the_containers_booster(
    lake: Settings, moto_server: str, tmp_path: Path, instances: int
) -> None:
    settings = lake.model_copy(update={"sagemaker_instance_count": instances})
    train, valid = rows(300, seed=1), rows(120, seed=2)
    local, archive = container_model(tmp_path, train, valid)
    request = request_for(settings)
    artifact = described(request, "Completed", "Completed")["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = artifact.removeprefix("s3://").partition("/")
    s3_client(moto_server).put_object(Bucket=bucket, Key=key, Body=archive)
    client = sagemaker()
    stubber = stub_job(
        client,
        request,
        described(request, "InProgress", "Starting"),
        described(request, "InProgress", "Training"),
        described(request, "Completed", "Completed"),
    )

    raw = train_on_sagemaker(
        settings, *train, *valid, HYPERPARAMETERS, client=client, poll_seconds=0, job_name=JOB
    )

    stubber.assert_no_pending_responses()
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    assert booster.num_boosted_rounds() == local.best_iteration + 1
    matrix = xgboost.DMatrix(valid[0])
    np.testing.assert_array_equal(booster.predict(matrix), local.predict(matrix))

    base = f"{settings.lake_root}/models/sagemaker/{JOB}"
    parts = [
        download(moto_server, f"{base}/train/part-{n:05d}.csv", tmp_path) for n in range(instances)
    ]
    staged = np.vstack([parsed(part) for part in parts])
    np.testing.assert_array_equal(staged[:, 0], train[1])  # label first, no header line
    np.testing.assert_array_equal(staged[:, 1:].astype(np.float32), train[0])
    validation = parsed(download(moto_server, f"{base}/validation/part-00000.csv", tmp_path))
    np.testing.assert_array_equal(validation[:, 0], valid[1])
    np.testing.assert_array_equal(validation[:, 1:].astype(np.float32), valid[0])
    read = [read_as_the_container_does(part) for part in parts]
    assert [matrix.num_row() for matrix in read] == [300 // instances] * instances
    np.testing.assert_array_equal(np.concatenate([m.get_label() for m in read]), train[1])
    present = sum(matrix.get_data().nnz for matrix in read)  # an empty field is missing
    assert present == np.count_nonzero(~np.isnan(train[0]))


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Failed", "AlgorithmError: XGB train call failed with exception: bad label"),
        ("Stopped", "MaxRuntimeInSeconds exceeded"),
    ],
)
def test_a_job_that_does_not_complete_raises_with_its_failure_reason(
    lake: Settings, status: str, reason: str
) -> None:
    request = request_for(lake)
    client = sagemaker()
    stubber = stub_job(
        client,
        request,
        described(request, "InProgress", "Training"),
        described(request, status, status, FailureReason=reason),
    )
    with pytest.raises(SageMakerTrainingError, match=rf"{JOB} {status.lower()}: {reason}"):
        train_on_sagemaker(
            lake,
            *rows(30, 5),
            *rows(10, 6),
            HYPERPARAMETERS,
            client=client,
            poll_seconds=0,
            job_name=JOB,
        )
    stubber.assert_no_pending_responses()


def test_settings_it_cannot_run_with_fail_before_any_call(
    make_settings: Callable[..., Settings],
) -> None:
    """No responses are stubbed: any S3 or SageMaker call would raise UnStubbedResponseError."""
    client, s3 = sagemaker(), boto3.client("s3", region_name="us-east-1")
    unconfigured = {
        "SAGEMAKER_ROLE_ARN": make_settings(lakehouse_root="s3://b/lake"),
        "s3:// lake root": make_settings(sagemaker_role_arn=ROLE),
    }
    with Stubber(client), Stubber(s3):
        for message, settings in unconfigured.items():
            with pytest.raises(ValueError, match=message):
                train_on_sagemaker(
                    settings, *rows(10, 7), *rows(5, 8), HYPERPARAMETERS, client=client, s3=s3
                )
    with pytest.raises(ValueError, match="SAGEMAKER_ROLE_ARN"):
        request_for(make_settings(lakehouse_root="s3://b/lake"))


def archive_of(name: str, content: bytes) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()


def test_only_ubjson_or_json_models_are_accepted(tmp_path: Path) -> None:
    booster, _ = container_model(tmp_path, rows(60, 9), rows(30, 10))
    as_json = archive_of(MODEL_FILE, bytes(booster.save_raw("json")))
    assert booster_from_archive(as_json) == bytes(booster.save_raw("ubj"))
    with pytest.raises(SageMakerTrainingError, match=r"older than 3\.0"):
        booster_from_archive(archive_of(MODEL_FILE, pickle.dumps(booster)))
    with pytest.raises(SageMakerTrainingError, match=f"no {MODEL_FILE}"):
        booster_from_archive(archive_of("model.json", bytes(booster.save_raw("json"))))
