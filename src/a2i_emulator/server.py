"""aiohttp app: A2I runtime (REST-JSON), the SageMaker flow-definition API (JSON 1.1 on
``POST /`` by ``X-Amz-Target``) and the ``/_emulator/`` control API, on one port.

Promises:
- Every operation answers as its service's protocol says, serialized from the botocore
  model (:mod:`a2i_emulator.wire`): 200 with the output shape, or the error shape with the
  model's status code, which every SDK maps to its exception class.
- Control-API bodies are strict: an unknown key is a 400 that lists the known keys.
- :class:`EmulatorServer` runs the app on 127.0.0.1 (ephemeral port by default), either on
  the caller's event loop (:meth:`EmulatorServer.start`) or on its own loop in a daemon
  thread (:meth:`EmulatorServer.start_in_thread`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from aiohttp import web

from a2i_emulator.engine import ControlError, Emulator, EmulatorSettings, internal_error_code
from a2i_emulator.errors import ApiError
from a2i_emulator.model import (
    A2I_RUNTIME,
    SAGEMAKER,
    SAGEMAKER_OPERATIONS,
    service_model,
    service_of,
)
from a2i_emulator.strict import check_keys
from a2i_emulator.wire import JSON_CONTENT_TYPES, OutputShapeError, error_response, serialize_output

__all__ = ["EmulatorConfig", "EmulatorServer", "build_app"]

log = structlog.get_logger(__name__)

_JSON = "application/json"
_REQUEST_IDS = itertools.count(1)
_ID_PREFIX = os.urandom(4).hex()


@dataclass
class EmulatorConfig:
    """How to run one emulator (see docs/INTERNALS.md "Emulator")."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    s3_endpoint_url: str | None = None  # moto; None -> no output.json writes (errors counted)
    events_endpoint_url: str | None = None  # moto EventBridge; None -> events not emitted
    event_bus_name: str = "default"
    seed: int | None = None
    aws_access_key_id: str = "testing"
    aws_secret_access_key: str = "testing"  # noqa: S105 - dummy credentials for moto
    flow_activation_seconds: float = 0.1  # CreateFlowDefinition: Initializing this long
    flow_deletion_seconds: float = 0.1  # DeleteFlowDefinition: Deleting this long


def _request_id() -> str:
    return f"{_ID_PREFIX}-{next(_REQUEST_IDS):012d}"


def _json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        content_type=_JSON,
        headers={"x-amzn-RequestId": _request_id()},
    )


def _api_error(operation: str | None, exc: ApiError) -> web.Response:
    service = A2I_RUNTIME if operation is None else service_of(operation)
    status, headers, body = error_response(service, exc.code, exc.message)
    return web.Response(
        body=body, status=status, headers={**headers, "x-amzn-RequestId": _request_id()}
    )


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _answer(emulator: Emulator, operation: str, request: web.Request) -> web.Response:
    body = await request.read() if request.can_read_body else b""
    try:
        result = await emulator.call(
            operation, path_params=request.match_info, query=request.query, body=body
        )
        if isinstance(result, int):
            return web.Response(status=result)
        payload = serialize_output(operation, result)
    except ApiError as exc:
        return _api_error(operation, exc)
    except OutputShapeError:
        log.exception("emulator_output_shape_error", operation=operation)
        return _api_error(operation, ApiError(internal_error_code(operation), "Internal error."))
    content_type = JSON_CONTENT_TYPES[service_model(service_of(operation)).protocol]
    return web.Response(
        body=payload,
        headers={"Content-Type": content_type, "x-amzn-RequestId": _request_id()},
    )


def _operation(emulator: Emulator, operation: str) -> _Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await _answer(emulator, operation, request)

    return handler


def _sagemaker(emulator: Emulator) -> _Handler:
    """``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` (JSON 1.1)."""
    prefix = service_model(SAGEMAKER).metadata["targetPrefix"] + "."
    served = frozenset(SAGEMAKER_OPERATIONS)

    async def handler(request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        operation = target[len(prefix) :] if target.startswith(prefix) else ""
        if operation not in served:
            status, headers, body = error_response(
                SAGEMAKER,
                "UnknownOperationException",
                f"Operation {target or '(no X-Amz-Target)'} is not served by this emulator.",
            )
            return web.Response(body=body, status=status, headers=headers)
        return await _answer(emulator, operation, request)

    return handler


async def _read_json(request: web.Request, *, required: bool = True) -> Any:
    raw = await request.read()
    if not raw:
        if required:
            raise ControlError(400, "a JSON body is required")
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ControlError(400, "body is not valid JSON") from None


def _strict(body: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(400, "body must be an object")
    try:
        check_keys(body, known, where)
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    return body


def _describe_view(loop: dict[str, Any]) -> dict[str, Any]:
    """A loop as DescribeHumanLoop's JSON shows it (timestamps as the model says)."""
    return dict(json.loads(serialize_output("DescribeHumanLoop", loop)))


def _control(fn: _Handler) -> _Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except ControlError as exc:
            return _json_response({"error": exc.message}, status=exc.status)

    return handler


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``."""
    app = web.Application(client_max_size=8 * 1024 * 1024)

    async def get_flow_reviewers(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.flow_reviewers(request.match_info["name"]))

    async def get_quotas(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.quotas.to_json(emulator_ops()))

    async def put_quotas(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.update_quotas(await _read_json(request)))

    async def get_faults(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.faults.to_json(emulator_ops()))

    async def put_faults(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.update_faults(await _read_json(request)))

    async def get_reviewers(request: web.Request) -> web.StreamResponse:
        return _json_response(emulator.default_reviewers.to_json())

    async def put_reviewers(request: web.Request) -> web.StreamResponse:
        spec = emulator.set_default_reviewers(await _read_json(request))
        return _json_response(spec.to_json())

    async def put_flow_reviewers(request: web.Request) -> web.StreamResponse:
        spec = emulator.set_flow_reviewers(request.match_info["name"], await _read_json(request))
        return _json_response(spec.to_json())

    async def finish(request: web.Request) -> web.StreamResponse:
        body = _strict(await _read_json(request), ("outcome", "answers"), "finish")
        loop = await emulator.finish_by_hand(
            request.match_info["name"], body.get("outcome"), body.get("answers")
        )
        return _json_response(_describe_view(loop))

    async def counters(request: web.Request) -> web.StreamResponse:
        detail = request.query.get("detail") in ("1", "true")
        return _json_response(emulator.counters_json(detail=detail))

    async def reset(request: web.Request) -> web.StreamResponse:
        body = _strict(await _read_json(request, required=False), ("all",), "reset")
        everything = body.get("all") is True
        emulator.reset(everything=everything)
        return _json_response({"reset": True, "all": everything})

    async def drain(request: web.Request) -> web.StreamResponse:
        try:
            await emulator.publisher.drain(float(request.query.get("timeout", "10")))
        except TimeoutError:
            raise ControlError(409, "publisher did not drain in time") from None
        return _json_response({"drained": True})

    def emulator_ops() -> tuple[str, ...]:
        return tuple(emulator.counters)

    c = "/_emulator"
    app.router.add_get(f"{c}/flow-definitions/{{name}}/reviewers", _control(get_flow_reviewers))
    app.router.add_put(f"{c}/flow-definitions/{{name}}/reviewers", _control(put_flow_reviewers))
    app.router.add_get(f"{c}/quotas", _control(get_quotas))
    app.router.add_put(f"{c}/quotas", _control(put_quotas))
    app.router.add_get(f"{c}/faults", _control(get_faults))
    app.router.add_put(f"{c}/faults", _control(put_faults))
    app.router.add_get(f"{c}/reviewers", _control(get_reviewers))
    app.router.add_put(f"{c}/reviewers", _control(put_reviewers))
    app.router.add_post(f"{c}/human-loops/{{name}}/finish", _control(finish))
    app.router.add_get(f"{c}/counters", _control(counters))
    app.router.add_post(f"{c}/reset", _control(reset))
    app.router.add_post(f"{c}/drain", _control(drain))

    app.router.add_post("/human-loops/stop", _operation(emulator, "StopHumanLoop"))
    app.router.add_post("/human-loops", _operation(emulator, "StartHumanLoop"))
    app.router.add_get("/human-loops", _operation(emulator, "ListHumanLoops"))
    app.router.add_get("/human-loops/{HumanLoopName}", _operation(emulator, "DescribeHumanLoop"))
    app.router.add_delete("/human-loops/{HumanLoopName}", _operation(emulator, "DeleteHumanLoop"))
    app.router.add_post("/", _sagemaker(emulator))
    return app


class EmulatorServer:
    """An emulator and its HTTP server on 127.0.0.1."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.emulator = Emulator(EmulatorSettings(**asdict(config)))
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = ephemeral) from the running loop; returns the base URL."""
        await self.emulator.start()
        self._runner = web.AppRunner(
            build_app(self.emulator), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert isinstance(server, asyncio.base_events.Server)
        bound_port = server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{bound_port}"
        log.info("emulator_started", url=self.url)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.stop()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Run on a fresh event loop in a daemon thread; returns the base URL once serving."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        result: dict[str, Any] = {}

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                result["url"] = loop.run_until_complete(self.start(host, port))
            except BaseException as exc:  # surfaced to the caller below
                result["error"] = exc
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread_loop = loop
        self._thread = threading.Thread(target=run, name="a2i-emulator", daemon=True)
        self._thread.start()
        started.wait()
        if "error" in result:
            raise result["error"]
        return str(result["url"])

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._thread_loop = None
        self._thread = None
