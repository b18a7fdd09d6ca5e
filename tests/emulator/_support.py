"""Shared constants and helpers of the emulator tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.config import Config

from a2i_emulator.aws_setup import create_flow_definition
from a2i_emulator.control import EmulatorControl

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

__all__ = ["ACCOUNT", "CREDS", "NO_RETRIES", "REGION", "eventually", "make_flow", "unique"]

T = TypeVar("T")

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDS: dict[str, Any] = {
    "region_name": REGION,
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
_names = itertools.count()


def unique(prefix: str) -> str:
    """A name unique in this test session (moto is shared by every test)."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float = 10.0,
    every: float = 0.02,
) -> T:
    """Poll ``probe`` until ``done(value)``; fail with the last value after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within}s; last value: {value!r}")
        await asyncio.sleep(every)


async def make_flow(
    sagemaker: SageMakerClient,
    control: EmulatorControl,
    name: str,
    output_s3_uri: str,
    reviewers: dict[str, Any] | None = None,
) -> str:
    """An Active flow definition made through SageMaker's API, with its own reviewers."""
    arn = await create_flow_definition(
        sagemaker, name, output_s3_uri, account_id=ACCOUNT, region=REGION
    )
    if reviewers is not None:
        await control.put_flow_reviewers(name, reviewers)
    return arn
