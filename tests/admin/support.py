"""Admin API test support: one ``AdminApi`` over the gateway's real parts, served on a
loopback socket.

- Authentication: the gateway's ``Authenticator`` (built from the ``auth`` section of a real
  configuration, as ``Security`` builds it), called as src/bastion/pipeline/admin_mount.py
  calls it. Callers present real API keys (``bst_...``) created in the API's own key store
  (``StoreKeys`` over a ``KeyStore`` in tmp_path, the one ``/api/v1/keys`` manages): names
  ``admin``, ``auditor`` and ``user`` (roles user, developer), so principals are
  ``apikey:<name>``. Each ``Admin`` has its own keys: use ``admin.auth(ADMIN)``.
- Approvals: ``GatewayApprovals`` over a real ``ApprovalGate``, a real ``PinStore`` and real
  ``HeldDefinitions`` (the same database), with the gateway's catalog rebuild as its
  ``on_catalog_changed`` and the decisions' pin events kept in ``Admin.pin_events``.
  ``Admin.call`` makes a real tool call through the authorize stage (``CALL_POLICY``,
  ``approval: human``; the policy file the API serves has no rules for an MCP handshake),
  which leaves a call waiting for an admin;
  ``Admin.hold_changed_tool`` makes the pin store hold a changed definition, and
  ``Admin.hold_definition`` the poison screen a poisoned prompt, resource or template.
- Upstreams: the real ``Gateway`` the API reads status from, configured with one upstream
  (``github``) and never started (the tests need no upstream process), so its one replica is
  ``starting``; tests/pipeline/test_admin_e2e.py sees them ``ready`` in a running gateway.
- Policy and audit: the real policy file (``PolicyStore``) and audit database, read with
  ``SqliteAudit`` (no live log runs here, so there is nothing for ``LiveAudit`` to flush).

Two things stay the tests' own: the admin events go to ``Admin.events`` (the gateway writes
them to its audit log, as test_audit.py does with ``audit_events``), and ``WWW-Authenticate``
is the API's plain ``Bearer`` challenge (the gateway adds its RFC 9728 metadata URL; see
test_admin_e2e.py).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import anyio
import uvicorn

from bastion._types import JSONObject
from bastion.admin import (
    READ_ACTIONS,
    AdminApi,
    AdminBackends,
    Authenticate,
    FilePolicies,
    SqliteAudit,
)
from bastion.audit import AuditRecord, AuditStore
from bastion.auth import Authenticator, KeyStore, Principal
from bastion.config import parse_config
from bastion.errors import PeerError
from bastion.gateway.gateway import Gateway
from bastion.guard import PinStore, PoisonScanner, tool_hash
from bastion.guard.held import DefinitionDecision, HeldDefinitions
from bastion.guard.pins import PinEvent
from bastion.guard.screen import LIST_KINDS, DefinitionScreen
from bastion.pipeline import ApprovalGate, AuthorizeStage
from bastion.pipeline.admin_approvals import GatewayApprovals
from bastion.pipeline.admin_backends import StoreKeys
from bastion.pipeline.authenticate import client_cert_of, peer_of
from bastion.policy import PolicyStore
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from bastion.transport._http_asgi import Scope
from tests.pipeline.support import app_with_tools, guarded, policy
from tests.support import BASTION

# Names of the API keys every Admin creates, and their roles.
ADMIN = "admin"
AUDITOR = "auditor"
USER = "user"
ROLES = {ADMIN: ("admin",), AUDITOR: ("auditor",), USER: ("user", "developer")}
ARGUMENTS_KEY = b"admin-support-arguments-key-32-bytes!"  # the approval gate's (AD-3)

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

# The gateway's configuration: one upstream, and API-key authentication (``api_keys.db`` is
# set per Admin).
CONFIG = f"""\
servers:
  github:
    command: {json.dumps(str(BASTION))}
    args: [fixture, --stdio]
auth:
  resource: http://127.0.0.1/mcp
"""

# What the authorize stage enforces for ``Admin.call``: developers may run shell__exec once
# a human approved (TC-6).
CALL_POLICY = """\
roles:
  developer:
rules:
  - id: handshake
    effect: allow
    roles: [developer]
    methods: [initialize, ping, "notifications/*", tools/list, server/discover]
  - id: devs-exec
    effect: allow
    roles: [developer]
    tools: [shell__exec]
security:
  tools:
    shell__exec: {level: high, approval: human}
"""
_CALL_RULES = policy(CALL_POLICY)


def gateway_authenticate(authenticator: Authenticator) -> Authenticate:
    """The admin API's ``Authenticate`` as ``admin_api`` (src/bastion/pipeline/admin_mount.py)
    builds it from the gateway's authenticator: the header, the client's address and its TLS
    certificate (none here: plain HTTP; tests/security/test_mtls.py has the HTTPS case)."""

    async def authenticate(authorization: str | None, scope: Scope) -> Principal:
        return await authenticator.authenticate(
            authorization, client_cert=client_cert_of(scope), peer=peer_of(scope), now=time.time()
        )

    return authenticate


def auth(token: str) -> dict[str, str]:
    """The ``Authorization`` header presenting ``token`` (any string, e.g. a forged one)."""
    return {"authorization": f"Bearer {token}"}


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
    """One AdminApi over the real stores in ``root``, and what it reported. Close it (or use
    it as a context manager) to close its databases."""

    root: Path
    events: list[tuple[str | None, str, str | None, str]] = field(default_factory=list)
    catalog_rebuilds: int = 0
    announced: list[tuple[str, ...]] = field(default_factory=list)  # per catalog rebuild
    pin_events: list[PinEvent | DefinitionDecision] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # tool runs that passed ``Admin.call``
    # AU-8's failed-authentication budget per address; every test comes from 127.0.0.1.
    failures_per_minute: int = 100_000

    @property
    def writes(self) -> list[tuple[str | None, str, str | None, str]]:
        """``events`` without the reads (AD-1 records those too)."""
        return [event for event in self.events if event[1] not in READ_ACTIONS]

    def __post_init__(self) -> None:
        self.policy_path = self.root / "policy.yaml"
        self.policy_path.write_text(POLICY)
        self.audit_path = self.root / "audit" / "audit.db"
        write_audit(self.audit_path, 25)
        self.store = PolicyStore(self.policy_path)
        keys_db = self.root / "keys" / "keys.db"
        throttle = f"  failed_auth: {{per_address_per_minute: {self.failures_per_minute}}}\n"
        keys = f"  api_keys: {{db: {json.dumps(str(keys_db))}}}\n"
        self.config = parse_config(CONFIG + throttle + keys, {})
        assert self.config.auth is not None
        # The API's key store, and the API keys every test presents.
        self.key_store = KeyStore(keys_db)
        self.keys = StoreKeys(self.key_store)
        self.tokens: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}
        for name, roles in ROLES.items():
            record, self.tokens[name] = self.key_store.create(name, roles)
            self.key_ids[name] = record.id
        # The gateway's authenticator opens the same database with its own connection.
        self.authenticator = Authenticator.from_settings(
            self.config.auth, default_keys_db=self.root / "keys" / "unused.db"
        )
        self.authenticate = gateway_authenticate(self.authenticator)
        self.gateway = Gateway(
            self.config, {}, sealer=RequestStateSealer([secrets.token_bytes(32)])
        )
        self.gate = ApprovalGate(key=ARGUMENTS_KEY)
        self.pins = PinStore(self.root / "pins" / "pins.db")
        self.held = HeldDefinitions(self.root / "pins" / "pins.db")
        self.screen = DefinitionScreen(PoisonScanner(), store=self.held)
        self.approvals = GatewayApprovals(
            self.gate,
            self.pins,
            self._catalog_changed,
            definitions=self.held,
            on_decided=self._pin_decided,
        )

    async def _catalog_changed(self, announce: tuple[str, ...]) -> None:
        """What ``admin_api`` runs after a pin decision: rebuild the gateway's catalog."""
        self.catalog_rebuilds += 1
        self.announced.append(announce)
        await self.gateway.rebuild(announce)

    async def _pin_decided(self, event: PinEvent | DefinitionDecision) -> None:
        self.pin_events.append(event)

    def auth(self, name: str) -> dict[str, str]:
        """The ``Authorization`` header with this Admin's API key ``name`` (ADMIN, ...)."""
        return auth(self.tokens[name])

    def backends(self) -> AdminBackends:
        return AdminBackends(
            keys=self.keys,
            policies=FilePolicies(self.store),
            approvals=self.approvals,
            audit=SqliteAudit(self.audit_path),
            upstreams=self.gateway,
        )

    def app(self) -> AdminApi:
        async def on_event(
            principal: Principal | None,
            action: str,
            target: str | None,
            outcome: str,
            detail: JSONObject,
        ) -> None:
            self.events.append((principal.id if principal else None, action, target, outcome))

        return AdminApi(self.authenticate, self.backends(), audit=on_event)

    async def call(self, name: str, tool: str, arguments: JSONObject) -> JSONObject:
        """API key ``name`` calls ``tool`` over an MCP session (2025-11-25, in memory) through
        the authorize stage with ``CALL_POLICY`` and this Admin's ``ApprovalGate``; the tool
        itself only records that it ran (``calls``).

        Raises:
            PeerError: refused; while the call waits for an admin, with ``approvalId``.
        """
        loopback = {"client": ("127.0.0.1", 0)}
        principal = await self.authenticate(self.auth(name)["authorization"], loopback)
        stages = [AuthorizeStage(lambda: _CALL_RULES, self.gate)]
        app = app_with_tools(tool, calls=self.calls)
        async with guarded(app, stages, principal, Era.MODERN) as session:
            try:
                return await session.call_tool(tool, arguments)
            except PeerError as exc:  # raised here, not wrapped by the session's task group
                refused = exc
        raise refused

    def hold_changed_tool(self, server: str, pinned: JSONObject, changed: JSONObject) -> str:
        """Upstream ``server`` offers ``pinned`` (pinned on first use), then ``changed`` (a
        rug pull, held by the pin store); returns the held definition's approval id."""
        self.pins.review(server, [pinned])
        [held] = self.pins.review(server, [changed]).held
        assert (held.reason, held.hash) == ("changed", tool_hash(changed))
        return f"tool:{server}:{held.hash}"

    def hold_definition(self, server: str, list_kind: str, item: JSONObject) -> str:
        """Upstream ``server`` offers the poisoned ``item`` in its ``list_kind`` list
        (``prompts``...), which the poison screen holds; returns its approval id."""
        kept, [held] = self.screen.screen(server, list_kind, [item])
        assert kept == [] and held.kind == LIST_KINDS[list_kind][0]
        return f"{held.kind}:{server}:{held.hash}"

    async def aclose(self) -> None:
        await self.authenticator.aclose()
        self.key_store.close()
        self.pins.close()
        self.held.close()

    def close(self) -> None:
        anyio.run(self.aclose)

    def __enter__(self) -> Admin:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
