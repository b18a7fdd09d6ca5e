"""Child process of the crash test: writes records in order until it is killed.

Usage: python crash_writer.py <db path>. For each i it claims ``req-{i:06d}``, marks it
starting and open, then prints ``i`` (flushed): every printed i was committed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from a2i_worker.ledger.protocol import Phase, StartPayload
from a2i_worker.ledger.sqlite import SqliteLedger

PAYLOAD = StartPayload(
    "arn:aws:sagemaker:us-east-1:1:flow-definition/f", '{"x": "' + "y" * 5000 + '"}'
)


async def main(path: str) -> None:
    ledger = SqliteLedger(path)
    await ledger.open()
    now = datetime.now(UTC)
    for i in range(1_000_000):
        rid = f"req-{i:06d}"
        await ledger.claim(rid, "fp", route=None, received_at=now)
        await ledger.mark_starting(
            rid,
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name=f"loop-{i}",
            decision=None,
            context=None,
            payload=PAYLOAD,
            next_check_at=now + timedelta(minutes=5),
        )
        await ledger.mark_open(
            rid, loop_name=f"loop-{i}", loop_arn="arn", loop_created_at=now, next_check_at=now
        )
        print(i, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
