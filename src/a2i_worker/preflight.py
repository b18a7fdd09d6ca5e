"""Every dependency the worker reads or writes, checked at start and then for readiness.

One :class:`Dependency` per configured thing: each queue (requests, events, results and
the DLQs), the flow definition of each active route (SageMaker DescribeFlowDefinition:
it must exist in this account and region and be ``Active``), the S3 bucket that flow
writes its output.json to, the ledger, and the A2I runtime. Each check is one cheap,
side-effect-free call (a queue check also reads the queue's depth for the gauges).

A failing check raises :class:`DependencyError`, which says which setting to fix and
whether the failure is *permanent* (the thing does not exist, is not allowed, is
misconfigured: retrying cannot help) or may heal (network, 5xx, throttling, a flow
definition still ``Initializing``). :func:`verify_at_start` turns permanent failures into
one :class:`ConfigError` line each (``run`` exits 2) and the others into readiness
reasons; the health server then runs the same checks every 10 s, so a dependency that
breaks later shows in ``/readyz`` by name, and heals there when fixed.

Messages name the setting and the resource's name (queue name, flow name, bucket), never
a credential or a request's content.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from botocore.exceptions import ClientError

from a2i_worker.classify import ErrorKind, classify
from a2i_worker.errors import ConfigError
from a2i_worker.settings import env_var

if TYPE_CHECKING:
    from a2i_worker.aws import AwsClients
    from a2i_worker.health import Readiness
    from a2i_worker.ledger.protocol import Ledger
    from a2i_worker.metrics import Metrics
    from a2i_worker.queue_urls import QueueUrls
    from a2i_worker.routes import Routes

__all__ = [
    "Dependency",
    "DependencyError",
    "build_dependencies",
    "flow_name",
    "queue_name",
    "verify_at_start",
]

log = structlog.get_logger(__name__)

#: Kinds of error after which a dependency is wrong, not down: fix the configuration.
_PERMANENT = frozenset({ErrorKind.NOT_FOUND, ErrorKind.ACCESS, ErrorKind.INVALID})
_QUEUE_ATTRIBUTES: list[Any] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
]
#: A loop name that cannot exist: Describe of it proves A2I answers, with no side effect.
_PROBE_LOOP = "a2i-worker-readiness-probe"


class DependencyError(Exception):
    """One dependency failed its check: ``str()`` is the reason readiness shows."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Dependency:
    #: Readiness name: ``results_queue``, ``flow:invoices``, ``output_bucket:invoices``, …
    key: str
    #: What to fix, as the start-up error names it: a variable, or the routes file + route.
    setting: str
    check: Callable[[], Awaitable[None]]

    async def verify(self) -> None:
        """Run the check; any failure becomes a :class:`DependencyError`."""
        try:
            await self.check()
        except DependencyError:
            raise
        except Exception as exc:
            c = classify(exc)
            permanent = c.kind in _PERMANENT
            raise DependencyError(_reason(c.kind, c.code), permanent=permanent) from exc


def _reason(kind: ErrorKind, code: str) -> str:
    missing = ("NotFound", "NonExistent", "DoesNotExist", "NoSuch")
    if kind is ErrorKind.NOT_FOUND or any(word in code for word in missing):
        return f"does not exist ({code})"
    if kind is ErrorKind.ACCESS:
        return f"not allowed ({code}): check the role's permissions"
    return code


def queue_name(url: str) -> str:
    """The queue's name: the last path segment of its URL."""
    return url.rstrip("/").rpartition("/")[2] or url


def flow_name(arn: str) -> str:
    """The flow definition's name: what follows ``flow-definition/`` in its ARN."""
    return arn.rpartition("/")[2]


def _queue_check(
    sqs: Any, url: str, label: str, metrics: Metrics | None
) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        resp = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_QUEUE_ATTRIBUTES)
        attrs = resp.get("Attributes", {})
        if metrics is not None:
            metrics.queue_depth(
                label,
                int(attrs.get("ApproximateNumberOfMessages", 0)),
                int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            )

    return check


def _flow_check(sagemaker: Any, arn: str, buckets: dict[str, str]) -> Callable[[], Awaitable[None]]:
    name = flow_name(arn)

    async def check() -> None:
        desc = await sagemaker.describe_flow_definition(FlowDefinitionName=name)
        found = str(desc.get("FlowDefinitionArn", ""))
        if found and found != arn:
            raise DependencyError(
                f"the flow definition {name!r} of this account and region is {found}, "
                "not the ARN the route names",
                permanent=True,
            )
        status = str(desc.get("FlowDefinitionStatus", ""))
        if status in ("Failed", "Deleting"):
            raise DependencyError(f"flow definition status {status}", permanent=True)
        if status != "Active":
            raise DependencyError(f"flow definition status {status}", permanent=False)
        path = str(desc.get("OutputConfig", {}).get("S3OutputPath", ""))
        if path.startswith("s3://"):
            buckets[arn] = path[5:].partition("/")[0]

    return check


def _bucket_check(s3: Any, arn: str, buckets: dict[str, str]) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        bucket = buckets.get(arn)
        if bucket is None:  # the flow's own check has not read it yet (or failed)
            return
        try:
            await s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            c = classify(exc)
            if c.kind is ErrorKind.ACCESS:
                return  # exists; the worker needs GetObject under the prefix, not ListBucket
            if c.code in ("404", "NoSuchBucket", "NotFound"):
                raise DependencyError(
                    f"output bucket {bucket!r} does not exist", permanent=True
                ) from exc
            raise

    return check


def _a2i_check(a2i: Any) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        try:
            await a2i.describe_human_loop(HumanLoopName=_PROBE_LOOP)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status >= 500 or status in (401, 403):
                raise

    return check


def build_dependencies(
    *,
    aws: AwsClients,
    queues: QueueUrls,
    routes: Routes,
    ledger: Ledger,
    metrics: Metrics | None = None,
) -> list[Dependency]:
    """Every dependency of a worker with these settings, in the order they are checked."""
    deps: list[Dependency] = []
    for label, field, url in (
        ("requests", "requests_queue_url", queues.requests),
        ("events", "events_queue_url", queues.events),
        ("results", "results_queue_url", queues.results),
        ("requests_dlq", "requests_dlq_url", queues.requests_dlq),
        ("events_dlq", "events_dlq_url", queues.events_dlq),
    ):
        if url is None:
            continue
        key = label if label.endswith("_dlq") else f"{label}_queue"
        check = _queue_check(aws.sqs, url, label, metrics)
        deps.append(Dependency(key, f"{env_var(field)} (queue {queue_name(url)!r})", check))
    buckets: dict[str, str] = {}
    seen: set[str] = set()
    for name, route in routes.items():
        arn = route.flow_definition_arn
        if route.shadow or arn in seen:
            continue  # a shadow route never starts a loop; one check per flow definition
        seen.add(arn)
        where = f"{env_var('routes_file')}: route {name!r}: flow definition {flow_name(arn)!r}"
        deps.append(Dependency(f"flow:{name}", where, _flow_check(aws.sagemaker, arn, buckets)))
        deps.append(Dependency(f"output_bucket:{name}", where, _bucket_check(aws.s3, arn, buckets)))
    deps.append(Dependency("ledger", env_var("ledger_url"), ledger.ping))
    deps.append(Dependency("a2i", "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME", _a2i_check(aws.a2i)))
    return deps


async def verify_at_start(
    deps: list[Dependency],
    readiness: Readiness,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - each check's own bound, not the caller's
) -> None:
    """Check every dependency once, concurrently (each flow before its bucket).

    Permanent failures raise one :class:`ConfigError` per dependency (grouped); the
    others are noted in ``readiness`` (the worker starts not ready and heals when the
    periodic checks pass).
    """
    found: dict[int, ConfigError] = {}

    async def one(i: int, dep: Dependency) -> None:
        try:
            with anyio.fail_after(timeout):
                await dep.verify()
        except TimeoutError:
            readiness.failures[dep.key] = f"no answer within {timeout:g} s"
        except DependencyError as exc:
            if exc.permanent:
                found[i] = ConfigError(f"{dep.setting}: {exc.reason}")
            else:
                readiness.failures[dep.key] = exc.reason
        else:
            readiness.failures.pop(dep.key, None)

    # concurrently, buckets last: a flow's check reads which bucket its output goes to
    for stage in (False, True):
        async with anyio.create_task_group() as tg:
            for i, dep in enumerate(deps):
                if dep.key.startswith("output_bucket:") is stage:
                    tg.start_soon(one, i, dep, name=f"verify {dep.key}")
    problems = [found[i] for i in sorted(found)]  # in the order of the settings
    if problems:
        raise ExceptionGroup("dependencies failed their start-up check", problems)
    if readiness.failures:
        log.warning("starting not ready", failing=sorted(readiness.failures))
