"""A stdio upstream run inside the sandbox because its configuration says ``sandbox:``
(issue 4 part 5), through a real ``bastion serve``: the gateway's own secrets and host
files stay out of it, it runs as the sandbox user under seccomp, and it still serves."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientSession
from bastion.transport.http_client import HttpClientStream
from tests.sandbox.conftest import host_processes_matching
from tests.support import ROOT, gateway_http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
MARKER = "sandboxed-fixture-4c1e"
# The system python3 (the sandbox user cannot reach the venv's interpreter under /root),
# with our sources and the venv's packages bound read-only.
FIXTURE = (
    f"import sys; sys.argv[0] = '{MARKER}'; from bastion.cli import main; "
    "sys.exit(main(['fixture', '--stdio']))"
)
SECRET = "gateway-secret-7d2a"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    site = SITE / "site-packages"
    src = ROOT / "src"
    server = {
        "command": "python3",
        "args": ["-c", FIXTURE],
        "env": {"PYTHONPATH": f"{src}:{site}"},
        "sandbox": {"paths": [str(src), str(site)]},
    }
    cfg = tmp_path_factory.mktemp("sandboxed") / "bastion.yaml"
    cfg.write_text(json.dumps({"servers": {"sbx": server}}))
    os.environ["BASTION_GATEWAY_SECRET"] = SECRET  # the gateway process inherits it
    try:
        with gateway_http_server(cfg) as gateway:
            yield gateway
    finally:
        del os.environ["BASTION_GATEWAY_SECRET"]


async def test_sandboxed_upstream_serves_through_the_gateway(url: str) -> None:
    with anyio.fail_after(30):
        async with HttpClientStream(url) as stream, ClientSession(stream) as session:
            await session.connect()
            result = await session.call_tool("sbx__echo", {"text": "from the sandbox"})
    assert result["content"][0]["text"] == "from the sandbox"


def test_sandboxed_upstream_is_confined(url: str) -> None:
    inner = [
        pid
        for pid in host_processes_matching("fixture', '--stdio'")
        if "bwrap" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert inner, "the sandboxed fixture runs"
    for pid in inner:
        status = Path(f"/proc/{pid}/status").read_text()
        if os.geteuid() == 0:
            assert "Uid:\t65534\t65534\t65534\t65534" in status  # not root
        assert "Seccomp:\t2" in status  # under the deny-list filter
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert SECRET.encode() not in environ  # the gateway's environment stays out
        assert b"PYTHONPATH=" in environ  # only what the server's env grants
        for ns in ("mnt", "net", "pid"):  # its own view of files, network and processes
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
