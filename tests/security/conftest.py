"""One real, authenticated ``bastion serve`` for the whole battery, and the means to attack it.

The session fixture ``gw`` writes a ``bastion.yaml`` (the built-in fixture as a stdio
upstream under ``fx__``; the recording HTTP upstream of ``upstreams/recorder.py`` under
``rec__`` with a static credential; API keys, OIDC with a local JWKS file, a policy file
reloaded every 0.2 s, an audit database), creates real API keys with ``bastion keys create``
and starts ``bastion serve`` on a free loopback port. Tests talk to it over real HTTP with
``Gateway`` (both protocol eras) and mint real RS256 JWTs with ``Issuer``.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support import BASTION, ROOT, free_port, stop_process, wait_for_port

RECORDER = "tests.security.upstreams.recorder"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ISSUER = "https://idp.bastion.test"
JWT_ADMINS = "bastion-admins"  # the token role ``auth.oidc.grants`` maps to gateway admin
KID = "battery-key-1"
REQUEST_TIMEOUT = 2.0  # the recording upstream's outbound deadline (DS-2)
UPSTREAM_CREDENTIAL = "Bearer upstream-static-credential-4d2e81"
ACCEPT = "application/json, text/event-stream"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"

POLICY = """\
version: 1
roles:
  dev: {description: "least privilege"}
  admin: {description: "everything"}
rules:
  - id: handshake
    effect: allow
    roles: [dev, admin]
    methods: [initialize, ping, "notifications/*", tools/list, resources/list,
              resources/templates/list, prompts/list]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
  - id: dev-tools
    effect: allow
    roles: [dev]
    tools: [fx__echo, fx__test_simple_text, rec__whoami, rec__boom]
  - id: dev-static-text
    effect: allow
    roles: [dev]
    resources: ["fx+test://static-text"]
  - id: no-error-tool
    effect: deny
    roles: [dev, admin]
    tools: [fx__test_error_handling]
    description: deny beats every allow
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON messages in an SSE body (``data:`` lines; empty priming events skipped)."""
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")
        )
        if data:
            messages.append(json.loads(data))
    return messages


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer a POST got, whether it came as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        answers = [m for m in sse_messages(response.text) if "result" in m or "error" in m]
        assert answers, response.text
        return answers[-1]
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Issuer:
    """Mints RS256 JWTs signed with the key whose public half is in the gateway's JWKS."""

    audience: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        jwk = {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": b64url(n)}
        jwk["e"] = b64url(e)
        return {"keys": [jwk]}

    def claims(
        self, sub: str = "carol", roles: list[str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "roles": ["dev"] if roles is None else roles,
        }
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: Mapping[str, Any],
        header: Mapping[str, Any] | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        head = {"alg": "RS256", "typ": "at+jwt", "kid": KID} if header is None else dict(header)
        signing_input = (
            b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(dict(claims)).encode())
        )
        signer = key or self.key
        signature = signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def token(self, sub: str = "carol", roles: list[str] | None = None, **extra: Any) -> str:
        return self.sign(self.claims(sub, roles, **extra))


@dataclass
class RawAnswer:
    """What a raw socket got back: the bytes, and whether the server closed the connection."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int:
        line = self.data.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else 0

    @property
    def head(self) -> str:
        return self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""


def raw_http(port: int, *parts: bytes, timeout: float = 5.0, pause: float = 0.0) -> RawAnswer:
    """Send ``parts`` on a fresh connection (``pause`` seconds apart) and read until the
    server closes it or ``timeout`` passes with nothing new."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server already answered and closed: read what it said
            if pause:
                time.sleep(pause)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return RawAnswer(data, closed=False)
            except ConnectionResetError:
                return RawAnswer(data, closed=True)
            if not chunk:
                return RawAnswer(data, closed=True)
            data += chunk


def bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


@dataclass
class Gateway:
    """A running ``bastion serve`` and a client for both protocol eras."""

    port: int
    tmp: Path
    keys: dict[str, str]
    issuer: Issuer
    proc: subprocess.Popen[bytes]
    recorder_log: Path
    recorder_port: int
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def keys_db(self) -> Path:
        return self.tmp / "keys.db"

    @property
    def audit_db(self) -> Path:
        return self.tmp / "audit.db"

    @property
    def policy_file(self) -> Path:
        return self.tmp / "policy.yaml"

    @property
    def log_file(self) -> Path:
        return self.tmp / "serve.log"

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of API key ``who`` (alice, bob, root)."""
        return bearer(self.keys[who])

    def post(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        content: bytes | None = None,
        path: str = "/mcp",
    ) -> httpx.Response:
        """POST ``body`` (JSON) or raw ``content`` with the usual MCP headers plus ``headers``."""
        sent = {"content-type": "application/json", "accept": ACCEPT}
        sent.update(headers or {})
        data = content if content is not None else json.dumps(body).encode()
        return self.client.post(self.base + path, content=data, headers=sent)

    # -- 2025-11-25 ----------------------------------------------------------------------

    def initialize(self, headers: Mapping[str, str]) -> str:
        """A new 2025-11-25 session for whoever ``headers`` authenticate; its id."""
        response = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "battery", "version": "1"},
                },
            },
            headers,
        )
        assert response.status_code == 200, (response.status_code, response.text)
        session = response.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        extra = {**headers, "mcp-session-id": session, "mcp-protocol-version": LEGACY}
        assert self.post(note, extra).status_code == 202
        return session

    def legacy(
        self,
        headers: Mapping[str, str],
        session: str,
        method: str,
        params: dict[str, Any] | None = None,
        request_id: int | str = 1,
    ) -> httpx.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            body["params"] = params
        extra = {**headers, "mcp-session-id": session, "mcp-protocol-version": LEGACY}
        return self.post(body, extra)

    # -- 2026-07-28 ----------------------------------------------------------------------

    def modern(
        self,
        headers: Mapping[str, str],
        method: str,
        params: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        request_id: int | str = 1,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A stateless request: ``_meta`` in the body and the mirror headers
        (``Mcp-Name`` = ``name``, defaulting to the body's tool/prompt name or URI)."""
        params = dict(params or {})
        params["_meta"] = {META_VERSION: MODERN, META_CAPS: {}}
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        sent = {**headers, "mcp-protocol-version": MODERN, "mcp-method": method}
        target = name if name is not None else params.get("name", params.get("uri"))
        if isinstance(target, str):
            sent["mcp-name"] = target
        sent.update(extra or {})
        return self.post(body, sent)

    @contextlib.contextmanager
    def listen(
        self, headers: Mapping[str, str], notifications: dict[str, Any], *, timeout: float = 10.0
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """A ``subscriptions/listen`` stream: its messages as they come; a read that waits
        longer than ``timeout`` raises (so a stream that should end and does not fails)."""
        params = {"notifications": notifications, "_meta": {META_VERSION: MODERN, META_CAPS: {}}}
        body = {
            "jsonrpc": "2.0",
            "id": "listen",
            "method": "subscriptions/listen",
            "params": params,
        }
        sent = {"content-type": "application/json", "accept": ACCEPT, **headers}
        sent.update({"mcp-protocol-version": MODERN, "mcp-method": "subscriptions/listen"})
        data = json.dumps(body).encode()
        with self.client.stream("POST", self.url, content=data, headers=sent, timeout=timeout) as r:
            assert r.status_code == 200, r.status_code
            yield (
                json.loads(line[5:])
                for line in r.iter_lines()
                if line.startswith("data:") and line[5:].strip()
            )

    def call(
        self, headers: Mapping[str, str], tool: str, arguments: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self.modern(headers, "tools/call", {"name": tool, "arguments": arguments or {}})

    def tool_names(self, headers: Mapping[str, str]) -> set[str]:
        answer = answer_of(self.modern(headers, "tools/list"))
        return {tool["name"] for tool in answer["result"]["tools"]}

    # -- evidence ------------------------------------------------------------------------

    def recorded(self) -> list[dict[str, Any]]:
        """Every HTTP request the recording upstream received so far."""
        if not self.recorder_log.exists():
            return []
        return [json.loads(line) for line in self.recorder_log.read_text().splitlines()]

    def audit_export(self) -> list[dict[str, Any]]:
        """``bastion audit export --db``: every record of every request answered so far.

        The gateway commits its records in groups (``audit.commit_interval``), so a record
        may still be queued when its request has been answered. The admin API's audit query
        first waits until everything queued is committed, so it is asked first (a read: not
        itself recorded); the export in another process then sees every record."""
        flushed = self.client.get(
            f"{self.base}/api/v1/audit", params={"limit": "1"}, headers=self.auth("root")
        )
        assert flushed.status_code == 200, flushed.text
        out = run_cli("audit", "export", "--db", str(self.audit_db))
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args)


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BASTION), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return done


def create_key(db: Path, name: str, role: str) -> str:
    out = run_cli("keys", "create", "--name", name, "--role", role, "--db", str(db))
    return out.stdout.strip().splitlines()[-1]


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"bastion serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gateway not ready after {timeout}s:\n{log.read_text()}")
        time.sleep(0.05)


def write_config(
    tmp: Path, port: int, *, servers: str, auth_extra: str = "", policy: str = POLICY
) -> Path:
    (tmp / "policy.yaml").write_text(policy)
    config = tmp / "bastion.yaml"
    config.write_text(
        f"""\
gateway:
  port: {port}
servers:
{servers}
auth:
  resource: http://127.0.0.1:{port}/mcp
  api_keys: {{db: {tmp / "keys.db"}}}
  oidc:
    issuer: {ISSUER}
    jwks_file: {tmp / "jwks.json"}
    algorithms: [RS256]
    roles_claim: roles
    grants: {{admin: [{JWT_ADMINS}]}}
    jwks_refresh_interval: 1
{auth_extra}
policy: {{file: {tmp / "policy.yaml"}, reload_interval: 0.2}}
audit: {{db: {tmp / "audit.db"}}}
# DS-3 is shown in tests/pipeline/test_threats_e2e.py; here the polling helpers must not
# run into the default per-principal limit.
limits: {{per_principal: {{rate: 100000, burst: 100000}}}}
"""
    )
    return config


def start_serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BASTION), "serve", "-c", str(config), "--port", str(port), "--no-register"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("battery")
    port, recorder_port = free_port(), free_port()
    recorder_log = tmp / "recorder.jsonl"
    with (tmp / "recorder.log").open("wb") as recorder_err:
        recorder = subprocess.Popen(
            [sys.executable, "-m", RECORDER, str(recorder_port), str(recorder_log)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=recorder_err,
        )
    issuer = Issuer(audience=f"http://127.0.0.1:{port}/mcp")
    (tmp / "jwks.json").write_text(json.dumps(issuer.jwks()))
    servers = f"""\
  fx:
    command: {sys.executable}
    args: ["-m", "bastion", "fixture", "--stdio"]
    prefix: "fx__"
  rec:
    url: http://127.0.0.1:{recorder_port}/mcp
    headers: {{Authorization: "{UPSTREAM_CREDENTIAL}"}}
    prefix: "rec__"
    request_timeout: {REQUEST_TIMEOUT}
"""
    # Every test comes from 127.0.0.1: lift the failed-auth throttle here (AU-8 has its own).
    extra = "  failed_auth: {per_address_per_minute: 100000}"
    config = write_config(tmp, port, servers=servers, auth_extra=extra)
    keys = {
        "alice": create_key(tmp / "keys.db", "alice", "dev"),
        "bob": create_key(tmp / "keys.db", "bob", "dev"),
        "root": create_key(tmp / "keys.db", "root", "admin"),
    }
    proc = None
    try:
        wait_for_port(recorder_port)
        proc = start_serve(config, port, tmp / "serve.log")
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp / "serve.log")
        gateway = Gateway(
            port=port,
            tmp=tmp,
            keys=keys,
            issuer=issuer,
            proc=proc,
            recorder_log=recorder_log,
            recorder_port=recorder_port,
        )
        yield gateway
        gateway.client.close()
    finally:
        if proc is not None:
            stop_process(proc, grace=15)
        stop_process(recorder)


# -- a second, smaller gateway ----------------------------------------------------------------


class JwksServer:
    """An HTTP server for the auxiliary gateway's ``jwks_url``: ``/jwks`` redirects to
    ``/real`` (which a gateway must not follow, AU-7); every hit is counted by path, so a
    test can show which URLs the gateway fetched (never one named in a token)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.hits: dict[str, int] = {}
        hits, body = self.hits, json.dumps(jwks).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                if self.path == "/jwks":
                    self.send_response(302)
                    self.send_header("location", "/real")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


DEAD_UPSTREAM_PATH = "/internal/dead-upstream-path"
DEAD_UPSTREAM_SECRET = "dead-upstream-secret-91b2"


@dataclass
class Aux:
    """A second gateway: JWKS from a URL that redirects, a strict failed-auth throttle
    (3 a minute per address), and an HTTP upstream that is down."""

    gateway: Gateway
    jwks: JwksServer
    dead_port: int

    def client_from(self, address: str) -> httpx.Client:
        """A client whose connections come from ``address`` (any of 127.0.0.0/8), so each
        test has its own failed-auth budget."""
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(transport=transport, timeout=15)


@pytest.fixture(scope="session")
def aux(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aux]:
    tmp = tmp_path_factory.mktemp("aux")
    port, dead_port = free_port(), free_port()
    issuer = Issuer(audience=f"http://127.0.0.1:{port}/mcp")
    jwks = JwksServer(issuer.jwks())
    (tmp / "jwks.json").write_text("{}")  # unused: write_config names it, jwks_url replaces it
    servers = f"""\
  dead:
    url: http://127.0.0.1:{dead_port}{DEAD_UPSTREAM_PATH}
    headers: {{Authorization: "Bearer {DEAD_UPSTREAM_SECRET}"}}
    startup_timeout: 1
"""
    extra = "  failed_auth: {per_address_per_minute: 3}"
    config = write_config(tmp, port, servers=servers, auth_extra=extra)
    text = (
        config.read_text()
        .replace(f"jwks_file: {tmp / 'jwks.json'}", f"jwks_url: {jwks.url('/jwks')}")
        # a JWKS URL is refreshed no more often than its 5 s fetch timeout (AU-7, DS-2)
        .replace("jwks_refresh_interval: 1", "jwks_refresh_interval: 5")
    )
    config.write_text(text)
    keys = {"root": create_key(tmp / "keys.db", "root", "admin")}
    proc = start_serve(config, port, tmp / "serve.log")
    try:
        wait_for_port(port)
        gateway = Gateway(
            port=port,
            tmp=tmp,
            keys=keys,
            issuer=issuer,
            proc=proc,
            recorder_log=tmp / "none.jsonl",
            recorder_port=0,
        )
        yield Aux(gateway=gateway, jwks=jwks, dead_port=dead_port)
        gateway.client.close()
    finally:
        stop_process(proc, grace=15)
        jwks.close()
