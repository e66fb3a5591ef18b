"""``/readyz`` and ``bastion servers list`` on a gateway that authenticates its callers (IN-5,
AZ-6): the public probe says only whether it is ready; upstream names, pids, restarts and
last errors come from the admin API, to an admin key only. The key (AU-5) is never on the
command line, where every local user reads it (``/proc/PID/cmdline``): it comes from
``BASTION_ADMIN_KEY`` or ``--key-file``, and is never sent over plain HTTP to a host that is
not loopback."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.cli import servers as servers_module
from bastion.cli.servers import MAX_KEY_FILE_BYTES, KeyRefused, key_transport_refused, read_key
from tests.pipeline.live import Gateway, serve
from tests.support import BASTION, OTHER_UID, PYTHON, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POLICY = """\
version: 1
roles:
  dev: {}
rules:
  - id: dev
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    servers = f"""\
  fixture:
    command: {sys.executable}
    args: ["-m", "bastion", "fixture", "--stdio"]
"""
    keys: dict[str, tuple[str, ...]] = {"admin": ("admin",), "dev": ("dev",)}
    with serve(tmp_path_factory.mktemp("servers"), servers, POLICY, keys) as gateway:
        yield gateway


def servers_list(
    gw: Gateway | str,
    *extra: str,
    key: str | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BASTION_ADMIN_KEY"}
    if key is not None:
        env["BASTION_ADMIN_KEY"] = key
    url = gw if isinstance(gw, str) else gw.base
    return subprocess.run(
        [str(BASTION), "servers", "list", "--url", url, *extra],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=30,
        check=False,
        env=env,
    )


def key_file(tmp_path: Path, key: str, mode: int = 0o600) -> Path:
    path = tmp_path / "admin.key"
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


def test_in5_public_readyz_says_only_whether_the_gateway_is_ready(gw: Gateway) -> None:
    response = httpx.get(f"{gw.base}/readyz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"ready": True}
    assert "fixture" not in response.text


def test_az6_upstream_status_is_for_admins_only(gw: Gateway) -> None:
    listed = gw.admin("GET", "/upstreams")
    assert listed.status_code == 200
    (row,) = listed.json()["upstreams"]
    assert row["server"] == "fixture" and row["state"] == "ready" and row["pid"] > 0
    dev = {"authorization": f"Bearer {gw.keys['dev']}"}
    assert httpx.get(f"{gw.api}/upstreams", headers=dev, timeout=5).status_code == 403
    assert httpx.get(f"{gw.api}/upstreams", timeout=5).status_code == 401


def test_servers_list_reads_the_admin_api_with_an_admin_key(gw: Gateway, tmp_path: Path) -> None:
    by_file = servers_list(gw, "--key-file", str(key_file(tmp_path, gw.keys["admin"])))
    assert by_file.returncode == 0, by_file.stderr
    assert "fixture" in by_file.stdout and "ready" in by_file.stdout
    by_stdin = servers_list(gw, "--key-file", "-", stdin=gw.keys["admin"] + "\n")
    assert by_stdin.returncode == 0, by_stdin.stderr
    assert "fixture" in by_stdin.stdout
    by_env = servers_list(gw, "--json", key=gw.keys["admin"])
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)[0]["server"] == "fixture"


def test_servers_list_without_a_key_or_with_a_users_key_says_what_is_missing(
    gw: Gateway, tmp_path: Path
) -> None:
    missing = servers_list(gw)
    assert missing.returncode != 0
    assert "--key-file" in missing.stderr and "BASTION_ADMIN_KEY" in missing.stderr
    user = servers_list(gw, key=gw.keys["dev"])
    assert user.returncode != 0 and "admin" in user.stderr
    assert gw.keys["dev"] not in user.stderr + user.stdout


def test_au5_servers_list_takes_no_key_on_its_command_line(gw: Gateway) -> None:
    """Red-team R5: ``--key KEY`` put the admin key in /proc/PID/cmdline for every local
    user to read; the option is gone (a usage error), so the key is never there."""
    given = servers_list(gw, "--key", gw.keys["admin"])
    assert given.returncode == 2 and "--key" in given.stderr
    assert "fixture" not in given.stdout


def test_au5_a_key_file_others_can_read_is_refused(gw: Gateway, tmp_path: Path) -> None:
    path = key_file(tmp_path, gw.keys["admin"], mode=0o644)
    shared = servers_list(gw, "--key-file", str(path))
    assert shared.returncode != 0 and "fixture" not in shared.stdout
    assert "chmod 600" in shared.stderr and gw.keys["admin"] not in shared.stderr


def test_au5_the_key_is_not_sent_over_plain_http_to_another_host(tmp_path: Path) -> None:
    """Refused before any connection (192.0.2.1 is TEST-NET: nothing would answer), with a
    message saying why and what to do; https, or http to loopback, is how to send it."""
    started = time.monotonic()
    refused = servers_list("http://192.0.2.1:8080", key="bst_x_not-a-real-key")
    assert refused.returncode == 64
    assert "plain http" in refused.stderr and "https://" in refused.stderr
    assert "bst_x_not-a-real-key" not in refused.stderr
    assert time.monotonic() - started < 10  # TIMEOUT_S would have passed had it connected


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080", False),
        ("http://127.3.4.5:8080", False),
        ("http://localhost:8080", False),
        ("http://LOCALHOST", False),
        ("http://[::1]:8080", False),
        ("https://gateway.example.com", False),
        ("HTTPS://192.0.2.1:8443", False),
        ("http://192.0.2.1:8080", True),
        ("http://gateway.example.com", True),
        ("http://127.0.0.1.example.com", True),
        ("http://localhost.example.com", True),
        ("http://[::ffff:192.0.2.1]", True),
        ("ftp://127.0.0.1", True),
        ("127.0.0.1:8080", True),
    ],
)
def test_au5_only_https_or_loopback_http_carries_the_key(url: str, refused: bool) -> None:
    assert (key_transport_refused(url) is not None) is refused


def test_au5_a_key_file_is_read_bounded_and_must_hold_a_key(tmp_path: Path) -> None:
    assert read_key(str(key_file(tmp_path, "bst_abc"))) == "bst_abc"
    huge = tmp_path / "huge"
    huge.write_text("k" * (MAX_KEY_FILE_BYTES + 1))
    huge.chmod(0o600)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    for path, says in ((huge, "bytes"), (empty, "empty"), (tmp_path / "none", "cannot read")):
        with pytest.raises(KeyRefused, match=says):
            read_key(str(path))


# Another local user's stand-in for the gateway: answers like one, and prints each request's
# path and Authorization header (a JSON line each) to the test.
_FAKE_GATEWAY = """
import encodings.idna, http.server, json, os, sys  # imported while they may be read
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))  # from here on, every socket is the other user's
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(json.dumps([self.path, self.headers.get("authorization")]), flush=True)
        body = json.dumps({"ready": True, "upstreams": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer)
print("listening", flush=True)
server.serve_forever()
"""

ADMIN_KEY = "bst_0123456789ab_THE-ADMIN-KEY-SECRET-PART"
needs_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="reads Linux's /proc/net, and runs a listener as another uid (needs root)",
)


@contextlib.contextmanager
def other_users_gateway(port: int) -> Iterator[list[list[str | None]]]:
    """A fake gateway on 127.0.0.1:``port`` run as ``OTHER_UID``; the list it yields gets,
    on leaving, each request it was sent: ``[path, authorization]``."""
    heard: list[list[str | None]] = []
    proc = subprocess.Popen(
        [PYTHON, "-c", _FAKE_GATEWAY, str(port), str(OTHER_UID)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        yield heard
    finally:
        proc.kill()
        out, _ = proc.communicate()
        heard.extend(json.loads(line) for line in out.splitlines())


@needs_root
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_au5_in5_the_admin_key_is_not_sent_to_another_users_loopback_listener(
    host: str,
) -> None:
    """Red-team w (squat.sh): another local user listening on the loopback port (the
    gateway stopped, or not started yet) was sent the admin key and answered like a gateway:
    exit 0. The listening socket must be ours or root's: here nothing at all is sent."""
    port = free_port()
    with other_users_gateway(port) as heard:
        refused = servers_list(f"http://{host}:{port}", key=ADMIN_KEY)
    assert refused.returncode == 77, refused.stderr
    assert f"belongs to uid {OTHER_UID}" in refused.stderr
    assert "nothing was sent" in refused.stderr and ADMIN_KEY not in refused.stderr
    assert heard == []


@needs_root
def test_au5_a_port_taken_after_the_listener_check_is_sent_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The port may change hands between the listener check and the connection: the socket
    reached is asked too, before the request is written."""
    monkeypatch.setattr(servers_module, "listener_refused", lambda host, port: None)
    port = free_port()
    with other_users_gateway(port) as heard:
        code = servers_module.run_servers_list(
            f"http://127.0.0.1:{port}", as_json=True, environ={"BASTION_ADMIN_KEY": ADMIN_KEY}
        )
    assert code == 77
    err = capsys.readouterr().err
    assert f"reached a socket of uid {OTHER_UID}" in err and ADMIN_KEY not in err
    assert heard == []
