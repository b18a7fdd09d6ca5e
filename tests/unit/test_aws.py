"""Pure parts of the AWS client factory: region, endpoints, credentials, client config."""

from __future__ import annotations

from typing import Any

import pytest

from a2i_worker.aws import (
    A2I_SERVICE,
    SERVICES,
    AwsClients,
    AwsClientSettings,
    client_config,
    client_kwargs,
    credentials_from_environ,
    endpoint_env_var,
    endpoints_from_environ,
    resolve_region,
)


def test_endpoint_env_vars_are_botocores_names() -> None:
    assert [endpoint_env_var(s) for s in SERVICES] == [
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_EVENTBRIDGE",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME",
        "AWS_ENDPOINT_URL_SAGEMAKER",
    ]


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("eu-west-1", {"AWS_REGION": "us-east-2"}, "eu-west-1"),
        (None, {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-west-2"}, "us-east-2"),
        (None, {"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
        (None, {}, None),
    ],
)
def test_region_precedence(explicit: str | None, environ: dict[str, str], expected: str) -> None:
    assert resolve_region(explicit, environ) == expected


def test_a2i_client_never_retries_and_others_use_standard_mode() -> None:
    settings = AwsClientSettings(max_pool_connections=7, connect_timeout=2, read_timeout=25)
    a2i: Any = client_config(A2I_SERVICE, settings)  # botocore Config: untyped attributes
    sqs: Any = client_config("sqs", settings)
    assert a2i.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert sqs.retries == {"total_max_attempts": 3, "mode": "standard"}
    for config in (a2i, sqs):
        assert config.max_pool_connections == 7
        assert config.connect_timeout == 2
        assert config.read_timeout == 25


def test_a_client_for_callers_that_retry_themselves_has_botocore_retries_off() -> None:
    settings = AwsClientSettings()
    for service in ("sqs", "s3", "dynamodb"):
        config: Any = client_config(service, settings, own_retries=True)
        assert config.retries == {"total_max_attempts": 1, "mode": "standard"}, service
    kept: Any = client_config("sqs", AwsClientSettings(max_attempts=5))
    assert kept.retries == {"total_max_attempts": 5, "mode": "standard"}


async def test_sqs_comes_as_two_clients_one_without_botocore_retries() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}
    settings = AwsClientSettings(endpoint_urls={"sqs": "http://127.0.0.1:9"})
    async with AwsClients(settings, services=("sqs",), environ=environ) as aws:
        standard: Any = aws.sqs.meta.config
        bare: Any = aws.sqs_no_retries.meta.config
        assert aws.sqs_no_retries is not aws.sqs
        assert aws.sqs_no_retries.meta.endpoint_url == "http://127.0.0.1:9"
    assert standard.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert bare.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_endpoint_url_is_passed_only_when_overridden() -> None:
    settings = AwsClientSettings(region="us-east-1", endpoint_urls={"sqs": "http://127.0.0.1:9"})
    assert client_kwargs("sqs", settings, {})["endpoint_url"] == "http://127.0.0.1:9"
    s3 = client_kwargs("s3", settings, {})
    assert "endpoint_url" not in s3  # botocore's own AWS_ENDPOINT_URL_* chain applies
    assert s3["region_name"] == "us-east-1"
    assert "region_name" not in client_kwargs("s3", AwsClientSettings(), {})


def test_endpoints_from_an_environment_mapping() -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://moto:5000",
        "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME": "http://emulator:5001",
    }
    found = endpoints_from_environ(environ)
    assert found[A2I_SERVICE] == "http://emulator:5001"
    assert {found[s] for s in ("sqs", "s3", "events", "dynamodb")} == {"http://moto:5000"}
    ignored = {**environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert endpoints_from_environ(ignored) == {}


def test_credentials_from_an_environment_mapping() -> None:
    assert credentials_from_environ({"AWS_ACCESS_KEY_ID": "a"}) == {}
    assert credentials_from_environ(
        {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": "c"}
    ) == {"aws_access_key_id": "a", "aws_secret_access_key": "b", "aws_session_token": "c"}


def test_explicit_endpoints_win_over_the_environment_mapping() -> None:
    clients = AwsClients(
        AwsClientSettings(endpoint_urls={"sqs": "http://explicit"}),
        environ={"AWS_ENDPOINT_URL": "http://from-env"},
    )
    assert clients.settings.endpoint_urls["sqs"] == "http://explicit"
    assert clients.settings.endpoint_urls["s3"] == "http://from-env"


def test_clients_are_unavailable_outside_the_context() -> None:
    clients = AwsClients(environ={})
    with pytest.raises(RuntimeError, match="sqs client is not open"):
        _ = clients.sqs
