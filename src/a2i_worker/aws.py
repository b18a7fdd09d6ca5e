"""The aioboto3 session and the long-lived AWS clients of one worker process.

:class:`AwsClients` opens one client per service (SQS, S3, EventBridge, DynamoDB,
A2I runtime, SageMaker for the flow definitions) from one ``aioboto3.Session`` and
closes them together. Endpoints and
region come from the standard AWS environment unless overridden:

- region: explicit ``region`` > ``AWS_REGION`` > ``AWS_DEFAULT_REGION`` > profile;
- endpoint: explicit ``endpoint_urls[service]`` > ``AWS_ENDPOINT_URL_<SERVICE_ID>``
  (``..._SQS``, ``..._S3``, ``..._EVENTBRIDGE``, ``..._DYNAMODB``,
  ``..._SAGEMAKER_A2I_RUNTIME``, ``..._SAGEMAKER``) > ``AWS_ENDPOINT_URL`` > AWS. The
  environment part is botocore's own configured-endpoint chain, which aiobotocore 2.25 honours.

Retries: botocore's and ours never stack (the policy per kind of call is the table in
:mod:`a2i_worker.backoff`). A client whose calls the worker retries itself has botocore
retries off (``standard`` mode, ``total_max_attempts=1``): the A2I runtime (every
ThrottlingException must reach the adaptive limiter; 5xx retried by ``A2I_TRANSIENT``)
and a second SQS client, :attr:`AwsClients.sqs_no_retries`, for the loops that retry by
themselves (receive, batched deletes and visibility changes, enqueue). Every other
call, on :attr:`AwsClients.sqs` and the other clients, keeps botocore's ``standard``
mode with ``max_attempts`` (3) and no loop of ours. The pure helpers
(:func:`resolve_region`, :func:`client_config`, :func:`client_kwargs`) build everything
that is not I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import aioboto3
from aiobotocore.config import AioConfig

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_events import EventBridgeClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient
    from types_aiobotocore_sqs import SQSClient

__all__ = [
    "A2I_SERVICE",
    "SERVICES",
    "AwsClientSettings",
    "AwsClients",
    "ServiceName",
    "client_config",
    "client_kwargs",
    "endpoint_env_var",
    "endpoints_from_environ",
    "resolve_region",
]

ServiceName = Literal["sqs", "s3", "events", "dynamodb", "sagemaker-a2i-runtime", "sagemaker"]
A2I_SERVICE: Final = "sagemaker-a2i-runtime"
SERVICES: Final[tuple[ServiceName, ...]] = (
    "sqs",
    "s3",
    "events",
    "dynamodb",
    A2I_SERVICE,
    "sagemaker",
)

#: Key of the second SQS client (botocore retries off) in AwsClients.
_SQS_NO_RETRIES: Final = "sqs/no-retries"

# botocore service ids, as used in AWS_ENDPOINT_URL_<SERVICE_ID>.
_SERVICE_IDS: Final[Mapping[str, str]] = {
    "sqs": "SQS",
    "s3": "S3",
    "events": "EventBridge",
    "dynamodb": "DynamoDB",
    A2I_SERVICE: "SageMaker A2I Runtime",
    "sagemaker": "SageMaker",
}


@dataclass(frozen=True)
class AwsClientSettings:
    """How the clients are built. Defaults suit one worker process."""

    region: str | None = None
    """Explicit region; ``None`` -> ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / profile."""
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)
    """Per-service endpoint overrides (keys: service names as in :data:`SERVICES`)."""
    max_pool_connections: int = 64
    """HTTP connections per client (aiohttp connector limit)."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    """Must exceed SQS long-poll ``WaitTimeSeconds`` (max 20)."""
    max_attempts: int = 3
    """Total attempts (first call included) for every client that keeps botocore's
    retries (all but the A2I runtime and :attr:`AwsClients.sqs_no_retries`)."""


def endpoint_env_var(service: str) -> str:
    """``AWS_ENDPOINT_URL_<SERVICE_ID>`` as botocore spells it for ``service``."""
    service_id = _SERVICE_IDS.get(service, service)
    return "AWS_ENDPOINT_URL_" + service_id.replace(" ", "_").replace("-", "_").upper()


def endpoints_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Per-service endpoints an environment mapping configures, as botocore would read them.

    ``AWS_ENDPOINT_URL_<SERVICE_ID>`` wins over ``AWS_ENDPOINT_URL``; nothing when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true. For passing an environment that is
    not ``os.environ`` (tests, the demo): botocore itself only reads the real one.
    """
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return {}
    found: dict[str, str] = {}
    for service in SERVICES:
        url = environ.get(endpoint_env_var(service)) or environ.get("AWS_ENDPOINT_URL")
        if url:
            found[service] = url
    return found


def credentials_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``aioboto3.Session`` credential arguments from an environment mapping (or none)."""
    key_id = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        return {}
    creds = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    token = environ.get("AWS_SESSION_TOKEN")
    if token:
        creds["aws_session_token"] = token
    return creds


def resolve_region(region: str | None, environ: Mapping[str, str]) -> str | None:
    """Explicit region, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``None``."""
    return region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def client_config(
    service: str, settings: AwsClientSettings, *, own_retries: bool = False
) -> AioConfig:
    """The botocore config of one client: pool, timeouts, retries (off for A2I, and
    when the caller retries by itself: ``own_retries``)."""
    off = own_retries or service == A2I_SERVICE
    attempts = 1 if off else settings.max_attempts
    retries: dict[str, Any] = {"total_max_attempts": attempts, "mode": "standard"}
    return AioConfig(
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=retries,
    )


def client_kwargs(
    service: str,
    settings: AwsClientSettings,
    environ: Mapping[str, str],
    *,
    own_retries: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``session.client(service, **kwargs)``.

    ``endpoint_url`` is passed only when explicitly overridden, so that botocore's
    configured-endpoint chain (``AWS_ENDPOINT_URL_*`` of the real environment, config
    files) applies otherwise.
    """
    kwargs: dict[str, Any] = {"config": client_config(service, settings, own_retries=own_retries)}
    region = resolve_region(settings.region, environ)
    if region is not None:
        kwargs["region_name"] = region
    override = settings.endpoint_urls.get(service)
    if override:
        kwargs["endpoint_url"] = override
    return kwargs


class AwsClients:
    """Long-lived aioboto3 clients of one process; ``async with AwsClients() as aws``.

    Attributes are valid inside the context only. ``services`` limits which clients are
    opened (all six by default); touching a client that was not opened raises. With
    ``"sqs"`` come two SQS clients: :attr:`sqs` and :attr:`sqs_no_retries`.

    ``environ`` (default ``os.environ``) supplies the region; when given explicitly it
    also supplies credentials (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
    ``AWS_SESSION_TOKEN``, unless a ``session`` is passed) and endpoints
    (:func:`endpoints_from_environ`, below explicit ``settings.endpoint_urls``).
    """

    def __init__(
        self,
        settings: AwsClientSettings | None = None,
        *,
        session: Any | None = None,
        services: tuple[ServiceName, ...] = SERVICES,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        settings = settings or AwsClientSettings()
        if environ is not None:
            merged = {**endpoints_from_environ(environ), **settings.endpoint_urls}
            settings = replace(settings, endpoint_urls=merged)
            if session is None:
                session = aioboto3.Session(**credentials_from_environ(environ))
        self.settings = settings
        self.session: Any = session if session is not None else aioboto3.Session()
        self._services = services
        self._environ = environ if environ is not None else os.environ
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}

    async def __aenter__(self) -> AwsClients:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            for service in self._services:
                kwargs = client_kwargs(service, self.settings, self._environ)
                client = await stack.enter_async_context(self.session.client(service, **kwargs))
                self._clients[service] = client
                if service == "sqs":
                    kwargs = client_kwargs("sqs", self.settings, self._environ, own_retries=True)
                    bare = await stack.enter_async_context(self.session.client("sqs", **kwargs))
                    self._clients[_SQS_NO_RETRIES] = bare
        except BaseException:
            await stack.aclose()
            self._clients.clear()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._clients.clear()
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def _get(self, service: str) -> Any:
        try:
            return self._clients[service]
        except KeyError:
            raise RuntimeError(f"AwsClients: {service} client is not open") from None

    @property
    def sqs(self) -> SQSClient:
        return cast("SQSClient", self._get("sqs"))

    @property
    def sqs_no_retries(self) -> SQSClient:
        """SQS with botocore retries off, for the callers that retry by themselves
        (:mod:`a2i_worker.backoff`): the consumers' receives, the batched deletes and
        visibility changes, ``enqueue``."""
        return cast("SQSClient", self._get(_SQS_NO_RETRIES))

    @property
    def s3(self) -> S3Client:
        return cast("S3Client", self._get("s3"))

    @property
    def events(self) -> EventBridgeClient:
        return cast("EventBridgeClient", self._get("events"))

    @property
    def dynamodb(self) -> DynamoDBClient:
        return cast("DynamoDBClient", self._get("dynamodb"))

    @property
    def a2i(self) -> AugmentedAIRuntimeClient:
        return cast("AugmentedAIRuntimeClient", self._get(A2I_SERVICE))

    @property
    def sagemaker(self) -> SageMakerClient:
        """SageMaker (control plane): DescribeFlowDefinition at start and in readiness."""
        return cast("SageMakerClient", self._get("sagemaker"))
