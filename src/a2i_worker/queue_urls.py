"""The queue URLs ``run`` needs, checked present, and what a queue says about itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from a2i_worker.errors import ConfigError
from a2i_worker.settings import Settings, env_var

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

__all__ = ["QueueUrls", "max_receive_count", "queue_urls"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QueueUrls:
    """The queues ``run`` needs (the DLQs stay optional)."""

    requests: str
    events: str
    results: str
    requests_dlq: str | None
    events_dlq: str | None


def queue_urls(s: Settings) -> QueueUrls:
    """The queue URLs of ``s``; :class:`ConfigError` names every missing one."""
    requests, events, results = s.requests_queue_url, s.events_queue_url, s.results_queue_url
    if requests is None or events is None or results is None:
        missing = [
            env_var(name)
            for name in ("requests_queue_url", "events_queue_url", "results_queue_url")
            if getattr(s, name) is None
        ]
        raise ConfigError(f"required for run but not set: {', '.join(missing)}")
    return QueueUrls(
        requests=requests,
        events=events,
        results=results,
        requests_dlq=s.requests_dlq_url,
        events_dlq=s.events_dlq_url,
    )


async def max_receive_count(sqs: SQSClient, queue_url: str) -> int | None:
    """The queue's redrive ``maxReceiveCount``; None without one or when it can't be read."""
    try:
        resp = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(resp.get("Attributes", {}).get("RedrivePolicy") or "{}")
        count = int(policy.get("maxReceiveCount", 0))
    except Exception as exc:
        log.warning("could not read the queue's redrive policy", queue=queue_url, error=str(exc))
        return None
    return count if count >= 1 else None
