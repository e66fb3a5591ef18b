"""The MCP Inspector CLI (2.12.0) drives ``bastion hub`` as a real client: list, connect,
call, with one real ``bastion serve`` instance registered in the tests' private registry.

The Inspector is one-shot: every run below spawns its own ``bastion hub``, does one method
and exits, so nothing a run connects survives into the next. A fresh hub lists only its
own tools; a resource read or a prompt of ``<instance>__...`` connects on first use; and
since the Inspector looks a tool up in ``tools/list`` before calling it, a call of
``<instance>__echo`` starts the hub with ``--connect <instance>``. The Inspector gives a
stdio server only a minimal environment, so ``XDG_DATA_HOME`` (the private registry) is
passed with ``-e``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import BASTION, free_port, run_inspector, serve_in

pytestmark = [pytest.mark.e2e, pytest.mark.interop]

NAME = "inspected"  # the project directory's name, so the instance's name
EXIT_OK, EXIT_TOOL_ERROR = 0, 5
STATIC_TEXT = "This is the content of the static text resource."


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A running ``bastion serve`` (the built-in fixture): its (pid, port)."""
    port = free_port()
    with serve_in(tmp_path_factory.mktemp("projects") / NAME, port) as proc:
        yield proc.pid, port


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector-home")


def hub_command(*hub_args: str) -> list[str]:
    """A fresh ``bastion hub`` for one Inspector run, seeing the tests' private registry."""
    data = f"XDG_DATA_HOME={os.environ['XDG_DATA_HOME']}"
    state = f"XDG_STATE_HOME={os.environ['XDG_STATE_HOME']}"  # its audit log and pins
    return [str(BASTION), "hub", *hub_args, "-e", data, "-e", state]


def inspect(home: Path, *args: str, hub_args: tuple[str, ...] = ()) -> tuple[int, Any]:
    """One Inspector run against a fresh ``bastion hub``: (exit code, parsed JSON output)."""
    proc = run_inspector(home, hub_command(*hub_args), *args)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"rc={proc.returncode}: {proc.stdout!r}\n{proc.stderr}") from exc


def call(home: Path, tool: str, *args: str, hub_args: tuple[str, ...] = ()) -> dict[str, Any]:
    pairs = [a for arg in args for a in ("--tool-arg", arg)]
    rc, output = inspect(
        home, "--method", "tools/call", "--tool-name", tool, *pairs, hub_args=hub_args
    )
    assert rc == EXIT_OK, output
    result: dict[str, Any] = output["result"]
    assert not result.get("isError"), result
    return result


def test_tools_list_shows_the_hubs_own_tools(home: Path, instance: tuple[int, int]) -> None:
    rc, output = inspect(home, "--method", "tools/list")
    assert rc == EXIT_OK, output
    names = [tool["name"] for tool in output["result"]["tools"]]
    assert names == ["instances_list", "instances_connect", "instances_disconnect"]


def test_instances_list_shows_the_instance(home: Path, instance: tuple[int, int]) -> None:
    pid, port = instance
    result = call(home, "instances_list")
    [row] = result["structuredContent"]["instances"]
    assert row["name"] == NAME
    assert row["url"] == f"http://127.0.0.1:{port}/mcp"
    assert row["port"] == port
    assert row["pid"] == pid
    assert row["state"] == "active"
    assert row["connected"] is False
    assert f"{NAME} (id {row['id']}, pid {pid}" in result["content"][0]["text"]


def test_instances_connect_answers_success(home: Path, instance: tuple[int, int]) -> None:
    [row] = call(home, "instances_list")["structuredContent"]["instances"]
    for wanted in (row["id"], NAME):
        result = call(home, "instances_connect", f"instance={wanted}")
        assert result["structuredContent"]["id"] == row["id"]
        assert result["structuredContent"]["prefix"] == f"{NAME}__"
        assert f"{NAME}__echo" in result["structuredContent"]["tools"]
        assert result["content"][0]["text"].startswith(f"Connected to {NAME} ")


def test_a_tool_of_the_instance_answers_through_the_hub(
    home: Path, instance: tuple[int, int]
) -> None:
    result = call(home, f"{NAME}__echo", "text=through the hub", hub_args=("--connect", NAME))
    assert result["content"] == [{"type": "text", "text": "through the hub"}]


def test_without_connect_the_inspector_finds_no_instance_tool(
    home: Path, instance: tuple[int, int]
) -> None:
    """The Inspector refuses a tool its ``tools/list`` did not show (it never calls it)."""
    args = ["--method", "tools/call", "--tool-name", f"{NAME}__echo", "--tool-arg", "text=x"]
    proc = run_inspector(home, hub_command(), *args)
    assert proc.returncode == EXIT_TOOL_ERROR, proc.stderr
    errors = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert errors[-1]["error"]["code"] == "tool_not_found"


def test_a_resource_of_the_instance_connects_on_first_use(
    home: Path, instance: tuple[int, int]
) -> None:
    uri = f"{NAME}+test://static-text"
    rc, output = inspect(home, "--method", "resources/read", "--uri", uri)
    assert rc == EXIT_OK, output
    assert output["result"]["contents"] == [
        {"uri": uri, "mimeType": "text/plain", "text": STATIC_TEXT}
    ]


def test_a_prompt_of_the_instance_connects_on_first_use(
    home: Path, instance: tuple[int, int]
) -> None:
    rc, output = inspect(
        home, "--method", "prompts/get", "--prompt-name", f"{NAME}__test_simple_prompt"
    )
    assert rc == EXIT_OK, output
    [message] = output["result"]["messages"]
    assert message["content"]["text"] == "This is a simple prompt for testing."
