"""The control API's refusals: bad values and, above all, keys nobody reads."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from a2i_emulator import ControlAPIError, EmulatorControl


async def test_control_api_refusals(control: EmulatorControl, flow_arn: str) -> None:
    with pytest.raises(ControlAPIError) as info:
        await control.finish("no-such-loop", "Completed")
    assert info.value.status == 404
    with pytest.raises(ControlAPIError) as info:
        await control.put_quotas({"max_in_progress": -1})
    assert info.value.status == 400
    with pytest.raises(ControlAPIError) as info:
        await control.put_flow_reviewers("no-such-flow", {"mode": "manual"})
    assert info.value.status == 404
    with pytest.raises(ControlAPIError):
        await control.put_reviewers({"delay": {"distribution": "gamma"}})
    assert (await control.get_reviewers())["mode"] == "auto"
    own = await control.get_flow_reviewers("manual-flow")
    assert own["own"] is True
    assert own["mode"] == "manual"
    assert flow_arn.endswith(":flow-definition/manual-flow")


@pytest.mark.parametrize(
    ("call", "body", "where"),
    [
        ("put_reviewers", {"answers": {"copy_from": {"total": "x"}}}, "in answers; known keys"),
        ("put_reviewers", {"delay_seconds": 2}, "in reviewers; known keys"),
        ("put_reviewers", {"delay": {"distribution": "fixed", "mean": 2}}, "delay (fixed)"),
        ("put_quotas", {"max_inprogress": 2}, "in quotas; known keys"),
        ("put_quotas", {"rates": {"StartHumanLoop": {"rate": 1, "bust": 2}}}, "rate spec"),
        ("put_faults", {"event": {"drop": 1}}, "in faults; known keys"),
        ("put_faults", {"events": {"drops": 1}}, "faults.events"),
    ],
)
async def test_control_api_rejects_unknown_keys(
    control: EmulatorControl, call: str, body: dict[str, Any], where: str
) -> None:
    """A key nobody reads is a 400 naming it and the known keys, never silently ignored."""
    with pytest.raises(ControlAPIError) as info:
        await getattr(control, call)(body)
    assert info.value.status == 400
    assert where in info.value.reason
    assert "unknown key" in info.value.reason


async def test_control_api_finish_and_reset_bodies_are_strict(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path, body in (
            ("/_emulator/human-loops/x/finish", {"outcome": "Completed", "answer": {}}),
            ("/_emulator/reset", {"everything": True}),
        ):
            async with http.post(url + path, json=body) as resp:
                assert resp.status == 400
                assert "known keys" in (await resp.json())["error"]
