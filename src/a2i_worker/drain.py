"""Running the intake until told to stop, then draining within the grace period.

Order on ``stop``: not ready → receivers stop after their current long poll (never cut
short: a cancelled poll could leave messages invisible that nobody holds) → in-flight
messages get until the grace period to finish → what is left is handed back (visibility
0) → deletes and results are flushed. The background tasks (heartbeats, sweeper,
publisher …) run for as long as the intake does, each started by name.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from a2i_worker.health import Readiness
from a2i_worker.intake import MessageBatcher, QueueConsumer
from a2i_worker.results import Publisher

__all__ = ["Intake"]

log = structlog.get_logger(__name__)


@dataclass
class Intake:
    """The two consumers and what must flush after them."""

    requests: QueueConsumer
    events: QueueConsumer
    batcher: MessageBatcher
    publisher: Publisher
    readiness: Readiness
    grace: float

    async def run(
        self,
        stop: anyio.Event,
        background: Sequence[tuple[str, Callable[[], Coroutine[Any, Any, None]]]],
        on_ready: Callable[[], None],
    ) -> None:
        consumers = (self.requests, self.events)
        async with anyio.create_task_group() as tasks:
            for name, run in background:
                tasks.start_soon(run, name=name)
            for c in consumers:
                tasks.start_soon(c.heartbeat_forever, name=f"{c.name}-heartbeat")
            async with anyio.create_task_group() as handlers:
                for c in consumers:
                    c.bind_handler_group(handlers)
                async with anyio.create_task_group() as receivers:
                    for c in consumers:
                        receivers.start_soon(c.receive_until_stopped, name=f"{c.name}-intake")
                    self.readiness.started = True
                    on_ready()
                    await stop.wait()
                    deadline = anyio.current_time() + self.grace
                    log.info("draining", grace_seconds=self.grace, held=self.requests.held)
                    self.readiness.draining = True
                    for c in consumers:
                        c.stop_receiving()
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time() - 1)):
                        for c in consumers:
                            await c.wait_receivers_done()
                    receivers.cancel_scope.cancel()
                # Receivers are done: let in-flight messages finish, within the grace.
                budget = max(0.0, deadline - anyio.current_time() - 1.5)
                idle = await self.requests.wait_idle(budget)
                idle = await self.events.wait_idle(0.5) and idle
                if not idle:
                    log.warning(
                        "grace period over; handing back unfinished messages",
                        held=self.requests.held + self.events.held,
                    )
                handlers.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                returned = await self.requests.hand_back() + await self.events.hand_back()
                await self.batcher.flush()
                with anyio.move_on_after(max(0.5, deadline - anyio.current_time())):
                    await self.publisher.flush()
            log.info("drained", handed_back=returned)
            tasks.cancel_scope.cancel()
