"""The MCP Inspector CLI (``@modelcontextprotocol/inspector`` 2.12.0) as a real client of
``bastion fixture``: over stdio and Streamable HTTP, in the legacy era (its default) and in
the 2026-07-28 era, which it only selects through a config file (``protocolEra``).

Each test runs the CLI once per target with ``--format json`` and checks the parsed output
and the exit code (0 OK, 5 when the tool answered ``isError: true``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import BASTION, fixture_http_server, run_inspector

pytestmark = pytest.mark.interop

LEGACY, MODERN = "2025-11-25", "2026-07-28"
CLI_TIMEOUT = 60.0
EXIT_OK, EXIT_TOOL_ERROR = 0, 5
STATIC_TEXT = "This is the content of the static text resource."

# target id -> the protocol version the Inspector should end up speaking
TARGETS = {
    "stdio": LEGACY,
    "http": LEGACY,
    "stdio-modern": MODERN,
    "http-modern": MODERN,
    "http-auto": MODERN,  # protocolEra "auto" probes server/discover, which the fixture answers
}


@dataclass(frozen=True)
class Run:
    returncode: int
    output: Any  # stdout parsed as JSON
    stderr: str

    def error_line(self) -> dict[str, Any]:
        """The JSON error object the CLI prints as its last JSON line on stderr."""
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("{")]
        assert lines, self.stderr
        return dict(json.loads(lines[-1]))


@pytest.fixture(scope="module")
def fixture_url() -> Iterator[str]:
    with fixture_http_server() as url:
        yield url


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private HOME, so the Inspector's per-user files stay out of the real one."""
    return tmp_path_factory.mktemp("inspector-home")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, fixture_url: str) -> Path:
    stdio = {"type": "stdio", "command": str(BASTION), "args": ["fixture", "--stdio"]}
    servers = {
        "stdio-modern": {**stdio, "protocolEra": "modern"},
        "http-modern": {"type": "http", "url": fixture_url, "protocolEra": "modern"},
        "http-auto": {"type": "http", "url": fixture_url, "protocolEra": "auto"},
    }
    path = tmp_path_factory.mktemp("inspector-config") / "inspector.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


@pytest.fixture(params=list(TARGETS))
def target(request: pytest.FixtureRequest, fixture_url: str, config: Path) -> tuple[str, list[str]]:
    """(target id, the CLI arguments that select the server)."""
    name = str(request.param)
    if name == "stdio":
        return name, [str(BASTION), "fixture", "--stdio"]
    if name == "http":
        return name, [fixture_url, "--transport", "http"]
    return name, ["--config", str(config), "--server", name]


def inspect(home: Path, server: list[str], *args: str) -> Run:
    proc = run_inspector(home, server, *args, timeout=CLI_TIMEOUT)
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"rc={proc.returncode}, stdout is not JSON: {proc.stdout!r}\n{proc.stderr}"
        ) from exc
    return Run(proc.returncode, output, proc.stderr)


def test_initialize_speaks_the_expected_era(home: Path, target: tuple[str, list[str]]) -> None:
    name, server = target
    run = inspect(home, server, "--method", "initialize")
    assert run.returncode == EXIT_OK, run.stderr
    result = run.output["result"]
    assert result["protocolVersion"] == TARGETS[name]
    assert result["serverInfo"]["name"] == "bastion-conformance-fixture"
    assert "tools" in result["capabilities"]


def test_tools_list(home: Path, target: tuple[str, list[str]]) -> None:
    run = inspect(home, target[1], "--method", "tools/list")
    assert run.returncode == EXIT_OK, run.stderr
    tools = {tool["name"]: tool for tool in run.output["result"]["tools"]}
    assert {"echo", "test_simple_text", "test_error_handling", "test_sampling"} <= set(tools)
    assert tools["echo"]["inputSchema"]["required"] == ["text"]


def test_echo(home: Path, target: tuple[str, list[str]]) -> None:
    run = inspect(
        home, target[1], "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=hello"
    )
    assert run.returncode == EXIT_OK, run.stderr
    assert run.output["result"]["content"] == [{"type": "text", "text": "hello"}]
    assert not run.output["result"].get("isError", False)


def test_tool_error_exits_5(home: Path, target: tuple[str, list[str]]) -> None:
    run = inspect(home, target[1], "--method", "tools/call", "--tool-name", "test_error_handling")
    assert run.returncode == EXIT_TOOL_ERROR, run.stderr
    assert run.output["result"]["isError"] is True
    assert run.output["result"]["content"] == [
        {"type": "text", "text": "This tool intentionally returns an error for testing"}
    ]
    assert run.error_line()["error"]["code"] == "tool_is_error"


def test_resource_read(home: Path, target: tuple[str, list[str]]) -> None:
    run = inspect(home, target[1], "--method", "resources/read", "--uri", "test://static-text")
    assert run.returncode == EXIT_OK, run.stderr
    assert run.output["result"]["contents"] == [
        {"uri": "test://static-text", "mimeType": "text/plain", "text": STATIC_TEXT}
    ]


def test_prompt_get(home: Path, target: tuple[str, list[str]]) -> None:
    run = inspect(
        home,
        target[1],
        "--method",
        "prompts/get",
        "--prompt-name",
        "test_prompt_with_arguments",
        "--prompt-args",
        "arg1=alpha",
        "arg2=beta",
    )
    assert run.returncode == EXIT_OK, run.stderr
    [message] = run.output["result"]["messages"]
    assert message["role"] == "user"
    assert message["content"]["type"] == "text"
    assert "alpha" in message["content"]["text"] and "beta" in message["content"]["text"]
