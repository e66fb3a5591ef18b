"""Egress allow-list: the sandbox's only way out is the filtering proxy, and the proxy lets
through only allowed domains, resolved by itself to global addresses (UP-3).

The local cases map a test name to a real HTTP server on the host's loopback (through the
proxy's injectable resolver, with private addresses allowed for that one test); the last
case uses the real pypi.org, which this machine can reach, and example.com, which the
allow-list refuses before any DNS lookup.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.sandbox import EgressProxy, ExecSpec, NetworkPolicy, Sandbox
from bastion.sandbox.egress import _internal, parse_allow_entry
from tests.sandbox.conftest import sandbox_exec

pytestmark = pytest.mark.anyio


class _Hits(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.headers.get("Host", ""))
        body = b"hello-from-allowed"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    _Hits.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


_CLIENT = """
import http.client, json, socket, sys
out = {}
for host in sys.argv[1:]:
    name, port = host.split(":")
    conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)  # the in-sandbox bridge
    conn.set_tunnel(name, int(port))  # CONNECT, as every HTTPS client does
    try:
        conn.request("GET", "/")
        out[host] = conn.getresponse().read().decode()
    except OSError as exc:
        out[host] = str(exc)
try:
    socket.create_connection(("127.0.0.1", int(port)), timeout=2)
    out["direct"] = "connected"
except OSError as exc:
    out["direct"] = exc.strerror
print(json.dumps(out))
"""


async def _local(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host.endswith(".test") else []


async def test_allowed_domain_through_the_proxy_and_nothing_else(workspace: Path, web: int) -> None:
    import json

    with Sandbox(egress_resolver=_local, egress_allow_private=True) as sandbox:
        spec = ExecSpec(
            workspace=workspace,
            argv=("python3", "-c", _CLIENT, f"allowed.test:{web}", f"denied.test:{web}"),
            network=NetworkPolicy(allow=(f"allowed.test:{web}",)),
            timeout=20,
        )
        result = await sandbox.run(spec)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out[f"allowed.test:{web}"] == "hello-from-allowed"
    assert "403" in out[f"denied.test:{web}"]
    assert out["direct"] == "Connection refused"  # the sandbox's own loopback, not the host's
    assert _Hits.hits == [f"allowed.test:{web}"]


async def test_an_allowed_name_on_a_private_address_is_refused(workspace: Path, web: int) -> None:
    import json

    with Sandbox(egress_resolver=_local) as sandbox:  # private addresses not allowed
        spec = ExecSpec(
            workspace=workspace,
            argv=("python3", "-c", _CLIENT, f"allowed.test:{web}"),
            network=NetworkPolicy(allow=(f"allowed.test:{web}",)),
            timeout=20,
        )
        result = await sandbox.run(spec)
    out = json.loads(result.stdout)
    assert "403" in out[f"allowed.test:{web}"]
    assert _Hits.hits == []


def test_allow_list_matching() -> None:
    proxy = EgressProxy(["pypi.org", "*.pythonhosted.org", "registry.npmjs.org:8443"])
    assert proxy.allowed("pypi.org", 443) and proxy.allowed("PYPI.org.", 80)
    assert not proxy.allowed("pypi.org", 22)
    assert not proxy.allowed("evilpypi.org", 443) and not proxy.allowed("pypi.org.evil", 443)
    assert proxy.allowed("files.pythonhosted.org", 443)
    assert not proxy.allowed("pythonhosted.org", 443)  # the pattern is for subdomains
    assert proxy.allowed("registry.npmjs.org", 8443)
    assert not proxy.allowed("registry.npmjs.org", 443)
    assert parse_allow_entry("Example.COM") == ("example.com", frozenset({80, 443}))
    for internal in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "::1",
                     "::ffff:127.0.0.1", "fd00::1", "fe80::1%eth0", "0.0.0.0"):  # fmt: skip
        assert _internal(internal), internal
    assert not _internal("151.101.0.223") and not _internal("2a04:4e42::223")
    for bad in ("", "*", "a b", "x@y", "host:0"):
        with pytest.raises(ValueError):
            parse_allow_entry(bad)


def test_pypi_is_reachable_and_example_com_is_not(workspace: Path) -> None:
    script = """
import urllib.request
for url in ("https://pypi.org/simple/pip/", "https://example.com/"):
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:
            print(url, answer.status)
    except OSError as exc:
        print(url, "refused:", exc)
"""
    done = sandbox_exec(
        workspace, "python3", "-c", script, options=("--allow-domain", "pypi.org"), timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "https://pypi.org/simple/pip/ 200"
    assert lines[1].startswith("https://example.com/ refused:") and "403" in lines[1]
