"""What one provisioned local environment consists of, and the worker's environment for it.

Pure: no I/O. :meth:`StackEndpoints.env` is the complete set of variables a worker
process needs to run against the local stack (AWS credentials and region, every
AWS endpoint pointed at moto or the emulator, and the worker's queue URLs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "A2I_DETAIL_TYPE",
    "GT_DETAIL_TYPE",
    "PREFIX_PATTERN",
    "StackEndpoints",
    "a2i_event_pattern",
    "gt_event_pattern",
    "validate_prefix",
]

A2I_DETAIL_TYPE: Final = "SageMaker A2I HumanLoop Status Change"
GT_DETAIL_TYPE: Final = "SageMaker Ground Truth Labeling Job State Change"
PREFIX_PATTERN: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""Environment prefixes: lowercase, digits, hyphens, 1-32 chars (fits S3 bucket names,
queue names, rule names and flow-definition names once suffixed)."""


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged or raise ``ValueError`` saying what is allowed."""
    if not PREFIX_PATTERN.match(prefix):
        raise ValueError(
            f"invalid environment prefix {prefix!r}: use 1-32 of [a-z0-9-], "
            "starting and ending with a letter or digit"
        )
    return prefix


def a2i_event_pattern(flow_definition_arn: str) -> dict[str, object]:
    """The production A2I rule pattern, narrowed to one flow definition (one environment)."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [A2I_DETAIL_TYPE],
        "detail": {"flowDefinitionArn": [flow_definition_arn]},
    }


def gt_event_pattern(labeling_job_arn_prefix: str) -> dict[str, object]:
    """Ground Truth job events whose labeling-job ARN starts with the given prefix."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [GT_DETAIL_TYPE],
        "resources": [{"prefix": labeling_job_arn_prefix}],
    }


@dataclass(frozen=True)
class StackEndpoints:
    """Names and URLs of one environment provisioned on a :class:`LocalStack`."""

    region: str
    account_id: str
    moto_url: str
    a2i_url: str
    requests_queue_url: str
    requests_dlq_url: str
    events_queue_url: str
    events_dlq_url: str
    results_queue_url: str
    output_bucket: str
    output_prefix: str
    flow_definition_arn: str
    flow_definition_name: str
    rule_name: str
    gt_rule_name: str | None = None
    """Optional second rule (Ground Truth job events) targeting the same events queue."""
    ledger_table: str | None = None
    """DynamoDB ledger table, when provisioned; ``env()`` then selects it as the ledger."""

    @property
    def output_s3_uri(self) -> str:
        """Where the emulator writes this flow definition's output.json files."""
        return f"s3://{self.output_bucket}/{self.output_prefix}"

    def env(self) -> dict[str, str]:
        """Environment for a worker process bound to this environment.

        ``AWS_ENDPOINT_URL`` also points at moto, so a service not listed here can
        never reach real AWS by accident.
        """
        env = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_SQS": self.moto_url,
            "AWS_ENDPOINT_URL_S3": self.moto_url,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.moto_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto_url,
            "AWS_ENDPOINT_URL_CLOUDFORMATION": self.moto_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME": self.a2i_url,
            # the emulator also serves SageMaker's flow-definition API (JSON 1.1 on POST /)
            "AWS_ENDPOINT_URL_SAGEMAKER": self.a2i_url,
            "A2I_WORKER_REQUESTS_QUEUE_URL": self.requests_queue_url,
            "A2I_WORKER_REQUESTS_DLQ_URL": self.requests_dlq_url,
            "A2I_WORKER_EVENTS_QUEUE_URL": self.events_queue_url,
            "A2I_WORKER_EVENTS_DLQ_URL": self.events_dlq_url,
            "A2I_WORKER_RESULTS_QUEUE_URL": self.results_queue_url,
        }
        if self.ledger_table:
            env["A2I_WORKER_LEDGER_URL"] = f"dynamodb://{self.ledger_table}"
        return env
