"""``pipeline.subscribed``: 2025-11-25 subscriptions re-decided by the current policy (AZ-1,
SE-3): a refused URI leaves the session's set and is unsubscribed upstream; an allowed one
stays; a detached session is no longer in the table."""

from __future__ import annotations

import secrets
import time

import anyio

from bastion.pipeline import Pipeline
from bastion.pipeline.subscribed import ENDED_REASON, SubscribedSessions
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import ServerConnection
from bastion.server.registry import ServerApp
from tests.pipeline.support import policy, principal

ALLOW_BOTH = """\
version: 1
roles: {dev: {}}
rules:
  - {id: both, effect: allow, roles: [dev], resources: ["res://a", "res://b"]}
"""
ALLOW_B = ALLOW_BOTH.replace('"res://a", ', "")


def test_az1_se3_a_refused_subscription_is_dropped_and_unsubscribed_upstream() -> None:
    app = ServerApp("gateway", "1.0")
    hook_calls: list[tuple[str, bool]] = []

    async def hook(uri: str, on: bool) -> None:
        hook_calls.append((uri, on))

    app.subscription_hook = hook
    table = SubscribedSessions()
    inner = ServerConnection(app, RequestStateSealer([secrets.token_bytes(32)]))
    connection = Pipeline([], sessions=table).guard(inner, principal("alice", "dev"), "s-1")
    connection.attach(object())  # type: ignore[arg-type]  # no notification is sent here
    inner.subscriptions.update({"res://a", "res://b"})

    assert table.redecide(policy(ALLOW_BOTH), time.time()) == []
    dropped = table.redecide(policy(ALLOW_B), time.time())
    assert [(d.uri, d.decision.allowed) for d in dropped] == [("res://a", False)]
    assert inner.subscriptions == {"res://b"}  # updates of res://a stop at once
    anyio.run(table.release, dropped)
    assert hook_calls == [("res://a", False)]
    record = dropped[0].record(1.0)
    assert (record.principal, record.method, record.target, record.decision) == (
        "alice",
        "resources/subscribe",
        "res://a",
        "deny",
    )
    assert record.detail == {"ended": ENDED_REASON}
    assert record.session == connection.session
    connection.detach()
    assert len(table) == 0
