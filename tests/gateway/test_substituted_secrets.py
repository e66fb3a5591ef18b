"""UP-4, IN-5 (red team w, finding 3): a credential given an upstream as ``${VAR}`` in its
``args`` (``--api-key ${SEARCH_API_KEY}``), not only through ``env`` or ``headers``, is masked
wherever the upstream may repeat it: a tool's result, ``/readyz``'s last error and the
gateway's log. Substituted paths and words stay readable."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from tests.gateway.test_faults import connected, run_gateway, script, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SECRET = "sr-live-7f3a9c2e41d8b6a0"  # no known token shape: only the configuration knows it


async def test_up4_in5_a_credential_substituted_into_args_is_masked_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_API_KEY", SECRET)
    monkeypatch.setenv("SEARCH_MODE", "production")
    monkeypatch.setenv("SEARCH_DATA", str(tmp_path / "cache"))
    args = [
        "--api-key",
        "${SEARCH_API_KEY}",
        "--mode",
        "${SEARCH_MODE}",
        "--data",
        "${SEARCH_DATA}",
    ]
    servers = {
        "search": script("repeats_its_argv.py", *args),
        "broken": script("repeats_its_argv.py", "--refuse-start", *args),
    }
    with run_gateway(tmp_path, servers, ready=False) as gw:
        async with httpx.AsyncClient(timeout=5) as http:
            entries = await wait_until(
                http,
                gw,
                lambda u: u["search"]["state"] == "ready" and bool(u["broken"]["lastError"]),
                "search ready, broken failed",
                timeout=30,
            )
        async with connected(gw.url) as session:
            with anyio.fail_after(10):
                out = await session.call_tool("search__search", {})
        log = gw.stderr()
    text = out["content"][0]["text"]
    assert out.get("isError") is True
    expected = f"--api-key [REDACTED] --mode production --data {tmp_path / 'cache'}"
    assert text == f"search failed; invoked as: search-server {expected}"
    reason = entries["broken"]["lastError"]
    assert f"bad arguments; invoked as: search-server --refuse-start {expected}" in reason
    assert SECRET not in log and "[REDACTED]" in log
