"""Ledger implementations behind one protocol."""

from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Claim,
    ClaimOutcome,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
    StartPayload,
)

__all__ = [
    "TERMINAL_LOOP_STATUSES",
    "Claim",
    "ClaimOutcome",
    "Ledger",
    "LedgerRecord",
    "LoopUpdate",
    "Phase",
    "StartPayload",
]
