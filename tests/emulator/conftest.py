"""Fixtures of the emulator tests: a fresh emulator per test, on the session's moto server.

moto (S3, EventBridge, SQS) is the one of the session's local stack (tests/conftest.py);
the tests' buckets, queues and rules have session-unique names (``_support.unique``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from a2i_emulator import EmulatorConfig, EmulatorControl, EmulatorServer
from a2i_worker.local import LocalStack

from ._support import CREDS, NO_RETRIES, make_flow

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient


@pytest.fixture(scope="session")
def moto_url(stack: LocalStack) -> str:
    return stack.moto_url


@pytest.fixture
async def emulator_server(moto_url: str) -> AsyncIterator[EmulatorServer]:
    server = EmulatorServer(
        EmulatorConfig(seed=7, s3_endpoint_url=moto_url, events_endpoint_url=moto_url)
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def url(emulator_server: EmulatorServer) -> str:
    return emulator_server.url


@pytest.fixture
async def control(url: str) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(url) as ctl:
        yield ctl


@pytest.fixture
async def a2i(url: str, aws_session: Any) -> AsyncIterator[AugmentedAIRuntimeClient]:
    async with aws_session.client(
        "sagemaker-a2i-runtime", endpoint_url=url, config=NO_RETRIES, **CREDS
    ) as client:
        yield client


@pytest.fixture
async def sagemaker(url: str, aws_session: Any) -> AsyncIterator[SageMakerClient]:
    """SageMaker's control plane, as served by the emulator (flow definitions, task UIs)."""
    async with aws_session.client(
        "sagemaker", endpoint_url=url, config=NO_RETRIES, **CREDS
    ) as client:
        yield client


@pytest.fixture
async def flow_arn(sagemaker: SageMakerClient, control: EmulatorControl) -> str:
    """A flow definition whose loops stay InProgress until finished by hand."""
    return await make_flow(
        sagemaker, control, "manual-flow", "s3://unused-bucket/out", {"mode": "manual"}
    )
