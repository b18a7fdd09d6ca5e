"""Shared fixtures: one local stack per test session, one fresh environment per test.

- ``stack`` (session, sync): moto (keep-alive server) + the A2I emulator on 127.0.0.1.
- ``env`` (function, async): ``await stack.provision(<unique prefix>)``: queues, DLQs,
  bucket, EventBridge rule, flow definition of this test only.
- ``emulator`` (function): ``EmulatorControl`` of the stack's emulator, with fresh
  loops and counters; quotas, faults and reviewers go back to defaults afterwards.
- ``aws`` (function): ``AwsClients`` bound to the stack (moto + emulator endpoints);
  ``aws_session`` (session): the aioboto3 session behind it, dummy credentials.
Polling instead of sleeping: ``from helpers import wait_until``.

Parallel runs: ``make test`` runs pytest-xdist (``-n 2 --dist loadgroup``); each xdist
worker is its own pytest session with its own stack. Work goes out by file, except that
the tests in ``xdist_schedule.SERIAL`` (worker processes, timing asserts) run one after
another on one worker while the other runs the rest. ``pytest`` without ``-n`` runs
everything serially.

Hypothesis profiles: ``quick`` (loaded by default: 100 examples per property, Hypothesis'
own default) and ``soak`` (1,000; ``make soak`` runs every property test with it,
``pytest --hypothesis-profile=soak`` for any selection). Property tests set no example
counts of their own, so the profile decides.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import pytest
from hypothesis import settings

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import A2I_SERVICE, AwsClients, AwsClientSettings
from a2i_worker.local import LocalStack, StackEndpoints
from xdist_schedule import make_scheduler

settings.register_profile("quick", max_examples=100)
settings.register_profile("soak", max_examples=1000)
settings.load_profile("quick")  # --hypothesis-profile (applied after this) wins


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: by file, plus one serial unit (see ``xdist_schedule``)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return make_scheduler(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """Tests only ever talk to the local stack: fixed fake credentials, never real ones."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def unique_prefix(label: str = "t") -> str:
    """A short environment prefix no other test of this session uses."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = LocalStack(emulator_seed=1234)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def env(stack: LocalStack) -> StackEndpoints:
    return await stack.provision(unique_prefix())


@pytest.fixture
async def emulator(stack: LocalStack) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(stack.a2i_url) as control:
        await control.reset()
        try:
            yield control
        finally:
            await control.reset(everything=True)


@pytest.fixture(scope="session")
def aws_session(stack: LocalStack) -> Any:
    """One aioboto3 session (dummy credentials) for the whole run: models parse once."""
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=stack.region
    )


@pytest.fixture
async def aws(stack: LocalStack, aws_session: Any) -> AsyncIterator[AwsClients]:
    endpoints = {s: stack.moto_url for s in ("sqs", "s3", "events", "dynamodb")}
    endpoints[A2I_SERVICE] = stack.a2i_url
    endpoints["sagemaker"] = stack.a2i_url  # the emulator serves the flow-definition API
    session = aws_session
    settings = AwsClientSettings(region=stack.region, endpoint_urls=endpoints)
    async with AwsClients(settings, session=session, environ={}) as clients:
        yield clients
