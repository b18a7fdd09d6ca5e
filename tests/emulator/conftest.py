"""Fixtures of the emulator tests: a moto server (S3, EventBridge, SQS) and emulators on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import aioboto3
import pytest
from moto.server import ThreadedMotoServer

from a2i_emulator import EmulatorConfig, EmulatorControl, EmulatorServer

from ._support import CREDS, NO_RETRIES, make_flow

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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
async def a2i(url: str) -> AsyncIterator[AugmentedAIRuntimeClient]:
    session = aioboto3.Session()
    async with session.client(
        "sagemaker-a2i-runtime", endpoint_url=url, config=NO_RETRIES, **CREDS
    ) as client:
        yield client


@pytest.fixture
async def sagemaker(url: str) -> AsyncIterator[SageMakerClient]:
    """SageMaker's control plane, as served by the emulator (flow definitions, task UIs)."""
    session = aioboto3.Session()
    async with session.client("sagemaker", endpoint_url=url, config=NO_RETRIES, **CREDS) as client:
        yield client


@pytest.fixture
async def flow_arn(sagemaker: SageMakerClient, control: EmulatorControl) -> str:
    """A flow definition whose loops stay InProgress until finished by hand."""
    return await make_flow(
        sagemaker, control, "manual-flow", "s3://unused-bucket/out", {"mode": "manual"}
    )
