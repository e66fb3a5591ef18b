"""An upstream's answer the gateway cannot read (nested past the depth limit, or over the
line cap) fails its call at once, with a clear error and a warning naming the upstream,
instead of leaving the caller waiting for the request timeout (UP-4, DS-2); the upstream
stays in service."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from bastion.errors import PeerError
from tests.gateway.test_faults import ERAS, GOOD, connected, echo, run_gateway, script

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@ERAS
@pytest.mark.parametrize("tool", ["deep", "huge"])
async def test_an_unreadable_answer_fails_its_call_at_once_UP4(
    tmp_path: Path, era: object, tool: str
) -> None:
    servers = {"good": GOOD, "odd": script("unreadable_answer.py")}
    with run_gateway(tmp_path, servers) as gw:
        async with connected(gw.url, era=era) as s:
            started = time.monotonic()
            with anyio.fail_after(20), pytest.raises(PeerError) as refused:
                await s.call_tool(f"odd__{tool}", {})
            took = time.monotonic() - started
            await echo(s, "odd__echo", "still serving", within=5)
            await echo(s, "good__echo", "unaffected", within=5)
        log = gw.stderr()
    assert took < 10, f"the call waited {took:.1f} s"
    assert refused.value.code == -32603, refused.value
    assert "could not be read" in str(refused.value), refused.value
    assert "upstream odd sent 1 message(s) that could not be read" in log, log
