"""stdio, end to end: the fixture as a real child process, the line cap, stderr to our log,
the environment allow-list and the close escalation (stdin, SIGTERM, SIGKILL)."""

from __future__ import annotations

import logging
import os
import sys

import anyio
import pytest

from bastion.client import ClientSession
from bastion.protocol.versions import Era
from bastion.transport.stdio import StdioChild, child_environment
from tests.support import BASTION

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
FIXTURE = [str(BASTION), "fixture", "--stdio"]


@pytest.mark.parametrize("era", [None, Era.LEGACY])
async def test_fixture_over_stdio(era: Era | None) -> None:
    with anyio.fail_after(20):
        async with StdioChild(FIXTURE) as child, ClientSession(child, era=era) as session:
            info = await session.connect()
            assert info.era is (era or Era.MODERN)
            assert info.server_info["name"] == "bastion-conformance-fixture"
            result = await session.call_tool("echo", {"text": "over stdio"})
            assert result["content"][0]["text"] == "over stdio"


async def test_overlong_line_is_refused_and_serving_continues() -> None:
    with anyio.fail_after(20):
        async with StdioChild(FIXTURE) as child:
            process = child._process
            assert process is not None and process.stdin is not None
            await process.stdin.send(b'{"x": "' + b"a" * (4 * 1024 * 1024 + 10) + b'"}\n')
            refused = await child.receive()
            assert not isinstance(refused, Exception)
            assert refused.error.code == -32700
            await process.stdin.send(
                b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
                b'"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
            )
            answer = await child.receive()
            assert answer.id == 1


async def test_child_stderr_goes_to_log_and_secrets_stay_home(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_TEST_SECRET", "hunter2")
    script = (
        "import os, sys\n"
        "sys.stderr.write('secret=' + os.environ.get('BASTION_TEST_SECRET', 'absent') + '\\n')"
    )
    caplog.set_level(logging.INFO, logger="bastion.transport.stdio")
    with anyio.fail_after(20):
        async with StdioChild([sys.executable, "-c", script], name="probe") as child:
            with pytest.raises(anyio.EndOfStream):
                await child.receive()
            process = child._process
            assert process is not None
            await process.wait()
    assert any("[probe stderr] secret=absent" in r.getMessage() for r in caplog.records)
    assert "BASTION_TEST_SECRET" not in child_environment(dict(os.environ))


async def test_stubborn_child_and_its_children_are_killed() -> None:
    # Ignores stdin EOF and SIGTERM, and leaves a grandchild behind in its process group.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen(['sleep', '60'])\n"
        "sys.stdout.write(str(p.pid) + '\\n'); sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    with anyio.fail_after(20):
        async with StdioChild([sys.executable, "-c", script], name="stubborn") as child:
            process = child._process
            assert process is not None and process.stdout is not None
            grandchild = int((await process.stdout.receive()).strip())
        assert child.returncode is not None and child.returncode < 0
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(grandchild, 0)
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_fixture_reads_and_writes_regular_files(tmp_path: pytest.TempPathFactory) -> None:
    """stdin/stdout redirected to files (not pipes): every request still gets its answer,
    including the one in flight when the input ended."""
    import json
    import subprocess
    from pathlib import Path

    base = Path(str(tmp_path))
    requests = base / "in.jsonl"
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "f", "version": "1"},
    }
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "from a file"}},
        },
    ]
    requests.write_text("".join(json.dumps(m) + "\n" for m in lines))
    answers = base / "out.jsonl"
    with requests.open("rb") as stdin, answers.open("wb") as stdout:
        subprocess.run(FIXTURE, stdin=stdin, stdout=stdout, timeout=30, check=True)
    got = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [m["id"] for m in got] == [1, 2]
    assert got[1]["result"]["content"][0]["text"] == "from a file"
