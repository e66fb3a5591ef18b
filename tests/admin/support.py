"""Admin API test support: the real key store (``StoreKeys`` over a ``KeyStore`` in
tmp_path), the real policy file and audit database, and the app served on a loopback socket.

Two stand-ins, because these tests are about the API layer alone: ``token_authenticator``
maps fixed test tokens to principals, and ``MemoryApprovals`` holds two seeded approvals
(real ones need a held tool or a call waiting for a human). The gateway's real wiring of
both is tested end to end in tests/pipeline/test_admin_e2e.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import uvicorn

from bastion._types import JSONObject
from bastion.admin import (
    AdminApi,
    AdminBackends,
    ApprovalRecord,
    ApprovalStatus,
    Authenticate,
    Conflict,
    FilePolicies,
    NotFound,
    SqliteAudit,
)
from bastion.audit import AuditRecord, AuditStore
from bastion.auth.keys import KeyStore
from bastion.auth.principal import Principal, Unauthenticated
from bastion.pipeline.admin_backends import StoreKeys
from bastion.policy import PolicyStore

ADMIN = "admin-token"
AUDITOR = "auditor-token"
USER = "user-token"
ROLES = {ADMIN: ("admin",), AUDITOR: ("auditor",), USER: ("user", "developer")}

POLICY = """\
roles:
  admin:
  developer:
rules:
  - id: devs-read
    effect: allow
    roles: [developer]
    tools: ["github__search"]
"""


def token_authenticator() -> Authenticate:
    """Fixed tokens to Principals: enough to exercise the API's own access rules."""

    async def authenticate(header: str | None) -> Principal:
        if header is None:
            raise Unauthenticated("no credential", presented=False)
        scheme, _, token = header.partition(" ")
        roles = ROLES.get(token) if scheme.lower() == "bearer" else None
        if roles is None:
            raise Unauthenticated("unknown token", presented=True)
        name = token.removesuffix("-token")
        return Principal(id=name, credential_id=f"key-{name}", method="api-key", roles=roles)

    return authenticate


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class MemoryApprovals:
    """Placeholder approval backend (in memory) until the real approval store is wired."""

    def __init__(self) -> None:
        self.items = {
            "a1": ApprovalRecord(id="a1", principal="user", tool="shell__exec", requested_at=1.0),
            "a2": ApprovalRecord(id="a2", principal="user", tool="shell__exec", requested_at=2.0),
        }

    async def pending(self) -> list[ApprovalRecord]:
        return [a for a in self.items.values() if a.status == "pending"]

    async def approve(self, approval_id: str, by: str) -> ApprovalRecord:
        return self._decide(approval_id, by, "approved")

    async def reject(self, approval_id: str, by: str) -> ApprovalRecord:
        return self._decide(approval_id, by, "rejected")

    def _decide(self, approval_id: str, by: str, status: str) -> ApprovalRecord:
        old = self.items.get(approval_id)
        if old is None:
            raise NotFound("no such approval")
        if old.status != "pending":
            raise Conflict("already decided")
        decision: ApprovalStatus = "approved" if status == "approved" else "rejected"
        new = msgspec.structs.replace(old, status=decision, decided_by=by)
        self.items[approval_id] = new
        return new


class StaticUpstreams:
    def status(self) -> list[JSONObject]:
        return [{"server": "github", "replica": 0, "state": "ready", "restarts": 0}]


def write_audit(path: Path, count: int) -> None:
    store = AuditStore.open(path)
    try:
        store.append(
            AuditRecord(
                time=1_800_000_000.0 + i,
                principal=f"user{i % 3}",
                credential_id=f"key-{i % 3}",
                method="tools/call" if i % 2 else "tools/list",
                target="github__search",
            )
            for i in range(1, count + 1)
        )
        store.checkpoint()
    finally:
        store.close()


@dataclass
class Admin:
    """One AdminApi over real files in ``root``, and what it reported."""

    root: Path
    approvals: MemoryApprovals = field(default_factory=MemoryApprovals)
    events: list[tuple[str | None, str, str | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.policy_path = self.root / "policy.yaml"
        self.policy_path.write_text(POLICY)
        self.audit_path = self.root / "audit" / "audit.db"
        write_audit(self.audit_path, 25)
        self.store = PolicyStore(self.policy_path)
        self.key_store = KeyStore(self.root / "keys" / "keys.db")
        self.keys = StoreKeys(self.key_store)

    def app(self) -> AdminApi:
        async def on_event(
            principal: Principal | None, action: str, target: str | None, outcome: str
        ) -> None:
            self.events.append((principal.id if principal else None, action, target, outcome))

        backends = AdminBackends(
            keys=self.keys,
            policies=FilePolicies(self.store),
            approvals=self.approvals,
            audit=SqliteAudit(self.audit_path),
            upstreams=StaticUpstreams(),
        )
        return AdminApi(token_authenticator(), backends, audit=on_event)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _server(app: AdminApi) -> uvicorn.Server:
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, ws="none")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


@contextlib.contextmanager
def serve_in_thread(app: AdminApi) -> Iterator[str]:
    """Serve ``app`` on a loopback port from a thread (for sync clients); yields the base URL."""
    sock = _bind()
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the admin API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.asynccontextmanager
async def serving(app: AdminApi) -> AsyncIterator[str]:
    """Serve ``app`` on a loopback port in the current event loop; yields the base URL."""
    sock = _bind()
    server = _server(app)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
    sock.close()
