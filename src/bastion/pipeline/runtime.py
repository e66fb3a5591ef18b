"""The security side of one running gateway: authenticates HTTP callers, opens the audit
log, holds the current policy (re-read when its file changes; each reload audited by
``policy_reloads``), builds the pipeline once, guards every connection, and hands the
gateway its screens of what upstreams offer (pins and held definitions:
``upstream_screens``; what they let through filtered by ``listing_screens``). An audit or
pin database that anyone else may write, or mTLS accounts that do not fit the client CA
bundle, is a configuration error, said before anything listens. The client CRL is re-read
once a second, and its status is part of ``/readyz``.

``Security.run`` is a long-lived task: it reports itself started once the pipeline exists,
then polls the policy file until cancelled, and closes the audit log (draining it) last:
once the requests still in the pipeline have their records (cancelled with it by a stop
signal, they unwind meanwhile; ``CLOSE_WAIT`` seconds at most).
Open ``subscriptions/listen`` streams are re-authorized on every policy poll (a reloaded
policy, and time conditions) and every credential check: one its caller may no longer hold
ends (AU-5, SE-3), and so does each 2025-11-25 ``resources/subscribe`` subscription the
policy no longer allows (``subscribed``); so do the stateless calls in flight of a revoked
or expired credential, a client certificate revoked in the re-read CRL (or of unknown
status) included (``lapses`` says whose). ``hub_credential`` lends the local hub a key
(``hub_key``). The approvals' arguments digests are keyed by a secret beside the audit log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from bastion._paths import audit_db, keys_db
from bastion.audit.log import AuditLog
from bastion.audit.redact import Redactor
from bastion.auth.authenticator import Authenticator
from bastion.auth.keys import KeyStore, KeyStoreError
from bastion.auth.local import local_principal
from bastion.auth.metadata import metadata_paths, protected_resource_metadata
from bastion.auth.mtls import MtlsConfigError
from bastion.auth.pepper import PepperError, load_or_create_pepper
from bastion.auth.principal import Principal
from bastion.config.model import Config
from bastion.errors import ConfigError
from bastion.pipeline.approvals import ApprovalGate
from bastion.pipeline.audit_stage import AuditStage
from bastion.pipeline.authenticate import HttpAuthentication
from bastion.pipeline.authorize import reauthorize
from bastion.pipeline.build import build_stages
from bastion.pipeline.connection import GuardedConnection
from bastion.pipeline.foreign_sessions import ForeignSessionAudit
from bastion.pipeline.hub_key import HUB_ROLE, lent_hub_key
from bastion.pipeline.inflight import InFlightCalls
from bastion.pipeline.lapses import lapsed_owners, lapsed_principals
from bastion.pipeline.listens import OpenListens
from bastion.pipeline.listing_screens import filtered_definitions, filtered_tools, listing_filter
from bastion.pipeline.pipeline import Pipeline
from bastion.pipeline.policy_reloads import PolicyPolls, record_policy_change
from bastion.pipeline.stage import Stage
from bastion.pipeline.subscribed import SubscribedSessions
from bastion.pipeline.upstream_screens import UpstreamScreens, refuse_unsafe
from bastion.policy.builtin import builtin_policy
from bastion.policy.engine import Policy
from bastion.policy.store import PolicyStore
from bastion.server.connection import ServerConnection
from bastion.transport.http_auth import HttpAuthenticator, LocalAuth

Probe = Callable[[], tuple[int, bytes]]
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
CLOSE_WAIT: Final = 10.0  # seconds the requests in the pipeline get to record their end

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from bastion.gateway.gateway import Gateway
    from bastion.transport.http_server import StreamableHttpApp

__all__ = ["HUB_ROLE", "Security"]

logger = logging.getLogger(__name__)


class Security:
    """Build with the configuration (a bad policy file raises ``ConfigError`` here, before
    anything listens); run ``run`` in the gateway's task group before serving."""

    def __init__(self, config: Config, gateway: Gateway) -> None:
        self.config = config
        self.gateway = gateway
        self.authenticator: Authenticator | None = None
        keys = config.auth.api_keys.db if config.auth is not None else None
        self.keys_db = Path(keys) if keys else keys_db()
        if config.auth is not None:
            tls = config.gateway.tls
            try:
                self.authenticator = Authenticator.from_settings(
                    config.auth,
                    default_keys_db=self.keys_db,
                    client_ca=Path(tls.client_ca) if tls and tls.client_ca else None,
                    client_crl=Path(tls.client_crl) if tls and tls.client_crl else None,
                )
            except KeyStoreError as exc:
                raise ConfigError(f"auth.api_keys: {exc}") from exc
            except MtlsConfigError as exc:
                raise ConfigError(str(exc)) from exc
        file = config.policy.file
        self.policy_store = PolicyStore(Path(file)) if file is not None else None
        self._builtin = builtin_policy() if file is None else None
        self.audit_path = Path(config.audit.db) if config.audit.db else audit_db()
        if config.audit.enabled:
            refuse_unsafe("audit.db", self.audit_path)
        self.approvals = ApprovalGate(
            redactor=Redactor(config.audit.redact_fields), key=self._arguments_key()
        )
        self.listens = OpenListens()
        self.subscribed = SubscribedSessions()
        self.calls = InFlightCalls()
        self.audit: AuditLog | None = None
        # SE-2, AD-1: the HTTP face's refusals of someone else's session, audited.
        self.foreign_sessions = ForeignSessionAudit(lambda: self.audit)
        self.screens = UpstreamScreens(config, lambda: self.audit)
        self.pins = self.screens.pins
        self.held_definitions = self.screens.held_definitions  # in the pin database
        # What the screens let through is filtered once per rebuild (IN-5, TC-4).
        listing = listing_filter(config)
        tools = self.screens.tools if self.pins is not None else None
        definitions = self.screens.definitions if self.held_definitions is not None else None
        gateway.tool_screen = filtered_tools(tools, listing)
        gateway.definition_screen = filtered_definitions(definitions, listing)
        self._pipeline: Pipeline | None = None

    def _arguments_key(self) -> bytes | None:
        """The key of the approvals' arguments digests (AD-3): kept beside the audit log
        (``audit.pepper``, 0600), so the digests it records link calls across restarts and
        across gateways sharing it; None (a key for this process only) without the log.

        Raises:
            ConfigError: the key file is unusable (readable by others, wrong size).
        """
        if not self.config.audit.enabled:
            return None
        try:
            return load_or_create_pepper(self.audit_path, create=True)
        except (PepperError, OSError) as exc:
            raise ConfigError(f"audit.db: {exc}") from exc

    def http_authenticator(self) -> HttpAuthenticator:
        """How the HTTP face learns who calls: the configured credentials, or the local user
        when ``auth`` is not configured (loopback only, checked by ``check_bind``)."""
        if self.authenticator is None or self.config.auth is None:
            return LocalAuth(local_principal())
        return HttpAuthentication(self.authenticator, self.config.auth.resource, lambda: self.audit)

    def readiness(self) -> dict[str, str]:
        """What ``/readyz`` adds: the client CRL's status (``ok`` or why every client
        certificate is refused), when one is configured; the gateway is ready only if ok."""
        status = self.authenticator.revocation_status(time.time()) if self.authenticator else None
        return {} if status is None else {"clientCrl": status}

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
        """An API key for the local hub's registry entry (``hub_key.lent_hub_key``)."""
        auth = self.config.auth
        enabled = auth is not None and auth.api_keys.enabled
        with lent_hub_key(self.keys_db if enabled else None) as key:
            yield key

    async def watch_sessions(self, app: StreamableHttpApp, interval: float = 1.0) -> None:
        """SE-3: end the sessions of credentials that were revoked or expired, whether or not
        their holder sends anything again (``bastion keys revoke`` runs in another process,
        so the key database is the truth; a client certificate counts as revoked once the
        re-read CRL revokes it or cannot be trusted); DS-4: drop the replay of streams
        finished more than ``replay_ttl`` ago, idle or not; AU-5: drop the parked upstream
        calls of revoked or expired keys and certificates, and end the stateless calls in
        flight and listen streams of revoked or expired credentials; AU-1: re-read the
        client CRL if its file changed (parsed in a worker thread, DS-4). Runs until
        cancelled."""
        keys = self.config.auth.api_keys.enabled if self.config.auth is not None else False
        store = KeyStore(self.keys_db) if keys else None
        try:
            while True:
                await anyio.sleep(interval)
                app.expire_replay()
                now = time.time()
                if self.authenticator is not None:
                    await self.authenticator.refresh(now)
                lapsed = lapsed_principals(store, now, self.authenticator)
                ended = app.end_sessions_where(lapsed)
                if ended:
                    logger.info("ended %d session(s) of revoked or expired credentials", ended)
                dropped = self.gateway.drop_parked(lapsed_owners(store, now, self.authenticator))
                if dropped:
                    logger.info(
                        "dropped %d parked call(s) of revoked or expired keys or certificates",
                        dropped,
                    )
                self._reauthorize_listens(lapsed)
                await self._reauthorize_subscriptions()
                cancelled = self.calls.end_where(lapsed)
                if cancelled:
                    logger.info("ended %d call(s) of revoked or expired credentials", cancelled)
        finally:
            if store is not None:
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
        try:
            if not settings.enabled:
                logger.warning("the audit log is off (audit.enabled: false)")
                self._pipeline = Pipeline(self._stages(None), sessions=self.subscribed)
                task_status.started()
                await self._poll_policy()
                return
            redactor = Redactor(settings.redact_fields)
            async with AuditLog(
                self.audit_path, redactor=redactor, commit_interval=settings.commit_interval
            ) as log:
                self.audit = log
                stages = self._stages(log)
                self._pipeline = Pipeline(stages, sessions=self.subscribed)
                task_status.started()
                try:
                    await self._poll_policy()
                finally:  # AD-1: no request is left to find the log closed
                    await _requests_recorded(stages)
        finally:
            self.audit = None
            with anyio.CancelScope(shield=True):
                if self.authenticator is not None:
                    await self.authenticator.aclose()
                self.screens.close()

    def _stages(self, log: AuditLog | None) -> list[Stage]:
        return build_stages(
            self.config,
            self.gateway.app,
            self.policy,
            self.approvals,
            log,
            listens=self.listens,
            calls=self.calls,
        )

    def _reauthorize_listens(self, lapsed: Callable[[Principal], bool] | None = None) -> None:
        """End the listen streams whose caller ``lapsed`` or the current policy refuses."""
        if len(self.listens):
            ended = reauthorize(self.listens, self.policy(), time.time(), lapsed)
            if ended:
                logger.info("ended %d listen stream(s) no longer authorized", ended)

    async def _reauthorize_subscriptions(self) -> None:
        """Drop the 2025-11-25 subscriptions the current policy refuses (at once, before any
        await), audit each, then unsubscribe them upstream."""
        if not len(self.subscribed):
            return
        now = time.time()
        dropped = self.subscribed.redecide(self.policy(), now)
        if not dropped:
            return
        logger.info("dropped %d resource subscription(s) no longer authorized", len(dropped))
        if self.audit is not None:
            for item in dropped:
                await self.audit.record(item.record(now))
        await self.subscribed.release(dropped)

    async def _poll_policy(self) -> None:
        store = self.policy_store
        if store is None:
            await anyio.sleep_forever()
            return
        polls = PolicyPolls(store)
        while True:
            await anyio.sleep(self.config.policy.reload_interval)
            # Compiled in a thread (DS-4: a big policy would stop the event loop for seconds),
            # swapped on the loop as poll returns. No await between the swap and the check: a
            # stream the new policy refuses is cancelled before it runs again, so it delivers
            # nothing under it.
            # A new version is applied once seen unchanged on two polls (not half-written);
            # a result older than what a PUT /api/v1/policies applied meanwhile is dropped.
            # A failure of any kind keeps the policy in force (IN-1): the poll never raises.
            change, digest = await polls.poll()
            self._reauthorize_listens()
            await self._reauthorize_subscriptions()  # drops before its first await
            if change is not None and self.audit is not None:
                await record_policy_change(self.audit, store.path, change, digest)


async def _requests_recorded(stages: list[Stage]) -> None:
    """Wait, shielded and bounded, until each request in the audit stage has its record."""
    for stage in stages:
        if isinstance(stage, AuditStage):
            with anyio.CancelScope(shield=True):
                if not await stage.settled(CLOSE_WAIT):
                    logger.warning("%d request(s) unrecorded at close", stage.in_flight)
