"""In-memory fakes of the request path's seams, shaped like the clients the roles call.

Like httpx's MockTransport: the roles take them unchanged (same method names, keyword
arguments, response dicts and botocore errors), and tests/contract runs one set of
scenarios against each fake and against the real thing (moto server, the A2I emulator,
the SQLite ledger) so they cannot drift.

- :class:`ManualClock`: the one clock of a test (roles, SQS, A2I);
- :class:`FakeSqs`: queues with visibility, delays, receive counts and redrive;
- :class:`FakeS3`: objects, NoSuchKey / AccessDenied;
- :class:`FakeA2IRuntime`: the five runtime operations on the emulator's LoopStore;
- :class:`MemoryLedger`: the ledger on the real transitions, rows as SQLite keeps them;
- :class:`FakeLimiter`, :class:`FakeGate`: the gateway's limits without real time;
- :class:`FakeAws`: the three clients where a role wants ``AwsClients``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fakes.a2i import FakeA2IRuntime
from fakes.clock import ManualClock
from fakes.errors import client_error
from fakes.ledger import MemoryBudgetStore, MemoryLedger
from fakes.limits import FakeGate, FakeLimiter
from fakes.s3 import FakeS3
from fakes.sqs import FakeQueue, FakeSqs, StoredMessage

__all__ = [
    "FakeA2IRuntime",
    "FakeAws",
    "FakeGate",
    "FakeLimiter",
    "FakeQueue",
    "FakeS3",
    "FakeSqs",
    "ManualClock",
    "MemoryBudgetStore",
    "MemoryLedger",
    "StoredMessage",
    "client_error",
]


@dataclass
class FakeAws:
    """What :func:`a2i_worker.assembly.build_roles` reads of ``AwsClients``."""

    sqs: FakeSqs
    s3: FakeS3
    a2i: FakeA2IRuntime
