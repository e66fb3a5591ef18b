"""Sandboxed upstreams (issue part 5): our own conformance fixture, a real MCP server,
run inside the sandbox through the ordinary stdio transport, answering real requests.

The fixture runs on the system's python3 with our sources and the venv's packages bound
read-only (the venv's own interpreter lives under /root here, which the sandbox user
cannot reach). The launcher's secret must not reach it, and its host view is the sandbox's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientSession
from bastion.sandbox import Sandbox, sandboxed_upstream
from bastion.transport.stdio import StdioChild
from tests.sandbox.conftest import LAUNCHER_SECRET, SECRET_VALUE, host_processes_matching
from tests.support import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SITE_PACKAGES = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
FIXTURE = (
    "import sys; sys.argv[0] = 'bastion'; from bastion.cli import main; "
    "sys.exit(main(['fixture', '--stdio']))"
)


async def test_a_real_mcp_server_runs_sandboxed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LAUNCHER_SECRET, SECRET_VALUE)
    site = SITE_PACKAGES / "site-packages"
    src = ROOT / "src"
    with Sandbox() as sandbox:
        async with sandboxed_upstream(
            sandbox,
            ["python3", "-c", FIXTURE],
            workspace=workspace,
            env={"PYTHONPATH": f"{src}:{site}"},
            extra_ro_paths=[src, site],
        ) as launch:
            assert launch.env == {} and launch.backend == "bubblewrap"
            assert "seccomp" in launch.enforced
            with anyio.fail_after(30):
                async with (
                    StdioChild(
                        launch.argv, env=launch.env, name="sandboxed", pass_fds=launch.pass_fds
                    ) as child,
                    ClientSession(child) as session,
                ):
                    await session.connect()
                    result = await session.call_tool("echo", {"text": "from the sandbox"})
                    assert result["content"][0]["text"] == "from the sandbox"
                    pid = child.pid
                    assert pid is not None
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                    assert environ == b""  # bwrap itself runs with an empty environment
                    inner = [p for p in host_processes_matching("fixture', '--stdio'") if p != pid]
                    assert inner, "the fixture process runs under bwrap"
                    for p in inner:
                        status = Path(f"/proc/{p}/status").read_text()
                        if os.geteuid() == 0:
                            assert "Uid:\t65534\t65534\t65534\t65534" in status
                        assert "Seccomp:\t2" in status
                        assert SECRET_VALUE.encode() not in Path(f"/proc/{p}/environ").read_bytes()
    assert host_processes_matching("fixture', '--stdio'") == []
