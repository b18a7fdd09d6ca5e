"""Quota gate: holds StartHumanLoop calls back while the account is at its open-loop quota.

ServiceQuotaExceededException says "too many loops in progress", not "too fast". The gate
admits a start only while ``in_flight + reserved < cap``; what it really keeps is the
*room* ``cap - in_flight``: this replica's share of the account's free slots.

**The replica model** (the same on one replica and on N; docs/limiter.md, "Replicas"):

- *In flight* means the loops the account has open in A2I as the ledger records them:
  records in phase OPEN or STARTING, table-wide. :meth:`QuotaGate.set_in_flight` takes that
  count (at start-up, and from the sweeper's recount); between counts the gate adds this
  replica's starts and subtracts the finishes it is told about.
- A refused start means the account is full: the room becomes zero (``cap = in_flight -
  margin``). A finish frees one slot, and its event reaches exactly one replica, whose
  room grows by one; a start (or a reservation) of this replica takes one. Summed over
  the replicas the rooms are the account's free slots -- each freed slot is counted
  once, by the replica that heard of it -- so N replicas do not over-admit, and each
  gets the share of the quota its share of the events gives it (SQS spreads them).
- A recount moves ``in_flight`` *and* ``cap`` by the same amount: it corrects the count
  (other replicas' starts, finishes told to others) without handing every replica the
  whole account's free room -- with three replicas that alone refused 22 % of all starts
  (tests/unit/test_gate_replicas.py).

It promises:

- **Nothing is dropped.** :meth:`QuotaGate.wait_open` waits (FIFO) as long as it takes; it
  never raises because the gate is closed. The caller keeps its SQS messages alive.
- **Reservations.** Each return of :meth:`wait_open` reserves one slot, so concurrent
  starts cannot overshoot the cap. The caller ends every reservation with exactly one of
  :meth:`on_start_succeeded`, :meth:`on_quota_exceeded` or :meth:`on_start_failed` --
  or by :meth:`confirm` returning ``False``.
- **Confirm before sending.** A reservation taken before a wait (for a rate token) may be
  stale by the time the call goes out: the cap may have been learned meanwhile. Calling
  :meth:`confirm` right before sending hands back reservations that no longer fit, so
  discovering the cap costs the starts actually in flight, not every queued reservation.
- **Reopens on finishes.** :meth:`on_loop_finished` (from the reconciler) and
  :meth:`set_in_flight` (from the ledger) admit waiters as soon as there is room.
- **Probes.** While closed with waiters, one start is let through after a jittered delay
  (``probe_after`` +- ``probe_jitter``) to test whether there is room nobody was told of.
  If a finish reached this gate while it waited for the probe, a
  successful probe keeps its own loop and nothing more: finishes reach the gates late, so
  the slot it found is most likely one whose finish event is on its way -- with several
  replicas, to another replica, which is then refused (measured: a doubling step here
  refused 2-3 % of all starts instead of 1.1-1.8 %). If no finish reached it, the gate is
  stuck below the quota (a raised quota, or finishes told to replicas that have no work
  left): a successful probe also raises the cap by a step that starts at 1 and doubles
  with each further one (up to ``probe_step_max``), and the next probe comes twice as
  soon. A rejection re-learns the cap and resets step and delay.
- A structlog line at each close / open / probe, never per start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from dataclasses import dataclass

import structlog

__all__ = ["GateParams", "GateSnapshot", "QuotaGate"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GateParams:
    """``margin``: loops below the learned count to stay at. ``probe_after``: seconds (> 0)
    the gate stays closed before a probe; ``probe_jitter``: relative spread (0 <= j < 1).
    ``probe_step_max``: largest extra cap step of consecutive successful probes of a stuck
    gate (0: none; see the module docstring)."""

    margin: int = 0
    probe_after: float = 15.0
    probe_jitter: float = 0.5
    probe_step_max: int = 64

    def __post_init__(self) -> None:
        if self.margin < 0 or not self.probe_after > 0 or not 0 <= self.probe_jitter < 1:
            raise ValueError("need margin >= 0, probe_after > 0, 0 <= probe_jitter < 1")
        if self.probe_step_max < 0:
            raise ValueError("need probe_step_max >= 0")


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    """``cap`` is ``None`` until the first ServiceQuotaExceeded (then the gate is open)."""

    in_flight: int
    reserved: int
    cap: int | None
    is_open: bool
    waiting: int
    quota_rejections: int
    probes: int
    probe_successes: int


class QuotaGate:
    """Concurrency gate on loops in flight; see the module docstring for the promises."""

    def __init__(self, params: GateParams | None = None, *, rng: random.Random | None = None):
        self.params = params if params is not None else GateParams()
        self._rng = rng if rng is not None else random.Random()
        self._in_flight = 0
        self._reserved = 0
        self._cap: int | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._probe_timer: asyncio.TimerHandle | None = None
        self._probing = False
        self._probe_fut: asyncio.Future[None] | None = None
        self._probe_scale = 1.0
        self._probe_step = 0
        # a finish was told to this gate while it waited for the probe now out: the gate
        # is being refilled, not stuck
        self._refilled = False
        self._probe_refilled = False  # ... as it was when the probe out now went out
        self._was_open = True
        self.quota_rejections = 0
        self.probes = 0
        self.probe_successes = 0

    # -- decisions (pure) -------------------------------------------------------------

    def _has_room(self) -> bool:
        return self._cap is None or self._in_flight + self._reserved < self._cap

    def probe_delay(self) -> float:
        """Seconds until the next probe: ``probe_after`` (halved per successful probe),
        jittered uniformly by +- ``probe_jitter``."""
        p = self.params
        base = p.probe_after * self._probe_scale
        return base * (1.0 + p.probe_jitter * (2.0 * self._rng.random() - 1.0))

    # -- waiting ----------------------------------------------------------------------

    async def wait_open(self) -> None:
        """Return when a start may go; reserves one slot (see the module docstring)."""
        if not self._waiters and self._has_room():
            self._reserved += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._arm_probe()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # granted, but the caller went away: give the slot back
                if fut is self._probe_fut:
                    self._probing = False
                self._release()
                self._wake()
            else:
                self._remove(fut)
            raise

    def _remove(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def _grant_one(self) -> asyncio.Future[None] | None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._reserved += 1
                fut.set_result(None)
                return fut
        return None

    def _wake(self) -> None:
        while self._waiters and self._has_room():
            if self._grant_one() is None:
                break
        self._note_state()
        if self._waiters:
            self._arm_probe()
        else:
            self._cancel_probe()

    def _note_state(self) -> None:
        is_open = self._has_room()
        if is_open != self._was_open:
            self._was_open = is_open
            _log.info(
                "quota_gate.opened" if is_open else "quota_gate.closed",
                cap=self._cap,
                in_flight=self._in_flight,
                reserved=self._reserved,
                waiting=len(self._waiters),
            )

    # -- probes -----------------------------------------------------------------------

    def _arm_probe(self) -> None:
        if self._probe_timer is not None or self._probing or self._has_room():
            return
        delay = self.probe_delay()
        self._refilled = False
        self._probe_timer = asyncio.get_running_loop().call_later(delay, self._probe)

    def _cancel_probe(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None

    def _probe(self) -> None:
        self._probe_timer = None
        if self._has_room() or not self._waiters:
            self._wake()
            return
        self._probe_fut = self._grant_one()
        if self._probe_fut is not None:
            self._probing = True
            self._probe_refilled = self._refilled
            self.probes += 1
            _log.info("quota_gate.probe", cap=self._cap, in_flight=self._in_flight)

    # -- outcomes ---------------------------------------------------------------------

    def _release(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    def on_start_succeeded(self) -> None:
        """A start of this replica went through: one more loop in flight (ends a
        reservation)."""
        self._release()
        self._in_flight += 1
        if self._probing:
            self._probing = False
            self.probe_successes += 1
            if self._probe_refilled:
                # finishes reach this gate: the slot the probe found is most likely one
                # whose finish event is on its way (here or to another replica); keep the
                # probe's loop, nothing more
                self._probe_scale = 1.0
                self._probe_step = 0
                if self._cap is not None:
                    self._cap = max(self._cap, self._in_flight)
            else:
                # nothing told this gate of a finish, yet there was room: stuck below the
                # quota (a raise; finishes told to replicas that have no work): open up
                self._probe_scale = max(self._probe_scale / 2.0, 1.0 / 16.0)
                step = min(self.params.probe_step_max, max(1, self._probe_step))
                if self._cap is not None:
                    self._cap = max(self._cap, self._in_flight) + step
                self._probe_step = min(self.params.probe_step_max, 2 * step)
            _log.info("quota_gate.probe_succeeded", cap=self._cap, in_flight=self._in_flight)
        self._wake()

    def on_quota_exceeded(self, in_flight: int | None = None) -> None:
        """A start got ServiceQuotaExceeded (ends a reservation): learn the cap, close.

        ``in_flight``: the caller's count of loops in progress, if it knows better than the
        gate (e.g. from the ledger); defaults to the gate's own count.
        """
        self._release()
        self.quota_rejections += 1
        if in_flight is not None:
            self._in_flight = max(0, in_flight)
        self._cap = max(0, self._in_flight - self.params.margin)
        self._probe_step = 0
        if self._probing:
            self._probing = False
            self._probe_scale = 1.0
        self._wake()

    def confirm(self) -> bool:
        """Call right before sending a start whose reservation is some time old.

        ``True``: send now. ``False``: a ServiceQuotaExceeded since the reservation lowered
        the cap below loops in flight plus reservations; this reservation has been handed
        back (it is ended) -- call :meth:`wait_open` again instead of sending. While a probe
        is out, one start beyond the cap is allowed (the probe itself).
        """
        allowance = 1 if self._probing else 0
        if self._cap is None or self._in_flight + self._reserved <= self._cap + allowance:
            return True
        self._release()
        self._wake()
        return False

    def on_start_failed(self) -> None:
        """A start failed for another reason (throttled, 5xx): the reservation is returned."""
        self._release()
        if self._probing:
            self._probing = False  # inconclusive; try again after the delay
        self._wake()

    def on_loop_finished(self, n: int = 1) -> None:
        """``n`` loops left InProgress -- any replica's: the reconciler of this replica was
        told (an event, a sweep). Each finish reaches one replica: room for one start."""
        self._in_flight = max(0, self._in_flight - n)
        self._refilled = True
        self._wake()

    def set_in_flight(self, n: int) -> None:
        """The ledger's count of loops in flight (at start-up, the sweeper's recounts).

        Once a cap is learned it moves with the count: the room stays as it was (see the
        module docstring: a recount does not know which of the account's free slots are
        this replica's)."""
        n = max(0, n)
        if self._cap is not None:
            self._cap = max(0, self._cap + n - self._in_flight)
        self._in_flight = n
        self._wake()

    # -- observation ------------------------------------------------------------------

    def snapshot(self) -> GateSnapshot:
        return GateSnapshot(
            in_flight=self._in_flight,
            reserved=self._reserved,
            cap=self._cap,
            is_open=self._has_room(),
            waiting=sum(1 for f in self._waiters if not f.done()),
            quota_rejections=self.quota_rejections,
            probes=self.probes,
            probe_successes=self.probe_successes,
        )
