"""I/O to the outside world: output.json to S3, status-change events to EventBridge.

Both run as a few background tasks fed by in-memory queues, so API calls never wait on them.
Promises:
- :meth:`Publisher.write_output` puts output.json and then calls ``on_done(ok)`` once, after
  up to three attempts; with no S3 endpoint configured it calls ``on_done(False)`` at once;
  when the output fault ``missing`` hits, it writes nothing and calls ``on_done(True)``.
- :meth:`Publisher.emit` applies the configured event faults (drop, duplicate, delay — delayed
  events overtake later ones, which is the reorder) and sends the rest with ``PutEvents`` in
  batches of at most 10 entries. With no EventBridge endpoint events are counted as dropped.
- Counters in :class:`PublisherCounters` say what happened to every event and output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
import structlog

from a2i_emulator.faults import EventFaults, OutputFaults
from a2i_emulator.reviewers import iso_ms
from a2i_emulator.store import Loop

if TYPE_CHECKING:
    from types_aiobotocore_events import EventBridgeClient
    from types_aiobotocore_s3 import S3Client

__all__ = [
    "DETAIL_TYPE",
    "EVENT_SOURCE",
    "Publisher",
    "PublisherCounters",
    "output_key",
    "split_s3_uri",
    "status_change_detail",
]

log = structlog.get_logger(__name__)

EVENT_SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"
_BATCH = 10
_EVENT_WORKERS = 2
_OUTPUT_WORKERS = 4
_ATTEMPTS = 3


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")`` (ValueError if not s3)."""
    if not uri.startswith("s3://"):
        raise ValueError("output_s3_uri must start with s3://")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError("output_s3_uri needs a bucket")
    return bucket, prefix.strip("/")


def output_key(prefix: str, flow_name: str, loop_name: str, creation_time: float) -> str:
    """``<prefix>/<flow>/YYYY/MM/DD/hh/mm/ss/<loop>/output.json`` (creation time, UTC)."""
    stamp = iso_ms(creation_time)  # 2026-03-02T10:02:41.512Z
    date, clock = stamp[:10], stamp[11:19]
    parts = [*date.split("-"), *clock.split(":")]
    key = f"{flow_name}/{'/'.join(parts)}/{loop_name}/output.json"
    return f"{prefix}/{key}" if prefix else key


def status_change_detail(loop: Loop) -> dict[str, Any]:
    """The ``detail`` of the documented "SageMaker A2I HumanLoop Status Change" event."""
    return {
        "creationTime": iso_ms(loop.creation_time),
        "failureCode": loop.failure_code,
        "failureReason": loop.failure_reason,
        "flowDefinitionArn": loop.flow_definition_arn,
        "humanLoopArn": loop.arn,
        "humanLoopName": loop.name,
        "humanLoopOutput": (
            {"outputS3Uri": loop.output_s3_uri} if loop.output_s3_uri is not None else None
        ),
        "humanLoopStatus": loop.status,
    }


@dataclass
class PublisherCounters:
    emitted: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    publish_errors: int = 0
    outputs_written: int = 0
    output_errors: int = 0
    outputs_skipped: int = 0  # the ``outputs.missing`` fault: never written

    def events_json(self) -> dict[str, int]:
        return {
            "emitted": self.emitted,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
            "publish_errors": self.publish_errors,
        }

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


_OutputJob = tuple[str, str, bytes, Callable[[bool], None]]


class Publisher:
    """Background S3 writes and EventBridge publishing for one emulator."""

    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        s3_endpoint_url: str | None,
        events_endpoint_url: str | None,
        event_bus_name: str,
        aws_access_key_id: str,
        aws_secret_access_key: str,
        rng: random.Random,
        event_faults: Callable[[], EventFaults],
        output_faults: Callable[[], OutputFaults] = OutputFaults,
    ) -> None:
        self._region = region
        self._account_id = account_id
        self._s3_url = s3_endpoint_url
        self._events_url = events_endpoint_url
        self._bus = event_bus_name
        self._key_id = aws_access_key_id
        self._secret = aws_secret_access_key
        self._rng = rng
        self._event_faults = event_faults
        self._output_faults = output_faults
        self.counters = PublisherCounters()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outputs: asyncio.Queue[_OutputJob] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._delayed: set[asyncio.TimerHandle] = set()
        self._stack = contextlib.AsyncExitStack()
        self._s3: S3Client | None = None
        self._eventbridge: EventBridgeClient | None = None

    async def start(self) -> None:
        session = aioboto3.Session()
        common: dict[str, Any] = {
            "region_name": self._region,
            "aws_access_key_id": self._key_id,
            "aws_secret_access_key": self._secret,
        }
        if self._s3_url is not None:
            self._s3 = await self._stack.enter_async_context(
                session.client("s3", endpoint_url=self._s3_url, **common)
            )
            for i in range(_OUTPUT_WORKERS):
                self._tasks.append(
                    asyncio.create_task(self._output_worker(), name=f"emulator-s3-{i}")
                )
        if self._events_url is not None:
            self._eventbridge = await self._stack.enter_async_context(
                session.client("events", endpoint_url=self._events_url, **common)
            )
            for i in range(_EVENT_WORKERS):
                self._tasks.append(
                    asyncio.create_task(self._event_worker(), name=f"emulator-events-{i}")
                )

    async def drain(self, max_wait: float = 10.0) -> None:
        """Wait until queued (not delayed) events and outputs have been handled."""
        async with asyncio.timeout(max_wait):
            if self._s3 is not None:
                await self._outputs.join()
            if self._eventbridge is not None:
                await self._events.join()

    async def stop(self) -> None:
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        with contextlib.suppress(TimeoutError):
            await self.drain(5.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._stack.aclose()

    def discard_delayed(self) -> None:
        """Forget events still waiting out an injected delay (used by reset)."""
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()

    # -- outputs -------------------------------------------------------------------------------

    def write_output(
        self, bucket: str, key: str, body: bytes, on_done: Callable[[bool], None]
    ) -> None:
        if self._s3 is None:
            self.counters.output_errors += 1
            on_done(False)
            return
        if self._output_faults().skip_write(self._rng):
            self.counters.outputs_skipped += 1
            on_done(True)
            return
        self._outputs.put_nowait((bucket, key, body, on_done))

    async def _output_worker(self) -> None:
        assert self._s3 is not None
        while True:
            bucket, key, body, on_done = await self._outputs.get()
            ok = False
            try:
                for attempt in range(_ATTEMPTS):
                    try:
                        await self._s3.put_object(
                            Bucket=bucket, Key=key, Body=body, ContentType="application/json"
                        )
                        ok = True
                        break
                    except Exception as exc:
                        log.warning(
                            "output_write_failed", bucket=bucket, attempt=attempt, error=str(exc)
                        )
                        await asyncio.sleep(0.1 * (attempt + 1))
                if ok:
                    self.counters.outputs_written += 1
                else:
                    self.counters.output_errors += 1
                on_done(ok)
            finally:
                self._outputs.task_done()

    # -- events --------------------------------------------------------------------------------

    def emit(self, loop: Loop) -> None:
        """Queue the status-change event of ``loop`` (a terminal loop), applying event faults."""
        if self._eventbridge is None:
            self.counters.dropped += 1
            return
        decision = self._event_faults().decide(self._rng)
        if decision.drop:
            self.counters.dropped += 1
            return
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(status_change_detail(loop)),
            "Resources": [loop.arn],
            "EventBusName": self._bus,
        }
        if decision.copies > 1:
            self.counters.duplicated += decision.copies - 1
        for _ in range(decision.copies):
            if decision.delay_seconds > 0:
                self.counters.delayed += 1
                self._schedule_delayed(entry, decision.delay_seconds)
            else:
                self._events.put_nowait(entry)

    def _schedule_delayed(self, entry: dict[str, Any], delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._delayed.discard(handle)
            self._events.put_nowait(entry)

        handle = loop.call_later(delay, fire)
        self._delayed.add(handle)

    async def _event_worker(self) -> None:
        assert self._eventbridge is not None
        while True:
            batch = [await self._events.get()]
            while len(batch) < _BATCH and not self._events.empty():
                batch.append(self._events.get_nowait())
            try:
                await self._put_batch(batch)
            finally:
                for _ in batch:
                    self._events.task_done()

    async def _put_batch(self, batch: list[dict[str, Any]]) -> None:
        assert self._eventbridge is not None
        pending = batch
        for attempt in range(_ATTEMPTS):
            try:
                resp = await self._eventbridge.put_events(Entries=pending)  # type: ignore[arg-type]
            except Exception as exc:
                log.warning("put_events_failed", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            results = resp.get("Entries", [])
            failed = [e for e, r in zip(pending, results, strict=False) if "ErrorCode" in r]
            self.counters.emitted += len(pending) - len(failed)
            if not failed:
                return
            pending = failed
        self.counters.publish_errors += len(pending)
