"""Real processes for the pipeline's end-to-end tests: ``bastion serve`` with API keys, a
policy file and private audit, key and pin databases; keys made by ``bastion keys create``;
the malicious upstream on HTTP; raw HTTP clients for both protocol eras and the admin API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx

from tests.support import BASTION, ROOT, free_port, stop_process, wait_for_port

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
MALICIOUS = [sys.executable, "-m", "tests.guard.upstreams.malicious"]
_ids = count(100)


def make_key(db: Path, name: str, *roles: str) -> str:
    """``bastion keys create``; the key is the last line of its output."""
    argv = [str(BASTION), "keys", "create", "--db", str(db), "--name", name]
    for role in roles:
        argv += ["--role", role]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    key = done.stdout.splitlines()[-1]
    assert key.startswith("bst_")
    return key


def audit_export(db: Path) -> list[dict[str, Any]]:
    """``bastion audit export --db``: the records, oldest first."""
    done = subprocess.run(
        [str(BASTION), "audit", "export", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["record"] for line in done.stdout.splitlines() if line.strip()]


@contextmanager
def malicious_http() -> Iterator[str]:
    """The malicious upstream's HTTP face; yields its /mcp URL."""
    proc = subprocess.Popen(
        [*MALICIOUS, "--http", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        stop_process(proc)


@dataclass
class Gateway:
    """One running ``bastion serve``: its URLs, its private databases and its keys."""

    base: str
    dir: Path
    proc: subprocess.Popen[bytes]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"

    @property
    def api(self) -> str:
        return f"{self.base}/api/v1"

    @property
    def keys_db(self) -> Path:
        return self.dir / "keys.db"

    @property
    def audit_db(self) -> Path:
        return self.dir / "audit.db"

    @property
    def policy(self) -> Path:
        return self.dir / "policy.yaml"

    def audit(self) -> list[dict[str, Any]]:
        """Every audit record of every request answered so far. The admin API's audit query
        waits until the gateway's queued records are committed (it commits in groups), so
        it is asked first (a read: not itself recorded); then the CLI exports them."""
        assert self.admin("GET", "/audit", params={"limit": "1"}).status_code == 200
        return audit_export(self.audit_db)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys['admin']}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.api}{path}", headers=headers, timeout=15, **kwargs)

    def modern(
        self,
        who: str | None,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One stateless 2026-07-28 POST as ``who`` (a key name, or a raw key)."""
        return modern_post(
            self.mcp,
            self.credential(who),
            method,
            params,
            headers=headers,
            capabilities=capabilities,
        )

    def call(self, who: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A 2026-07-28 ``tools/call``; the JSON-RPC answer (result or error)."""
        answer = self.modern(who, "tools/call", {"name": tool, "arguments": arguments})
        body: dict[str, Any] = answer.json()
        return body

    def tools(self, who: str) -> dict[str, dict[str, Any]]:
        """``tools/list`` as ``who``, by name."""
        answer = self.modern(who, "tools/list").json()
        return {tool["name"]: tool for tool in answer["result"]["tools"]}

    def credential(self, who: str | None) -> str | None:
        if who is None:
            return None
        return self.keys.get(who, who)

    def session(self, who: str, capabilities: dict[str, Any] | None = None) -> LegacySession:
        return LegacySession.open(self.mcp, self.credential(who), capabilities or {})


def modern_post(
    url: str,
    key: str | None,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    capabilities: dict[str, Any] | None = None,
) -> httpx.Response:
    sent = {
        "content-type": "application/json",
        "accept": ACCEPT,
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
        **(headers or {}),
    }
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    name = (params or {}).get("name")
    if isinstance(name, str):
        sent["mcp-name"] = name
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": method,
        "params": {
            **(params or {}),
            "_meta": {**META, "io.modelcontextprotocol/clientCapabilities": capabilities or {}},
        },
    }
    return httpx.post(url, json=body, headers=sent, timeout=15)


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:])
        for line in text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON or SSE response."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        found = [m for m in sse_messages(response.text) if "result" in m or "error" in m]
        assert found, response.text
        return found[-1]
    body: dict[str, Any] = response.json()
    return body


@dataclass
class LegacySession:
    """A 2025-11-25 session over raw HTTP."""

    url: str
    headers: dict[str, str]

    @classmethod
    def open(cls, url: str, key: str | None, capabilities: dict[str, Any]) -> LegacySession:
        headers = {"content-type": "application/json", "accept": ACCEPT}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": capabilities,
                "clientInfo": {"name": "e2e", "version": "1"},
            },
        }
        opened = httpx.post(url, json=init, headers=headers, timeout=15)
        assert opened.status_code == 200, opened.text
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        headers["mcp-protocol-version"] = LEGACY
        session = cls(url, headers)
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert session.post(note).status_code == 202
        return session

    def post(self, message: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url, json=message, headers=self.headers, timeout=15)

    def request(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        message = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}
        return self.post(message)

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return answer_of(self.request("tools/call", {"name": tool, "arguments": arguments}))

    def close(self) -> int:
        return httpx.delete(self.url, headers=self.headers, timeout=15).status_code


POLICY_HEAD = """\
version: 1
roles:
  admin: {description: operators}
  dev: {description: developers}
"""


def policy_text(dev_tools: list[str], security: str = "") -> str:
    """Role ``dev``: the handshake and ``dev_tools``; role ``admin``: everything."""
    tools = ", ".join(json.dumps(t) for t in dev_tools)
    return (
        POLICY_HEAD
        + f"""\
rules:
  - id: dev-handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, resources/list,
              resources/templates/list, prompts/list]
  - id: dev-tools
    effect: allow
    roles: [dev]
    tools: [{tools}]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
"""
        + security
    )


@contextmanager
def serve(
    directory: Path,
    servers: str,
    policy: str,
    keys: dict[str, tuple[str, ...]],
    extra: str = "",
    guard: str = "",
    auth: str = "",
) -> Iterator[Gateway]:
    """``bastion serve -c`` with API keys (``keys``: name -> roles, made before start),
    ``policy`` as its policy file, and audit, key and pin databases under ``directory``.
    ``servers`` is the YAML body of the ``servers:`` section and ``guard`` more lines of the
    ``guard:`` one and ``auth`` of the ``auth:`` one (all indented two spaces); ``extra``
    holds further top-level sections."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    made = {name: make_key(directory / "keys.db", name, *roles) for name, roles in keys.items()}
    (directory / "policy.yaml").write_text(policy)
    config = directory / "bastion.yaml"
    config.write_text(
        f"""\
servers:
{servers}
auth:
  resource: {base}/mcp
  api_keys: {{db: {directory / "keys.db"}}}
{auth}policy:
  file: {directory / "policy.yaml"}
  reload_interval: 0.2
audit:
  db: {directory / "audit.db"}
guard:
  pins: {{db_path: {directory / "pins.db"}}}
{guard}{extra}"""
    )
    log = (directory / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(BASTION), "serve", "-c", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
            assert proc.poll() is None, (directory / "serve.log").read_text()
            assert time.monotonic() < deadline, "upstreams not ready after 60 s"
            time.sleep(0.05)
        yield Gateway(base, directory, proc, made)
    finally:
        stop_process(proc, grace=15)
        log.close()


def wait_until(predicate: Any, timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step)
