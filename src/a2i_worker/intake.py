"""SQS intake: long-poll receive with bounded work in memory, heartbeats, batch deletes.

Used for both the requests queue and the events queue. Promises:

- at most ``capacity`` (or ``slots``) messages are held at once; when the work behind us
  is held back (throttling, quota), receiving stops instead of buffering without bound;
- every message held longer than the heartbeat interval gets its visibility extended
  (ChangeMessageVisibilityBatch), so a message being worked on is not redelivered;
- deletes go out in batches of ten; failed entries of a batch are retried, never
  ignored; a message is deleted only when its handler says so (after the ledger holds
  its outcome);
- on shutdown, messages not finished are handed back (visibility 0).

Retries: :mod:`a2i_worker.backoff`, on ``AwsClients.sqs_no_retries`` (botocore's off).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import structlog

from a2i_worker.backoff import SQS_DELETE, SQS_RECEIVE, SQS_VISIBILITY, Backoff
from a2i_worker.classify import classify
from a2i_worker.limiting.window import Slots
from a2i_worker.sqs_types import Handler, SqsMessage, Verdict, backoff_visibility

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

__all__ = ["MessageBatcher", "QueueConsumer", "SqsMessage", "Verdict"]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class MessageBatcher:
    """Batches DeleteMessage / ChangeMessageVisibility calls, ten entries a call.

    Failed deletes are retried (``SQS_DELETE``, until done); ``ReceiptHandleIsInvalid``
    (the message was already deleted or redelivered) is final and logged. A visibility
    change raising a retryable error is retried a few times (``SQS_VISIBILITY``).
    """

    def __init__(
        self,
        sqs: SQSClient,
        *,
        linger_seconds: float = 0.02,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._sqs = sqs
        self._linger = linger_seconds
        self._pending_deletes: dict[str, list[tuple[SqsMessage, anyio.Event]]] = {}
        self._wakeup = anyio.Event()
        self._on_error = on_error
        self.deleted = 0
        self.delete_failures = 0

    async def delete(self, msg: SqsMessage) -> None:
        """Queue ``msg`` for deletion and wait until SQS confirmed it (or it is final)."""
        done = anyio.Event()
        self._pending_deletes.setdefault(msg.queue_url, []).append((msg, done))
        self._wakeup.set()
        await done.wait()

    async def change_visibility(self, msgs: list[SqsMessage], visibility: int) -> list[SqsMessage]:
        """ChangeMessageVisibilityBatch, ten a call, all calls at once (a shutdown hands
        back everything held inside its grace period); returns the messages whose change
        failed."""
        failed: list[SqsMessage] = []
        by_queue: dict[str, list[SqsMessage]] = {}
        for m in msgs:
            by_queue.setdefault(m.queue_url, []).append(m)

        async def one(queue_url: str, chunk: list[SqsMessage]) -> None:
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": visibility}
                for i, m in enumerate(chunk)
            ]
            backoff = Backoff(SQS_VISIBILITY)
            while True:
                try:
                    resp = await self._sqs.change_message_visibility_batch(
                        QueueUrl=queue_url, Entries=entries
                    )
                    break
                except Exception as exc:
                    if not ((c := classify(exc)).retryable and await backoff.retry()):
                        log.warning("visibility change failed", error=c.code, n=len(chunk))
                        failed.extend(chunk)
                        return
            for f in resp.get("Failed", []):
                failed.append(chunk[int(f["Id"])])

        async with anyio.create_task_group() as tg:
            for queue_url, items in by_queue.items():
                for chunk in _chunks(items, 10):
                    tg.start_soon(one, queue_url, chunk)
        return failed

    async def run(self) -> None:
        """Flush deletes until cancelled; call :meth:`flush` on the way out."""
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await anyio.sleep(self._linger)
            await self.flush()

    async def flush(self) -> None:
        while any(self._pending_deletes.values()):
            pending, self._pending_deletes = self._pending_deletes, {}
            for queue_url, items in pending.items():
                async with anyio.create_task_group() as tg:
                    for chunk in _chunks(items, 10):
                        tg.start_soon(self._delete_chunk, queue_url, chunk)

    async def _delete_chunk(
        self, queue_url: str, chunk: list[tuple[SqsMessage, anyio.Event]]
    ) -> None:
        remaining = chunk
        backoff = Backoff(SQS_DELETE)
        while remaining:
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                for i, (m, _) in enumerate(remaining)
            ]
            retry: list[tuple[SqsMessage, anyio.Event]] = []
            try:
                resp = await self._sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:
                c = classify(exc)
                log.warning("delete batch failed; retrying", error=c.code, n=len(remaining))
                if self._on_error:
                    self._on_error(c.code)
                retry = remaining
            else:
                failed = {f["Id"]: f for f in resp.get("Failed", [])}
                for i, (m, ev) in enumerate(remaining):
                    f = failed.get(str(i))
                    if f is None:
                        m.done = True
                        self.deleted += 1
                        ev.set()
                    elif f.get("Code") in ("ReceiptHandleIsInvalid", "InvalidParameterValue"):
                        # Final: the message was already deleted or redelivered elsewhere;
                        # its outcome is in the ledger, the redelivery resolves idempotently.
                        log.info(
                            "delete refused: receipt handle no longer valid",
                            message_id=m.message_id,
                            code=f.get("Code"),
                        )
                        m.done = True
                        self.delete_failures += 1
                        ev.set()
                    else:
                        retry.append((m, ev))
                if retry:
                    log.warning("delete batch partially failed; retrying", n=len(retry))
            if remaining := retry:
                await backoff.retry()  # SQS_DELETE has no attempt limit: always True


class QueueConsumer:
    """Receives from one queue, runs ``handler`` per message with bounded concurrency."""

    def __init__(
        self,
        *,
        name: str,
        sqs: SQSClient,
        queue_url: str,
        handler: Handler,
        batcher: MessageBatcher,
        capacity: int,
        receivers: int = 1,
        wait_seconds: int = 20,
        visibility_timeout: int = 120,
        heartbeat_interval: float = 30.0,
        retry_visibility: int = 5,
        receive_backoff_max: float = 20.0,
        on_receive_error: Callable[[str], None] | None = None,
        on_receive_ok: Callable[[], None] | None = None,
        slots: Slots | None = None,
    ) -> None:
        self.name = name
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batcher = batcher
        self._capacity = capacity
        self._slots: Slots = slots if slots is not None else anyio.Semaphore(capacity)
        self._receivers = receivers
        self._wait_seconds = wait_seconds
        self._visibility = visibility_timeout
        self._heartbeat_interval = heartbeat_interval
        self._retry_visibility = retry_visibility
        self.receive_policy = SQS_RECEIVE.capped(receive_backoff_max)
        self._held: dict[str, SqsMessage] = {}
        # Heartbeats and hand_back() both change visibility: serialised, so an extension
        # already on the wire can never land after a hand-back and hide the message again.
        self._visibility_lock = anyio.Lock()
        self._on_receive_error = on_receive_error
        self._on_receive_ok = on_receive_ok
        self._stopping = anyio.Event()
        self._active_receivers = 0
        self._receivers_done = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self.received = 0
        self.handled = 0
        self._last_full_receive = -float("inf")

    @property
    def held(self) -> int:
        return len(self._held)

    def backlogged(self, within: float = 2.0) -> bool:
        """Messages are waiting: every slot is taken, or a receive came back full in the
        last ``within`` seconds."""
        recent = anyio.current_time() - self._last_full_receive <= within
        return recent or (self._slots.value == 0 and bool(self._held))

    def stop_receiving(self) -> None:
        self._stopping.set()
        if self._active_receivers == 0:
            self._receivers_done.set()

    async def receive_until_stopped(self) -> None:
        """Run the receivers; returns once :meth:`stop_receiving` was called and every
        receiver finished its current long poll (messages received after the stop are
        handed back untouched, so none is left invisible)."""
        async with anyio.create_task_group() as tg:
            for i in range(self._receivers):
                tg.start_soon(self._receive_loop, name=f"{self.name}-receiver-{i}")

    async def heartbeat_forever(self) -> None:
        """Extend the visibility of held messages until cancelled."""
        await self._heartbeat_loop()

    async def wait_idle(self, within: float) -> bool:
        """Wait up to ``within`` seconds until no message is held; True if idle."""
        with anyio.move_on_after(within):
            await self._idle.wait()
        return not self._held

    async def wait_receivers_done(self) -> None:
        """Returns once every receiver has exited (after :meth:`stop_receiving`)."""
        await self._receivers_done.wait()

    async def hand_back(self) -> int:
        """Make every held message visible again at once (shutdown)."""
        async with self._visibility_lock:
            msgs = [m for m in self._held.values() if not m.done]
            if not msgs:
                return 0
            failed = await self._batcher.change_visibility(msgs, 0)
            for m in msgs:
                self._forget(m)
        if failed:
            log.warning("could not hand back some messages", queue=self.name, n=len(failed))
        return len(msgs) - len(failed)

    async def _receive_loop(self) -> None:
        self._active_receivers += 1
        try:
            await self._receive_loop_inner()
        finally:
            self._active_receivers -= 1
            if self._active_receivers == 0 and self._stopping.is_set():
                self._receivers_done.set()

    async def _receive_loop_inner(self) -> None:
        backoff = Backoff(self.receive_policy)
        while not self._stopping.is_set():
            # Wait for at least one free slot before asking SQS for anything.
            await self._slots.acquire()
            free = 1
            while free < 10 and self._slots.value > 0:
                self._slots.acquire_nowait()
                free += 1
            try:
                if self._stopping.is_set():
                    break
                resp = await self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=free,
                    WaitTimeSeconds=self._wait_seconds,
                    VisibilityTimeout=self._visibility,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
                got: list[dict[str, Any]] = [dict(m) for m in resp.get("Messages", [])]
                backoff.reset()
                if self._on_receive_ok:
                    self._on_receive_ok()
            except Exception as exc:
                c = classify(exc)
                log.warning("receive failed; backing off", queue=self.name, error=c.code)
                if self._on_receive_error:
                    self._on_receive_error(c.code)
                for _ in range(free):
                    self._slots.release()
                await backoff.retry()  # no attempt limit: until SQS answers again
                continue
            # Give back the slots we did not use.
            for _ in range(free - len(got)):
                self._slots.release()
            msgs = [self._wrap(raw) for raw in got]
            self.received += len(msgs)
            if msgs and len(msgs) >= free:
                self._last_full_receive = anyio.current_time()
            if self._stopping.is_set() and msgs:
                # Shutdown began during the long poll: hand these back untouched.
                await self._batcher.change_visibility(msgs, 0)
                for _ in msgs:
                    self._slots.release()
                break
            for msg in msgs:
                self._held[msg.receipt_handle] = msg
                if self._idle.is_set():
                    self._idle = anyio.Event()
                self._spawn(msg)
        # Slots acquired in the final iteration are simply dropped: we are stopping.

    def _spawn(self, msg: SqsMessage) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._handle, msg, name=f"{self.name}-handle")

    _tg: anyio.abc.TaskGroup | None = None

    def bind_handler_group(self, tg: anyio.abc.TaskGroup) -> None:
        """Handlers run in ``tg`` (a group that outlives the receivers during drain)."""
        self._tg = tg

    def _wrap(self, raw: dict[str, Any]) -> SqsMessage:
        attrs = raw.get("Attributes", {})
        sent = attrs.get("SentTimestamp")
        msg = SqsMessage(
            queue_url=self._queue_url,
            message_id=str(raw.get("MessageId", "")),
            receipt_handle=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
            sent_timestamp_ms=int(sent) if sent is not None else None,
        )
        msg.extended_until = msg.received_monotonic + self._visibility
        return msg

    async def _handle(self, msg: SqsMessage) -> None:
        try:
            verdict = await self._handler(msg)
        except anyio.get_cancelled_exc_class():
            # Shutdown: the message stays held so that hand_back() makes it visible again.
            self._slots.release()
            raise
        except Exception:  # a bug must not kill the worker; the message is retried
            log.exception("handler crashed; message will be retried", queue=self.name)
            verdict = Verdict.RETRY
            msg.retry_after = backoff_visibility(msg.receive_count, self._retry_visibility)
        try:
            with anyio.CancelScope(shield=True):
                if verdict == Verdict.DELETE:
                    await self._batcher.delete(msg)
                elif verdict == Verdict.RETRY and not msg.done:
                    await self._batcher.change_visibility(
                        [msg], msg.retry_after or self._retry_visibility
                    )
        finally:
            self._forget(msg)
            self.handled += 1
            self._slots.release()

    def _forget(self, msg: SqsMessage) -> None:
        self._held.pop(msg.receipt_handle, None)
        if not self._held:
            self._idle.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self._heartbeat_interval)
            async with self._visibility_lock:
                now = time.monotonic()
                # Extend everything that would become visible before the next beat (+ margin).
                horizon = now + self._heartbeat_interval * 2
                due = [m for m in self._held.values() if not m.done and m.extended_until <= horizon]
                if not due:
                    continue
                failed = await self._batcher.change_visibility(due, self._visibility)
            failed_ids = {id(m) for m in failed}
            for m in due:
                if id(m) not in failed_ids:
                    m.extended_until = now + self._visibility
            log.debug("heartbeat", queue=self.name, extended=len(due) - len(failed))


def _chunks(items: list[_T], size: int) -> list[list[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
