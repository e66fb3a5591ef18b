"""The gateway in front of real third-party MCP servers that nobody here wrote, each started
by the gateway itself the way users configure them, and driven by real third-party clients.

Upstreams (stdio children of ``bastion``):

* ``everything``: the TypeScript ``@modelcontextprotocol/server-everything`` through
  ``npx -y @modelcontextprotocol/server-everything@2026.8.31 stdio`` (legacy era);
* ``time``: PyPI's ``mcp-server-time`` through ``uvx mcp-server-time@2026.10.19``;
* ``sdk``: ``tests/interop/sdk_server.py``, written with the official Python SDK ``mcp`` 2.x.

``scripts/bootstrap --test-tools`` installs both packages under ``.tools/`` (``npx`` run
in ``.tools/everything`` finds the install there; ``uvx`` reuses the tool environment in
``.tools/uv-tools``). The configuration runs both offline with a private npm cache, so a
test run downloads nothing, and a missing install fails instead of hiding behind a cache
that someone warmed by hand.

Clients: the MCP Inspector CLI through ``bastion serve`` (Streamable HTTP) and through
``bastion stdio``, and the official Python SDK's ``Client`` through ``bastion serve`` in the
legacy era and in 2026-07-28. Each lists the namespaced tools (``<server>__<tool>``) and
calls one tool of each upstream, checking what the upstream really answered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
import yaml
from mcp import Client

from tests.support import (
    BASTION,
    PYTHON,
    ROOT,
    TOOLS,
    free_port,
    node_env,
    require_tool,
    run_inspector,
    stop_process,
    wait_for_port,
)

# Pinned here and in scripts/bootstrap (which installs them): keep the two in step.
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31"
TIME_PACKAGE = "mcp-server-time@2026.10.19"
EVERYTHING_DIR = TOOLS / "everything"
UV_TOOL_DIR = TOOLS / "uv-tools"
SDK_SERVER = ROOT / "tests" / "interop" / "sdk_server.py"

# A first start of npx/uvx can take most of a minute; once warmed, all three are ready in ~3 s.
STARTUP_TIMEOUT = 120.0
READY_TIMEOUT = STARTUP_TIMEOUT + 30.0  # the gateway's own wait, plus its startup
CLI_TIMEOUT = 60.0  # one Inspector run through bastion serve
STDIO_CLI_TIMEOUT = READY_TIMEOUT  # one Inspector run that also starts bastion stdio
SDK_TIMEOUT = 60.0
EXIT_OK = 0
LEGACY, MODERN = "2025-11-25", "2026-07-28"

# pytest-timeout's default (120 s) is shorter than a cold start may need.
pytestmark = [pytest.mark.interop, pytest.mark.timeout(READY_TIMEOUT + CLI_TIMEOUT)]

# Some tools of each upstream, as the gateway exposes them.
EXPECTED_TOOLS = {
    "everything": {"everything__echo", "everything__get-sum", "everything__get-tiny-image"},
    "time": {"time__get_current_time", "time__convert_time"},
    "sdk": {"sdk__add", "sdk__ask_name", "sdk__ask_llm"},
}
ECHO_MESSAGE = "interop through bastion: ünïcode"
TIMEZONE, TIMEZONE_OFFSET = "Asia/Tokyo", timedelta(hours=9)  # no daylight saving time
CLOCK_SLACK = timedelta(minutes=5)


# -- checks of what each upstream answered ------------------------------------------------


def check_echo(result: dict[str, Any]) -> None:
    """``everything``'s ``echo`` answers ``Echo: <message>``."""
    assert result["content"] == [{"type": "text", "text": f"Echo: {ECHO_MESSAGE}"}], result


def check_time(result: dict[str, Any]) -> None:
    """``time``'s ``get_current_time`` answers the current time in the asked zone, as JSON."""
    assert not result.get("isError"), result
    [content] = result["content"]
    assert content["type"] == "text", result
    answer = json.loads(content["text"])
    assert answer["timezone"] == TIMEZONE, answer
    assert answer["is_dst"] is False, answer
    when = datetime.fromisoformat(answer["datetime"])
    assert when.utcoffset() == TIMEZONE_OFFSET, answer
    assert abs(when - datetime.now(UTC)) < CLOCK_SLACK, answer


def check_add(result: dict[str, Any]) -> None:
    """``sdk``'s ``add`` answers the sum, as text and as structured content."""
    assert not result.get("isError"), result
    assert result["content"] == [{"type": "text", "text": "42"}], result
    assert result.get("structuredContent") == {"result": 42}, result


@dataclass(frozen=True)
class Call:
    """One tool call through the gateway and the check of its result (wire-shaped JSON)."""

    tool: str
    arguments: dict[str, Any]
    check: Callable[[dict[str, Any]], None]


CALLS = {
    "everything": Call("everything__echo", {"message": ECHO_MESSAGE}, check_echo),
    "time": Call("time__get_current_time", {"timezone": TIMEZONE}, check_time),
    "sdk": Call("sdk__add", {"a": 2, "b": 40}, check_add),
}


def check_catalog(names: list[str]) -> None:
    """Every upstream's tools are there, each exactly once and under its server's prefix."""
    assert len(names) == len(set(names)), names
    for server, expected in EXPECTED_TOOLS.items():
        missing = expected - set(names)
        assert not missing, f"{server}: {sorted(missing)} missing from {sorted(names)}"
    prefixes = tuple(f"{server}__" for server in EXPECTED_TOOLS)
    assert all(name.startswith(prefixes) for name in names), names


# -- the gateway --------------------------------------------------------------------------


def uvx() -> str:
    """The ``uvx`` that comes with uv (on PATH, or where ``pip install --user`` puts it)."""
    found = shutil.which("uvx") or str(Path.home() / ".local" / "bin" / "uvx")
    return str(require_tool(Path(found)))


def gateway_config() -> dict[str, Any]:
    """``bastion.yaml`` for the three upstreams, each started as its users would start it."""
    require_tool(EVERYTHING_DIR / "node_modules" / ".bin" / "mcp-server-everything")
    require_tool(UV_TOOL_DIR / "mcp-server-time")
    return {
        "servers": {
            "everything": {
                "command": "npx",
                "args": ["-y", EVERYTHING_PACKAGE, "stdio"],
                # npx finds the package installed in its working directory; offline and
                # with a cache of its own, it can neither download nor use a stray cache.
                "cwd": str(EVERYTHING_DIR),
                "env": {
                    "npm_config_offline": "true",
                    "npm_config_cache": str(EVERYTHING_DIR / ".npm-cache"),
                    "npm_config_update_notifier": "false",
                },
                "startup_timeout": STARTUP_TIMEOUT,
            },
            "time": {
                "command": uvx(),
                "args": [TIME_PACKAGE, "--local-timezone", "UTC"],
                "env": {"UV_TOOL_DIR": str(UV_TOOL_DIR), "UV_OFFLINE": "1"},
                "startup_timeout": STARTUP_TIMEOUT,
            },
            "sdk": {
                "command": PYTHON,
                "args": [str(SDK_SERVER), "stdio"],
                "startup_timeout": STARTUP_TIMEOUT,
            },
        }
    }


def gateway_env() -> dict[str, str]:
    """The gateway's environment: Node 22 first on PATH, which it passes to its children."""
    env = node_env()
    env.pop("MCP_INSPECTOR_SECRET_STORE", None)
    return env


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("third-party") / "bastion.yaml"
    path.write_text(yaml.safe_dump(gateway_config(), sort_keys=False))
    return path


def wait_until_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/readyz`` until 200, the process dies, or ``READY_TIMEOUT`` passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    body = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"bastion serve exited with {proc.returncode}:\n{log.read_text()}")
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        if response.status_code == 200:
            return
        body = response.text
        time.sleep(0.1)
    raise AssertionError(
        f"upstreams not ready after {READY_TIMEOUT}s: {body}\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="module")
def gateway_url(config_path: Path) -> Iterator[str]:
    """``bastion -v serve -c bastion.yaml --port N``; its /mcp URL once every upstream is ready."""
    port = free_port()
    log = config_path.with_name("serve.log")
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(BASTION), "-v", "serve", "-c", str(config_path), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=gateway_env(),
        )
        try:
            wait_for_port(port, timeout=30)
            started = time.monotonic()
            wait_until_ready(port, proc, log)
            print(f"upstreams ready in {time.monotonic() - started:.1f}s")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            stop_process(proc, grace=15)


# -- the MCP Inspector CLI ----------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private HOME, so the Inspector's per-user files stay out of the real one."""
    return tmp_path_factory.mktemp("inspector-home")


def inspect(home: Path, server: list[str], *args: str, timeout: float = CLI_TIMEOUT) -> Any:
    """One Inspector CLI run with ``--format json``; its parsed output (exit code 0)."""
    proc = run_inspector(home, server, *args, timeout=timeout)
    assert proc.returncode == EXIT_OK, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not JSON: {proc.stdout!r}\n{proc.stderr}") from exc


def tool_call_args(call: Call) -> list[str]:
    return [
        "--method",
        "tools/call",
        "--tool-name",
        call.tool,
        "--tool-args-json",
        json.dumps(call.arguments),
    ]


def http_target(url: str) -> list[str]:
    return [url, "--transport", "http"]


def stdio_target(config_path: Path) -> list[str]:
    return [str(BASTION), "stdio", "-c", str(config_path)]


def test_inspector_lists_tools_through_serve(gateway_url: str, home: Path) -> None:
    output = inspect(home, http_target(gateway_url), "--method", "tools/list")
    check_catalog([tool["name"] for tool in output["result"]["tools"]])


@pytest.mark.parametrize("server", list(CALLS))
def test_inspector_calls_tool_through_serve(gateway_url: str, home: Path, server: str) -> None:
    call = CALLS[server]
    output = inspect(home, http_target(gateway_url), *tool_call_args(call))
    call.check(output["result"])


@pytest.mark.parametrize("server", ["time", "sdk"])  # the two upstreams that stamp results
def test_results_do_not_carry_the_upstreams_identity(
    gateway_url: str, home: Path, server: str
) -> None:
    """The client's server is Bastion: an upstream's per-hop ``serverInfo`` stamp (result
    ``_meta``, 2026-07-28) must not reach it, least of all in a 2025-11-25 session."""
    output = inspect(home, http_target(gateway_url), *tool_call_args(CALLS[server]))
    meta = output["result"].get("_meta") or {}
    stamp = meta.get("io.modelcontextprotocol/serverInfo")
    assert stamp is None or stamp.get("name") == "bastion", meta


def test_inspector_lists_tools_through_stdio(config_path: Path, home: Path) -> None:
    """The Inspector starts ``bastion stdio``, which starts the three upstreams."""
    output = inspect(
        home, stdio_target(config_path), "--method", "tools/list", timeout=STDIO_CLI_TIMEOUT
    )
    check_catalog([tool["name"] for tool in output["result"]["tools"]])


@pytest.mark.parametrize("server", list(CALLS))
def test_inspector_calls_tool_through_stdio(config_path: Path, home: Path, server: str) -> None:
    call = CALLS[server]
    output = inspect(
        home, stdio_target(config_path), *tool_call_args(call), timeout=STDIO_CLI_TIMEOUT
    )
    call.check(output["result"])


# -- the official Python SDK client -------------------------------------------------------


def wire(result: types.CallToolResult) -> dict[str, Any]:
    """A typed result as it was on the wire (camelCase keys, nothing unset)."""
    return dict(result.model_dump(mode="json", by_alias=True, exclude_none=True))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_sdk_client_lists_and_calls_through_serve(gateway_url: str, mode: str) -> None:
    with anyio.fail_after(SDK_TIMEOUT):
        async with Client(gateway_url, mode=mode) as client:
            assert client.protocol_version == (LEGACY if mode == "legacy" else MODERN)
            if mode == "legacy":
                assert client.server_info is not None
                assert client.server_info.name == "bastion"
            names: list[str] = []
            cursor: str | None = None
            for _ in range(20):  # bounded: a gateway that loops on cursors fails, not hangs
                page = await client.list_tools(cursor=cursor)
                names += [tool.name for tool in page.tools]
                cursor = page.next_cursor
                if cursor is None:
                    break
            check_catalog(names)
            for call in CALLS.values():
                call.check(wire(await client.call_tool(call.tool, call.arguments)))
