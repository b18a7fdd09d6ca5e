"""Test helpers shared by every suite.

:func:`wait_until` is the project's replacement for ``sleep`` as synchronization:
poll a condition until it holds or a deadline passes, then fail saying what was awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["json_document", "wait_until"]

T = TypeVar("T")


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 - the polling deadline is the point
    *,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value.

    Raises ``TimeoutError`` (with ``message`` and the last value seen) if it is still
    falsy after ``timeout`` seconds. The predicate is always evaluated at least once,
    and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        value: T = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"not true after {timeout:.1f}s: {what} (last value: {value!r})")
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def json_document(text: str) -> Any:
    """The JSON document a command printed on stdout. A worker running in the same
    process logs to the same (captured) stdout, so its lines may come before or after
    the document: it is the first line that opens with ``{`` or ``[``, to its end."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line[:1] in "[{":
            return json.JSONDecoder().raw_decode("".join(lines[i:]))[0]
    raise AssertionError(f"no JSON on stdout: {text!r}")
