"""The 2025-11-25 sessions that hold ``resources/subscribe`` subscriptions, re-decided when
the policy may have changed (AZ-1, SE-3).

A subscription outlives the request that made it, as a ``subscriptions/listen`` stream does
(``authorize.reauthorize``), so the decision taken when it was made is not enough: on every
policy poll and credential check each subscribed URI of each session is decided again with the
session's principal, as the ``resources/subscribe`` that made it was (method and target, no
arguments). A refused one is dropped from the session's set at once (its updates stop before
the event loop runs anything else), then unsubscribed upstream like ``resources/unsubscribe``
and audited as that subscribe, denied, with ``detail.ended`` like an ended listen stream. The
table holds the attached sessions only; a session with no subscription costs one length check,
and an update costs nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from bastion.audit.record import AuditRecord
from bastion.errors import Denied
from bastion.pipeline.targets import SUBSCRIBE
from bastion.policy.decision import Decision, PolicyRequest, Target
from bastion.policy.engine import Policy
from bastion.server.registry import ServerApp
from bastion.server.subscriptions import release

if TYPE_CHECKING:
    from bastion.pipeline.connection import GuardedConnection

__all__ = ["ENDED_REASON", "Dropped", "SubscribedSessions"]

ENDED_REASON: Final = "no longer allowed by the policy"  # as an ended listen stream says


@dataclass(frozen=True, slots=True)
class Dropped:
    """One subscription the policy no longer allows, already out of its session's set."""

    connection: GuardedConnection
    uri: str
    decision: Decision

    def record(self, now: float) -> AuditRecord:
        """Its audit record: the subscribe, denied now by ``decision``."""
        principal = self.connection.principal
        return AuditRecord(
            time=now,
            principal=principal.id,
            credential_id=principal.credential_id,
            session=self.connection.session,
            method=SUBSCRIBE,
            target=self.uri,
            decision="deny",
            rule_id=self.decision.rule_id,
            outcome=str(Denied.code),
            detail={"ended": ENDED_REASON},
        )


class SubscribedSessions:
    """The attached connections (``GuardedConnection.attach`` adds, ``detach`` removes)."""

    def __init__(self) -> None:
        self._open: set[GuardedConnection] = set()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: GuardedConnection) -> None:
        self._open.add(connection)

    def discard(self, connection: GuardedConnection) -> None:
        self._open.discard(connection)

    def redecide(self, policy: Policy, now: float) -> list[Dropped]:
        """Drop, without awaiting, every subscription ``policy`` refuses at ``now``; returns
        them, for ``release`` upstream and the audit log."""
        at = datetime.fromtimestamp(now, UTC)
        dropped: list[Dropped] = []
        for connection in list(self._open):
            subscriptions = connection.inner.subscriptions
            if not subscriptions:
                continue
            principal = connection.principal
            for uri in sorted(subscriptions):
                request = PolicyRequest(
                    principal=principal.id,
                    method=SUBSCRIBE,
                    at=at,
                    roles=principal.roles,
                    unsure_roles=principal.unsure_roles,
                    claims=principal.claims,
                    target=Target("resource", uri),
                )
                decision = policy.decide(request)
                if not decision.allowed:
                    subscriptions.discard(uri)
                    dropped.append(Dropped(connection, uri, decision))
        return dropped

    @staticmethod
    async def release(dropped: list[Dropped]) -> None:
        """Unsubscribe upstream what ``redecide`` dropped (shielded and bounded)."""
        by_app: dict[int, tuple[ServerApp, list[str]]] = {}
        for item in dropped:
            app = item.connection.inner.app
            by_app.setdefault(id(app), (app, []))[1].append(item.uri)
        for app, uris in by_app.values():
            await release(app, uris)
