"""The security side of one running gateway: authenticates HTTP callers, opens the audit
log, holds the current policy (re-read when its file changes), builds the pipeline once, and
guards every connection.

``Security.run`` is a long-lived task: it reports itself started once the pipeline exists,
then polls the policy file until cancelled, and closes the audit log (draining it) last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from bastion.audit.log import AuditLog
from bastion.audit.redact import Redactor
from bastion.auth.authenticator import Authenticator
from bastion.auth.keys import KeyStore, KeyStoreError
from bastion.auth.local import local_principal
from bastion.auth.metadata import metadata_paths, protected_resource_metadata
from bastion.auth.principal import Principal
from bastion.config.model import Config
from bastion.config.paths import state_dir
from bastion.errors import ConfigError
from bastion.pipeline.approvals import ApprovalGate
from bastion.pipeline.audit_stage import AuditStage
from bastion.pipeline.authenticate import HttpAuthentication
from bastion.pipeline.authorize import AuthorizeStage
from bastion.pipeline.connection import GuardedConnection
from bastion.pipeline.pipeline import Pipeline
from bastion.pipeline.stage import Stage
from bastion.policy.builtin import builtin_policy
from bastion.policy.engine import Policy
from bastion.policy.store import PolicyStore
from bastion.server.connection import ServerConnection
from bastion.transport.http_auth import HttpAuthenticator, LocalAuth

Probe = Callable[[], tuple[int, bytes]]
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

__all__ = ["HUB_ROLE", "Security", "default_audit_path"]

HUB_ROLE: Final = "local"  # the role of the key a running gateway lends the local hub
HUB_KEY_TTL: Final = 7 * 24 * 3600.0

logger = logging.getLogger(__name__)


def default_audit_path() -> Path:
    return state_dir() / "audit.db"


class Security:
    """Build with the configuration (a bad policy file raises ``ConfigError`` here, before
    anything listens); run ``run`` in the gateway's task group before serving."""

    def __init__(self, config: Config, *, default_keys_db: Path | None = None) -> None:
        self.config = config
        self.authenticator: Authenticator | None = None
        if config.auth is not None:
            keys_db = default_keys_db or state_dir() / "keys.db"
            self._keys_db = Path(config.auth.api_keys.db) if config.auth.api_keys.db else keys_db
            try:
                self.authenticator = Authenticator.from_settings(
                    config.auth, default_keys_db=keys_db
                )
            except KeyStoreError as exc:
                raise ConfigError(f"auth.api_keys: {exc}") from exc
        file = config.policy.file
        self.policy_store = PolicyStore(Path(file)) if file is not None else None
        self._builtin = builtin_policy() if file is None else None
        self.approvals = ApprovalGate()
        self.audit: AuditLog | None = None
        self._pipeline: Pipeline | None = None

    def http_authenticator(self) -> HttpAuthenticator:
        """How the HTTP face learns who calls: the configured credentials, or the local user
        when ``auth`` is not configured (loopback only, checked by ``check_bind``)."""
        if self.authenticator is None or self.config.auth is None:
            return LocalAuth(local_principal())
        return HttpAuthentication(self.authenticator, self.config.auth.resource, lambda: self.audit)

    def public_probes(self) -> dict[str, Probe]:
        """RFC 9728 protected-resource metadata (AU-3), served without authentication."""
        if self.config.auth is None:
            return {}
        document = protected_resource_metadata(self.config.auth)

        def metadata() -> tuple[int, bytes]:
            return 200, document

        return {path: metadata for path in metadata_paths(self.config.auth.resource)}

    @contextlib.contextmanager
    def hub_credential(self) -> Iterator[str | None]:
        """An API key (role ``local``) for the local hub's registry entry, revoked when the
        block ends; None when API keys are not in use (the face needs no credential, or
        takes only tokens the hub cannot mint)."""
        auth = self.config.auth
        if auth is None or not auth.api_keys.enabled:
            yield None
            return
        store = KeyStore(self._keys_db)
        name = f"hub-local-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            key, plaintext = store.create(name, [HUB_ROLE], expires_in=HUB_KEY_TTL)
        except KeyStoreError as exc:
            logger.warning("no key for the local hub: %s", exc)
            store.close()
            yield None
            return
        try:
            yield plaintext
        finally:
            store.revoke(key.id)
            store.close()

    def check_bind(self, host: str) -> None:
        """TR-3: a face reachable from other machines must authenticate its callers.

        Raises:
            ConfigError: ``host`` is not loopback and ``auth`` is not configured.
        """
        if self.config.auth is None and host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"refusing to listen on {host} without authentication: configure auth "
                "(API keys, OIDC or mTLS), or listen on 127.0.0.1"
            )

    def policy(self) -> Policy:
        if self.policy_store is not None:
            return self.policy_store.current
        assert self._builtin is not None
        return self._builtin

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("Security.run has not started")
        return self._pipeline

    def guard(
        self, inner: ServerConnection, principal: Principal, session_id: str | None = None
    ) -> GuardedConnection:
        return self.pipeline.guard(inner, principal, session_id)

    def connection_factory(
        self, make: Callable[[], ServerConnection]
    ) -> Callable[[Principal, str | None], GuardedConnection]:
        """A transport's connection factory: a new guarded connection per caller/session."""

        def factory(principal: Principal, session_id: str | None) -> GuardedConnection:
            return self.guard(make(), principal, session_id)

        return factory

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        settings = self.config.audit
        if not settings.enabled:
            logger.warning("the audit log is off (audit.enabled: false)")
            self._pipeline = Pipeline(self._stages(None))
            task_status.started()
            await self._poll_policy()
            return
        path = Path(settings.db) if settings.db else default_audit_path()
        try:
            async with AuditLog(path, redactor=Redactor(settings.redact_fields)) as log:
                self.audit = log
                self._pipeline = Pipeline(self._stages(log))
                task_status.started()
                await self._poll_policy()
        finally:
            self.audit = None
            if self.authenticator is not None:
                with anyio.CancelScope(shield=True):
                    await self.authenticator.aclose()

    def _stages(self, log: AuditLog | None) -> list[Stage]:
        stages: list[Stage] = []
        if log is not None:
            stages.append(AuditStage(log))
        stages.append(AuthorizeStage(self.policy, self.approvals))
        return stages

    async def _poll_policy(self) -> None:
        store = self.policy_store
        if store is None:
            await anyio.sleep_forever()
            return
        while True:
            await anyio.sleep(self.config.policy.reload_interval)
            store.poll()
