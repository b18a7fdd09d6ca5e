"""Building review results, and the outbox publisher that puts them on the results queue.

A result is stored in the ledger first (phase DONE) and published afterwards; the
ledger marks it PUBLISHED only after SQS accepted it. A crash in between publishes
it again with the same ``result_id`` (consumers drop duplicates), never loses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import jmespath
import structlog

from a2i_worker.classify import classify
from a2i_worker.ledger.protocol import Ledger, LedgerRecord
from a2i_worker.messages import Outcome, ReviewResult, result_id
from a2i_worker.review_metrics import review_metrics

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics
    from a2i_worker.routes import Agreement

__all__ = ["SQS_MAX_BYTES", "Publisher", "agreement", "make_result", "sqs_body"]

log = structlog.get_logger(__name__)


#: SQS's limit on one message, and on one SendMessageBatch call (bodies + attributes).
SQS_MAX_BYTES = 262_144
_ATTR_OVERHEAD = 200  # our two message attributes, generously


def sqs_body(result: dict[str, Any], *, include_prediction: bool = True) -> str:
    """The message body for ``result``; if it would exceed SQS's limit, the same result
    without ``prediction`` and ``human_answers`` (``truncated``: consumers read the
    answers from ``output_uri``). ``include_prediction=False`` always leaves the
    prediction out (A2I_WORKER_RESULTS_INCLUDE_PREDICTION)."""
    if not include_prediction and result.get("prediction") is not None:
        result = {**result, "prediction": None}
    body = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    if len(body.encode()) + _ATTR_OVERHEAD <= SQS_MAX_BYTES:
        return body
    slim = {**result, "prediction": None, "human_answers": [], "truncated": True}
    body = json.dumps(slim, separators=(",", ":"), ensure_ascii=False)
    if len(body.encode()) + _ATTR_OVERHEAD <= SQS_MAX_BYTES:
        return body
    slim["metadata"] = {}
    slim["agreement"] = None
    return json.dumps(slim, separators=(",", ":"), ensure_ascii=False)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def make_result(
    record: LedgerRecord,
    outcome: Outcome | str,
    *,
    now: datetime,
    request_id: str | None = None,
    reason: str | None = None,
    human_answers: list[dict[str, Any]] | None = None,
    agreement_value: dict[str, Any] | None = None,
    result_key: str | None = None,
    rejection_code: str | None = None,
    include_prediction: bool = True,
) -> tuple[str, dict[str, Any]]:
    """The JSON of a ReviewResult for ``record``; returns (result_id, result)."""
    ctx = record.context or {}
    decision = record.decision or {}
    outcome = Outcome(outcome)
    rid = request_id if request_id is not None else ctx.get("request_id", record.request_id)
    res_id = result_id(result_key or record.request_id, outcome.value, record.attempt)
    review_seconds: float | None = None
    if human_answers:
        spent = [a.get("timeSpentInSeconds") for a in human_answers]
        nums = [float(s) for s in spent if isinstance(s, int | float) and not isinstance(s, bool)]
        review_seconds = sum(nums) if nums else None
    loops = outcome not in (Outcome.NOT_ACTIVATED, Outcome.REJECTED) or record.loop_arn
    result = ReviewResult.model_validate(
        {
            "result_id": res_id,
            "request_id": rid,
            "outcome": outcome.value,
            "route": record.route,
            "flow_definition_arn": (record.payload.flow_definition_arn if record.payload else None)
            or ctx.get("flow_definition_arn"),
            "loop_name": record.loop_name if loops else None,
            "loop_arn": record.loop_arn if loops else None,
            "attempt": record.attempt,
            "activation": {
                "activated": bool(decision.get("activated", False)),
                "reasons": decision.get("fired", []),
            },
            "human_answers": human_answers or [],
            "prediction": ctx.get("prediction") if include_prediction else None,
            "agreement": agreement_value,
            "failure_code": record.failure_code if outcome is not Outcome.REJECTED else None,
            "reason": reason,
            "rejection_code": rejection_code,
            "output_uri": record.output_uri if outcome is Outcome.COMPLETED else None,
            "timings": {
                "received_at": _iso(record.received_at),
                "decided_at": ctx.get("decided_at"),
                "loop_created_at": _iso(record.loop_created_at),
                "finished_at": _iso(record.loop_finished_at) or _iso(now),
                "review_seconds": review_seconds,
            },
            "metadata": ctx.get("metadata") or {},
            "shadow": bool(ctx.get("shadow", False)),
            "produced_at": _iso(now),
        }
    )
    return res_id, result.model_dump(mode="json")


def agreement(
    spec: Agreement | None, prediction: Any, human_answers: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Compare the model's value with the reviewers' as the route says (None if it doesn't).

    ``spec.model`` is a JMESPath into the prediction; ``spec.human`` into the first
    reviewer's ``answerContent``. Equal values agree; with a ``tolerance``, numbers (or
    numeric strings like "1,250.00") within it agree. A missing side gives ``None``.
    """
    if spec is None or not human_answers:
        return None
    try:
        model_value = spec.model_expr.search(prediction)
        human_value = spec.human_expr.search(human_answers[0].get("answerContent"))
    except jmespath.exceptions.JMESPathError:
        return {"agrees": None, "model": spec.model, "human": spec.human}
    agrees: bool | None
    if model_value is None or human_value is None:
        agrees = None
    elif spec.tolerance is not None:
        try:
            agrees = abs(_num(model_value) - _num(human_value)) <= spec.tolerance
        except (TypeError, ValueError):
            agrees = None
    else:
        agrees = model_value == human_value
    return {"agrees": agrees, "model": spec.model, "human": spec.human, "tolerance": spec.tolerance}


def _num(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value.replace(",", "").strip())
    raise TypeError(type(value).__name__)


class Publisher:
    """Outbox: DONE records → results queue → PUBLISHED."""

    def __init__(
        self,
        ledger: Ledger,
        sqs: SQSClient,
        results_queue_url: str,
        *,
        metrics: Metrics | None = None,
        poll_interval: float = 5.0,
        linger_seconds: float = 0.02,
        include_prediction: bool = True,
    ) -> None:
        self._include_prediction = include_prediction
        self._ledger = ledger
        self._sqs = sqs
        self._url = results_queue_url
        self._metrics = metrics
        self._poll = poll_interval
        self._linger = linger_seconds
        self._ready: dict[str, LedgerRecord] = {}
        self._wakeup = anyio.Event()
        self.published = 0
        self.failures = 0

    def notify(self, record: LedgerRecord) -> None:
        """A record just reached DONE: publish it soon."""
        self._ready[record.request_id] = record
        self._wakeup.set()

    async def run(self) -> None:
        # Anything left over from a previous run (crash between store and publish).
        await self._sweep_outbox()
        last_scan = anyio.current_time()
        while True:
            with anyio.move_on_after(self._poll):
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            if self._ready:
                await anyio.sleep(self._linger)
                await self.flush()
            if anyio.current_time() - last_scan >= self._poll:
                # Safety net: results whose publishing failed are still DONE in the ledger.
                await self._sweep_outbox()
                last_scan = anyio.current_time()

    async def flush(self) -> None:
        while self._ready:
            batch = list(self._ready.values())
            self._ready.clear()
            async with anyio.create_task_group() as tg:
                for i in range(0, len(batch), 10):
                    tg.start_soon(self._send, batch[i : i + 10])

    async def _sweep_outbox(self) -> None:
        try:
            pending = await self._ledger.unpublished(500)
        except Exception as exc:
            log.warning("outbox scan failed", error=classify(exc).code)
            return
        for rec in pending:
            self._ready.setdefault(rec.request_id, rec)
        if self._ready:
            await self.flush()

    async def _send(self, records: list[LedgerRecord]) -> None:
        """Send up to ten results, in as many SendMessageBatch calls as SQS's 256 KiB
        batch limit needs."""
        batch: list[tuple[int, LedgerRecord, str]] = []
        size = 0
        for i, rec in enumerate(records):
            if rec.result is None or rec.result_id is None:
                continue
            body = sqs_body(rec.result, include_prediction=self._include_prediction)
            if batch and size + len(body.encode()) + _ATTR_OVERHEAD > SQS_MAX_BYTES:
                await self._send_batch(batch)
                batch, size = [], 0
            batch.append((i, rec, body))
            size += len(body.encode()) + _ATTR_OVERHEAD
        if batch:
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[int, LedgerRecord, str]]) -> None:
        records = {i: rec for i, rec, _ in batch}
        entries: list[Any] = []
        for i, rec, body in batch:
            assert rec.result is not None
            assert rec.result_id is not None
            entries.append(
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageAttributes": {
                        "result_id": {"DataType": "String", "StringValue": rec.result_id},
                        "outcome": {
                            "DataType": "String",
                            "StringValue": str(rec.result.get("outcome", "")),
                        },
                    },
                }
            )
        try:
            resp = await self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
        except Exception as exc:
            self.failures += 1
            log.warning("publishing results failed; will retry", error=classify(exc).code)
            if self._metrics:
                self._metrics.dependency_errors.labels(dependency="sqs").inc()
            self._requeue(list(records.values()))
            return
        failed = {f["Id"] for f in resp.get("Failed", [])}
        retry: list[LedgerRecord] = []
        sent = [records[int(s["Id"])] for s in resp.get("Successful", [])]
        try:
            # One ledger round trip for the whole batch.
            await self._ledger.mark_published_many(
                [(rec.request_id, str(rec.result_id)) for rec in sent]
            )
        except Exception as exc:
            # SQS has them; if the ledger write is lost we republish the same result_ids.
            log.warning("marking published failed", error=classify(exc).code, n=len(sent))
        for rec in sent:
            self.published += 1
            if self._metrics:
                self._metrics.results_published.inc()
                self._metrics.result_published(rec)
                if rec.result:
                    review_metrics(self._metrics).observe_result(rec.result)
        for i_str in failed:
            retry.append(records[int(i_str)])
        if retry:
            log.warning("some results were not accepted; will retry", n=len(retry))
            self._requeue(retry)

    def _requeue(self, records: list[LedgerRecord]) -> None:
        # Nothing to keep in memory: the records are still DONE in the ledger and the
        # periodic outbox scan picks them up again (no hot retry loop against an outage).
        log.debug("results left for the next outbox scan", n=len(records))
