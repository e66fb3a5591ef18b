"""Resource subscriptions of one connection, in both protocol eras.

2025-11-25 ``resources/subscribe`` and ``unsubscribe`` keep a per-connection set of URIs,
capped at ``MAX_SUBSCRIPTIONS``, handed back to the app when the connection closes (or,
one by one, with ``release`` when the gateway's policy no longer allows them). A
2026-07-28 ``subscriptions/listen`` is one long request that streams the notifications it
asked for; its upstream subscriptions are undone, shielded and bounded, when it ends.
A listen naming a URI the app withholds (``ServerApp.withheld``) is refused as not found,
as the connection refuses a subscribe to one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

import anyio

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidParams
from bastion.protocol import types as t
from bastion.protocol.versions import META_SUBSCRIPTION_ID
from bastion.server.registry import ServerApp
from bastion.session.peer import Call

__all__ = [
    "MAX_SUBSCRIPTIONS",
    "UNSUBSCRIBE_GRACE",
    "forget",
    "listen",
    "release",
    "subscribe",
    "unsubscribe",
]

logger = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS: Final = 256  # resource subscriptions per connection
UNSUBSCRIBE_GRACE: Final = 5.0  # seconds to undo upstream subscriptions of a closed stream
LISTEN_BUFFER: Final = 16  # notifications a listener may lag behind before some are dropped
_LIST_FLAGS: Final = {
    "tools": "toolsListChanged",
    "prompts": "promptsListChanged",
    "resources": "resourcesListChanged",
}


async def subscribe(app: ServerApp, subscriptions: set[str], uri: str) -> None:
    """Add ``uri`` to a connection's ``subscriptions``, subscribing upstream when new.

    Raises:
        InvalidParams: the connection already has ``MAX_SUBSCRIPTIONS``.
    """
    if uri in subscriptions:
        return
    if len(subscriptions) >= MAX_SUBSCRIPTIONS:
        raise InvalidParams("subscription limit", message="Too many subscriptions")
    hook = app.subscription_hook
    if hook is not None:
        await hook(uri, True)
    subscriptions.add(uri)


async def unsubscribe(app: ServerApp, subscriptions: set[str], uri: str) -> None:
    if uri in subscriptions:
        subscriptions.discard(uri)
        hook = app.subscription_hook
        if hook is not None:
            await hook(uri, False)


async def release(app: ServerApp, uris: Iterable[str]) -> None:
    """Unsubscribe upstream the ``uris`` a connection dropped without ``unsubscribe`` (a
    policy that no longer allows them), shielded and bounded by ``UNSUBSCRIBE_GRACE``."""
    hook = app.subscription_hook
    if hook is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(UNSUBSCRIBE_GRACE):
        for uri in uris:
            await hook(uri, False)


def forget(app: ServerApp, subscriptions: set[str]) -> None:
    """Drop a closed connection's ``subscriptions``, queueing their upstream unsubscribes."""
    if app.subscription_hook is not None:
        # A connection closes synchronously (transport teardown); the unsubscribe calls
        # upstream are bookkeeping, so they are handed to the app to run when it can.
        app.pending_unsubscribes.extend(subscriptions)
    subscriptions.clear()


async def listen(app: ServerApp, call: Call, params: t.SubscriptionsListenParams) -> JSONValue:
    """Serve one ``subscriptions/listen``: acknowledge, then stream until the call ends.

    Raises:
        InvalidParams: ``resourceSubscriptions`` is not a list of URIs, has more than
            ``MAX_SUBSCRIPTIONS``, or names a URI the app withholds (refused before
            acknowledging, as subscribe is).
    """
    wanted = params.notifications
    requested = wanted.get("resourceSubscriptions", [])
    if not isinstance(requested, list) or not all(isinstance(u, str) for u in requested):
        raise InvalidParams("resourceSubscriptions is not a list of URIs")
    uris = {u for u in requested if isinstance(u, str)}
    if len(uris) > MAX_SUBSCRIPTIONS:
        raise InvalidParams("subscription limit", message="Too many subscriptions")
    for uri in sorted(uris):
        if app.withholds(uri):
            raise InvalidParams("unknown resource", data={"uri": uri}, message="Resource not found")
    sub_meta = {META_SUBSCRIPTION_ID: call.id}
    await call.notify(
        "notifications/subscriptions/acknowledged", {"_meta": sub_meta, "notifications": wanted}
    )
    send, receive = anyio.create_memory_object_stream[tuple[str, JSONObject]](LISTEN_BUFFER)

    def offer(item: tuple[str, JSONObject]) -> None:
        try:
            send.send_nowait(item)
        except anyio.WouldBlock:
            logger.info("listener %r is not keeping up; a notification was dropped", call.id)

    async def on_change(kind: str) -> None:
        if wanted.get(_LIST_FLAGS.get(kind, "")) is True:
            offer((f"notifications/{kind}/list_changed", {"_meta": sub_meta}))

    async def on_update(uri: str) -> None:
        if uri in uris:
            offer(("notifications/resources/updated", {"uri": uri, "_meta": sub_meta}))

    undo = [app.on_list_changed(on_change), app.on_resource_updated(on_update)]
    hook = app.subscription_hook
    followed: list[str] = []
    try:
        for uri in sorted(uris):
            if hook is not None:
                await hook(uri, True)
            followed.append(uri)
        async with send, receive:
            async for method, note_params in receive:
                await call.notify(method, note_params)
    finally:
        for u in undo:
            u()
        if hook is not None and followed:
            with anyio.CancelScope(shield=True), anyio.move_on_after(UNSUBSCRIBE_GRACE):
                for uri in followed:
                    await hook(uri, False)
    return {"_meta": sub_meta}
