"""Typed async client of the emulator's ``/_emulator/`` control API (aiohttp).

What no AWS API offers: reviewers, quotas, faults, finishing loops by hand, counters. Flow
definitions are created through SageMaker's own API (:mod:`a2i_emulator.aws_setup`).
One method per route (see docs/INTERNALS.md "Emulator"). Every method raises
:class:`ControlAPIError` (with the HTTP status and the server's reason) on a non-2xx answer.
Use as ``async with EmulatorControl(url) as ctl: ...`` or call :meth:`close` yourself.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal, cast

import aiohttp

__all__ = ["ControlAPIError", "EmulatorControl"]

Outcome = Literal["Completed", "Expired", "InternalError", "Stopped"]


class ControlAPIError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class EmulatorControl:
    """Client of one emulator's control API at ``base_url``."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmulatorControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base_url}/_emulator{path}"
        async with self._session.request(method, url, json=body, params=params) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 300:
                reason = payload.get("error", "") if isinstance(payload, dict) else str(payload)
                raise ControlAPIError(resp.status, reason)
            return payload

    async def get_quotas(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", "/quotas"))

    async def put_quotas(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge ``{"max_in_progress"?, "rates"?: {op: {"rate", "burst"} | None}}``."""
        return cast(dict[str, Any], await self._request("PUT", "/quotas", patch))

    async def get_faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", "/faults"))

    async def put_faults(self, patch: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("PUT", "/faults", patch))

    async def get_reviewers(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", "/reviewers"))

    async def put_reviewers(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge into the default ReviewerSpec (flows without their own spec use it)."""
        return cast(dict[str, Any], await self._request("PUT", "/reviewers", patch))

    async def get_flow_reviewers(self, name: str) -> dict[str, Any]:
        """The flow's ReviewerSpec (``"own": false`` when it follows the default one)."""
        path = f"/flow-definitions/{name}/reviewers"
        return cast(dict[str, Any], await self._request("GET", path))

    async def put_flow_reviewers(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        path = f"/flow-definitions/{name}/reviewers"
        return cast(dict[str, Any], await self._request("PUT", path, patch))

    async def finish(
        self, name: str, outcome: Outcome = "Completed", answers: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Finish a loop now; returns it as DescribeHumanLoop shows it afterwards."""
        body: dict[str, Any] = {"outcome": outcome}
        if answers is not None:
            body["answers"] = answers
        return cast(
            dict[str, Any], await self._request("POST", f"/human-loops/{name}/finish", body)
        )

    async def counters(self, *, detail: bool = False) -> dict[str, Any]:
        params = {"detail": "1"} if detail else None
        return cast(dict[str, Any], await self._request("GET", "/counters", params=params))

    async def reset(self, *, everything: bool = False) -> None:
        """Forget loops and counters (``everything``: also quotas, faults, default reviewers)."""
        await self._request("POST", "/reset", {"all": True} if everything else None)

    async def drain(self, max_wait: float = 10.0) -> None:
        """Wait until queued events and outputs have been sent (delayed events excepted)."""
        await self._request("POST", "/drain", params={"timeout": str(max_wait)})
