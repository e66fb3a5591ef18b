"""One running instance of an upstream MCP server, kept alive by a supervisor loop.

``Replica.run`` starts the server (a child process or an HTTP endpoint), opens a client
session (era detected), reports readiness, watches health, and on any failure restarts it
with exponential backoff. A restart budget opens the circuit: after ``MAX_RESTARTS`` failures
within ``RESTART_WINDOW`` the replica waits ``CIRCUIT_COOLDOWN`` before trying again, and
calls fail fast meanwhile. Calls carry the caller's ``ToolContext`` so progress, logs and
input requests reach the client that asked, and no other. A call's ``_meta`` is built here,
never copied from the client's, so only the gateway sets Bastion's own keys: the caller's
principal (``io.bastion/principal``) goes to servers configured with ``pass_principal``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc

from bastion._types import Clock, JSONObject, JSONValue
from bastion.audit.redact import REDACTED, redact_text
from bastion.client.session import ClientHandlers, ClientSession
from bastion.config.secrets import server_secrets
from bastion.errors import BastionError, MethodNotFound, RequestTimeout, UpstreamUnavailable
from bastion.guard.peer_errors import mask_internal_urls
from bastion.guard.sanitise import MIN_KNOWN_SECRET
from bastion.protocol import types as t
from bastion.protocol.jsonrpc import Notification, RequestId
from bastion.protocol.meta import META_PRINCIPAL
from bastion.protocol.versions import (
    META_CLIENT_CAPABILITIES,
    META_LOG_LEVEL,
    META_SERVER_INFO,
    Era,
)
from bastion.server.context import LOG_LEVELS, InputRequired
from bastion.transport.base import RELATED_REQUEST
from bastion.upstream.parking import PENDING_KEY, Owner, ParkedCall, ParkingLot
from bastion.upstream.spawn import open_upstream

if TYPE_CHECKING:
    from bastion.config.model import ServerConfig
    from bastion.server.context import ToolContext

__all__ = ["LIST_KINDS", "Replica", "ReplicaState"]

logger = logging.getLogger(__name__)

BACKOFF_START: Final = 0.5  # seconds before the first restart
BACKOFF_MAX: Final = 30.0  # the longest wait between restarts
MAX_RESTARTS: Final = 5  # failures within RESTART_WINDOW before the circuit opens
RESTART_WINDOW: Final = 60.0  # seconds
CIRCUIT_COOLDOWN: Final = 30.0  # seconds the circuit stays open
HEALTH_INTERVAL: Final = 15.0  # seconds between health pings
HEALTH_TIMEOUT: Final = 5.0  # seconds a ping may take
HEALTH_MISSES: Final = 3  # consecutive failed pings before a restart
MAX_REASON: Final = 500  # characters of an upstream's last error kept for /readyz
LISTEN_RETRY: Final = 5.0  # seconds before reopening a dropped subscriptions/listen stream
_LISTEN_ALL: Final = {
    "toolsListChanged": True,
    "promptsListChanged": True,
    "resourcesListChanged": True,
}


_ERA_FIELDS: Final = ("resultType", "ttlMs", "cacheScope")
LIST_KINDS: Final = ("tools", "resources", "prompts")  # the lists that can change


class ReplicaState(Enum):
    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    CIRCUIT_OPEN = "circuit-open"
    STOPPED = "stopped"


OnReady = Callable[["Replica"], Awaitable[None]]
OnNotification = Callable[["Replica", Notification], Awaitable[None]]
OnChange = Callable[["Replica", tuple[str, ...]], Awaitable[None]]


class Replica:
    def __init__(
        self,
        server: str,
        index: int,
        config: ServerConfig,
        environ: Mapping[str, str],
        *,
        on_ready: OnReady,
        on_change: OnChange,
        on_notification: OnNotification,
        clock: Clock = time.monotonic,
    ) -> None:
        self.server = server
        self.index = index
        self.config = config
        self._environ = environ
        self._on_ready = on_ready
        self._on_change = on_change
        self._changed = anyio.Event()
        self._changed_kinds: set[str] = set()
        self._resync = False  # re-list and announce only differences (see _notified)
        self._on_notification = on_notification
        self._clock = clock
        self.state = ReplicaState.STARTING
        self.session: ClientSession | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self._failures: list[float] = []
        self._callers: dict[int, ToolContext | ParkedCall] = {}
        # Upstream request id -> the call it was sent for (HTTP streams relate messages).
        self._sent_for: dict[RequestId, ToolContext | ParkedCall] = {}
        self._parking = ParkingLot()
        self._tg: anyio.abc.TaskGroup | None = None  # lives as long as the session
        self._resources: set[str] = set()  # upstream URIs some client is subscribed to
        self.settled = anyio.Event()  # set once the first start attempt ended, either way
        self._attribution_off = False  # see _abandoned
        self._relisten = anyio.Event()
        self._ids = itertools.count(1)
        self.listings: dict[str, list[JSONObject]] = {}

    @property
    def label(self) -> str:
        return self.server if self.config.replicas == 1 else f"{self.server}#{self.index}"

    # -- supervision -----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the upstream running until cancelled."""
        backoff = BACKOFF_START
        try:
            while True:
                self.state = ReplicaState.STARTING
                healthy_since = await self._run_once()
                if healthy_since is not None and self._clock() - healthy_since > RESTART_WINDOW:
                    backoff = BACKOFF_START  # it ran well for a while: start over gently
                self.restarts += 1
                now = self._clock()
                self._failures = [f for f in self._failures if now - f < RESTART_WINDOW] + [now]
                if len(self._failures) >= MAX_RESTARTS:
                    self.state = ReplicaState.CIRCUIT_OPEN
                    logger.warning(
                        "upstream %s: %d failures in %.0fs, circuit open for %.0fs",
                        self.label,
                        len(self._failures),
                        RESTART_WINDOW,
                        CIRCUIT_COOLDOWN,
                    )
                    await anyio.sleep(CIRCUIT_COOLDOWN)
                    self._failures.clear()
                    continue
                self.state = ReplicaState.BACKOFF
                logger.info(
                    "upstream %s: restarting in %.1fs (%s)", self.label, backoff, self.last_error
                )
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self.state = ReplicaState.STOPPED
            self.session = None

    async def _run_once(self) -> float | None:
        ready_at: float | None = None
        handlers = ClientHandlers(
            sampling=self._forward("sampling/createMessage"),
            elicitation=self._forward("elicitation/create"),
            roots=self._forward("roots/list"),
            on_notification=self._notified,
        )
        try:
            async with open_upstream(self.config, self._environ, name=self.label) as stream:
                self.pid = getattr(stream, "pid", None)
                async with ClientSession(
                    stream,
                    client_name="bastion-gateway",
                    handlers=handlers,
                    request_timeout=self.config.request_timeout,
                ) as session:
                    with anyio.fail_after(self.config.startup_timeout):
                        info = await session.connect()
                        await self._refresh(session)
                    logger.info(
                        "upstream %s ready (%s, %s)",
                        self.label,
                        info.era.value,
                        info.protocol_version,
                    )
                    async with anyio.create_task_group() as tg:
                        # Parked calls run in this group: it exists before anyone is told
                        # the replica is ready (on_ready rebuilds the catalog, and awaits).
                        self._tg = tg
                        self.session = session
                        self.state = ReplicaState.READY
                        ready_at = self._clock()
                        await self._on_ready(self)
                        self.settled.set()
                        tg.start_soon(self._apply_changes, session)
                        if info.era is Era.MODERN:
                            tg.start_soon(self._listen, session)
                        else:
                            for uri in sorted(self._resources):  # subscriptions survive restarts
                                tg.start_soon(self.subscribe, uri, True)
                        self.last_error = await self._watch(session)
                        tg.cancel_scope.cancel()
        except Exception as exc:  # one upstream's failure must never stop the gateway
            self.last_error = _clean_reason(_describe(exc, self.label), self._secrets())
        finally:
            self.settled.set()
            self.session = None
            self._tg = None
            self._parking = ParkingLot()  # their upstream calls died with the session
            self._attribution_off = False  # a new process has no abandoned calls
        logger.warning("upstream %s stopped: %s", self.label, self.last_error)
        return ready_at

    async def _apply_changes(self, session: ClientSession) -> None:
        """Re-list after the upstream announced changes. Runs in its own task: the
        notification arrives on the session's reader, which must stay free to read the
        answers to these very list requests."""
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            kinds = set(self._changed_kinds)
            self._changed_kinds.clear()
            resync, self._resync = self._resync, False
            before = self.listings
            try:
                await self._refresh(session)
            except BastionError as exc:
                logger.warning("upstream %s: re-listing failed: %s", self.label, exc.detail)
                continue
            if resync:  # announce only what really changed while nobody listened
                kinds |= {
                    kind
                    for kind in LIST_KINDS
                    if _lists(before, kind) != _lists(self.listings, kind)
                }
            if kinds:
                await self._on_change(self, tuple(sorted(kinds)))

    async def _listen(self, session: ClientSession) -> None:
        """2026-07-28 upstreams announce list changes and resource updates only on a
        subscriptions/listen stream; it is reopened whenever the set of resources changes."""
        while True:
            relisten = self._relisten = anyio.Event()
            wanted: JSONObject = {**_LISTEN_ALL, "resourceSubscriptions": sorted(self._resources)}
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on, relisten, tg.cancel_scope)
                try:
                    await session.request(
                        "subscriptions/listen", {"notifications": wanted}, timeout=0
                    )
                except BastionError as exc:
                    logger.info(
                        "upstream %s: listen stream ended (%s)",
                        self.label,
                        exc.detail or exc.wire_message,
                    )
                    with anyio.move_on_after(LISTEN_RETRY):
                        await relisten.wait()
                tg.cancel_scope.cancel()

    async def subscribe(self, uri: str, on: bool) -> None:
        """Follow (or stop following) updates of the upstream resource ``uri``."""
        if on:
            self._resources.add(uri)
        else:
            self._resources.discard(uri)
        session = self.session
        if session is None or session.server is None:
            return  # applied when the session (re)starts
        if session.server.era is Era.MODERN:
            self._relisten.set()
            return
        method = "resources/subscribe" if on else "resources/unsubscribe"
        try:
            await session.request(method, {"uri": uri})
        except BastionError as exc:
            logger.info("upstream %s refused %s of %s: %s", self.label, method, uri, exc.detail)

    async def _watch(self, session: ClientSession) -> str:
        """Return (with the reason) when the upstream exits or stops answering pings."""
        misses = 0
        while True:
            with anyio.move_on_after(HEALTH_INTERVAL):
                await session.closed.wait()
                return "the upstream closed its connection"
            try:
                with anyio.fail_after(HEALTH_TIMEOUT):
                    await session.ping()
                misses = 0
            except (TimeoutError, BastionError):
                misses += 1
                if misses >= HEALTH_MISSES:
                    return f"{misses} health pings failed"

    async def _refresh(self, session: ClientSession) -> None:
        caps = session.server.capabilities if session.server else {}
        listings: dict[str, list[JSONObject]] = {}
        if "tools" in caps:
            listings["tools"] = await session.list_tools()
        if "resources" in caps:
            listings["resources"] = await session.list_all("resources/list", "resources")
            listings["resourceTemplates"] = await session.list_all(
                "resources/templates/list", "resourceTemplates"
            )
        if "prompts" in caps:
            listings["prompts"] = await session.list_all("prompts/list", "prompts")
        self.listings = listings

    # -- calls -----------------------------------------------------------------------------

    async def call(self, method: str, params: JSONObject, ctx: ToolContext) -> JSONObject:
        """Forward one request on behalf of the client behind ``ctx``.

        Raises:
            UpstreamUnavailable: the upstream is not ready (circuit open, restarting).
            PeerError: the upstream answered with an error.
        """
        session = self.session
        if session is None or self.state is not ReplicaState.READY:
            raise UpstreamUnavailable(f"{self.label} is {self.state.value}")
        meta: JSONObject = {META_CLIENT_CAPABILITIES: ctx.client_capabilities}
        if ctx.log_level is not None:
            meta[META_LOG_LEVEL] = ctx.log_level
        if self.config.pass_principal and ctx.caller is not None:
            meta[META_PRINCIPAL] = ctx.caller[0]
        if ctx.era is Era.MODERN and session.server and session.server.era is Era.LEGACY:
            result = await self._call_parked(session, method, {**params, "_meta": meta}, ctx)
            return _strip_era_fields(result)

        async def answer_inputs(requests: JSONObject) -> JSONObject:
            asks = {
                k: t.InputRequest(method=str(v.get("method")), params=v.get("params") or {})
                for k, v in requests.items()
                if isinstance(v, dict)
            }
            return await ctx.ask(asks)

        on_progress = _progress_to(lambda: ctx) if ctx.progress_token is not None else None
        finished = False
        with self._in_flight(ctx) as on_sent:
            try:
                result = await session.request(
                    method,
                    {**params, "_meta": meta},
                    on_progress=on_progress,
                    answer_inputs=answer_inputs,
                    on_sent=on_sent,
                )
                finished = True
            except (BastionError, InputRequired):
                finished = True  # the upstream answered (with an error), or asked the client
                raise
            finally:
                if not finished:
                    self._abandoned()
        return _strip_era_fields(result)

    async def _call_parked(
        self, session: ClientSession, method: str, params: JSONObject, ctx: ToolContext
    ) -> JSONObject:
        """A 2026-07-28 client calling a 2025-11-25 upstream: the upstream call is parked
        whenever it asks the client something, and resumed by the client's retry."""
        pending = ctx.input_responses.get(PENDING_KEY)
        if isinstance(pending, str):
            parked = self._parking.find(pending, ctx.caller)
            parked.deliver(ctx.input_responses)
        else:
            if self._tg is None:
                raise UpstreamUnavailable(f"{self.label} is restarting")
            parked = self._parking.park(ctx.caller)
            tracking = contextlib.ExitStack()
            on_sent = tracking.enter_context(self._in_flight(parked))

            async def upstream_call() -> JSONObject:
                try:
                    return await session.request(
                        method,
                        params,
                        on_progress=_progress_to(lambda: parked.current),
                        on_sent=on_sent,
                    )
                finally:
                    tracking.close()

            self._tg.start_soon(parked.run, upstream_call)
        parked.current = ctx  # progress and logs of this round go to this request
        try:
            with anyio.fail_after(self.config.request_timeout):
                await parked.news()
        except TimeoutError:
            self._give_up(parked)
            raise RequestTimeout(f"{self.label} did not answer in time") from None
        except BaseException:
            self._give_up(parked)  # the client left: nobody will retry this round
            raise
        finally:
            parked.current = None
        if not parked.done:
            raise InputRequired(parked.open_questions(), {PENDING_KEY: parked.id})
        self._parking.release(parked)
        if parked.error is not None:
            raise parked.error
        return parked.result or {}

    def _secrets(self) -> list[str]:
        """This upstream's configured credentials worth masking (``server_secrets``), the
        longest first."""
        found = [v for v in server_secrets(self.config) if len(v) >= MIN_KNOWN_SECRET]
        return sorted(found, key=len, reverse=True)

    def drop_parked(self, lapsed: Callable[[Owner], bool]) -> int:
        """Drop the parked calls of owners that ``lapsed`` (revoked keys); how many."""
        return self._parking.drop_where(lapsed)

    def _give_up(self, parked: ParkedCall) -> None:
        if not parked.done:
            parked.scope.cancel()
            self._abandoned()
        self._parking.release(parked)

    def _abandoned(self) -> None:
        # A call we stopped waiting for may go on talking: from now on, an unattributed log
        # line or request could be its, so none is attributed until the upstream restarts.
        if not self._attribution_off:
            logger.info(
                "upstream %s: a call was abandoned; unattributed messages are now "
                "dropped until it restarts",
                self.label,
            )
        self._attribution_off = True

    @contextlib.contextmanager
    def _in_flight(self, caller: ToolContext | ParkedCall) -> Iterator[Callable[[RequestId], None]]:
        """``caller`` is among the calls in flight until the block ends; the callback it
        yields (``on_sent``) records each upstream request id sent for it."""
        key = next(self._ids)
        self._callers[key] = caller
        sent: list[RequestId] = []

        def on_sent(request_id: RequestId) -> None:
            sent.append(request_id)
            self._sent_for[request_id] = caller

        try:
            yield on_sent
        finally:
            del self._callers[key]
            for request_id in sent:
                self._sent_for.pop(request_id, None)

    def _sole_caller(self) -> ToolContext | ParkedCall | None:
        """The call an upstream's log line or server request belongs to, if it is known.

        Over HTTP the message came on one call's POST stream, which says whose it is (a
        call that already ended gets nothing). A stdio upstream does not say; with one call
        in flight it can only be that one, otherwise nobody gets it.
        """
        related = RELATED_REQUEST.get()
        if related is not None:
            return self._sent_for.get(related)
        if self._attribution_off or len(self._callers) != 1:
            return None
        return next(iter(self._callers.values()))

    def _forward(self, method: str) -> Callable[[JSONObject], Awaitable[JSONObject]]:
        async def forward(params: JSONObject) -> JSONObject:
            ctx = self._sole_caller()
            if ctx is None:
                raise MethodNotFound(f"{method} from {self.label} cannot be attributed")
            if isinstance(ctx, ParkedCall):
                return await ctx.ask(method, params)
            answers = await ctx.ask({"request": t.InputRequest(method=method, params=params)})
            answer: JSONValue = answers["request"]
            return answer if isinstance(answer, dict) else {}

        return forward

    async def _notified(self, note: Notification) -> None:
        if note.method == "notifications/subscriptions/acknowledged":
            # 2026-07-28: a change announced before this listen stream was open (between
            # the listing and now, e.g. a rug pull right after the first tools/list) was
            # sent to nobody. Re-list once, so no change goes unnoticed (TC-2).
            self._resync = True
            self._changed.set()
            return
        kind = note.method.removeprefix("notifications/").removesuffix("/list_changed")
        if note.method.endswith("/list_changed") and kind in LIST_KINDS:
            self._changed_kinds.add(kind)
            self._changed.set()
            return
        if note.method == "notifications/message":
            ctx = self._sole_caller()
            target = ctx.current if isinstance(ctx, ParkedCall) else ctx
            params = note.params or {}
            level = params.get("level")
            if target is not None and isinstance(level, str) and level in LOG_LEVELS:
                await target.log(level, params.get("data"), _str(params.get("logger")))  # type: ignore[arg-type]
            return
        await self._on_notification(self, note)


def _lists(listings: dict[str, list[JSONObject]], kind: str) -> list[list[JSONObject] | None]:
    """The listings behind one announced kind (resources include their templates)."""
    keys = ("resources", "resourceTemplates") if kind == "resources" else (kind,)
    return [listings.get(key) for key in keys]


def _clean_reason(reason: str, secrets: Iterable[str]) -> str:
    """UP-4, IN-5: a reason is shown on the public ``/readyz`` and logged, and an upstream
    writes part of it (its error text): credentials masked (the patterns of the audit
    redactor, and this upstream's own configured header and environment values, exactly),
    internal URLs replaced, capped at ``MAX_REASON`` characters."""
    text = redact_text(reason)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    masked = mask_internal_urls(text, [])
    text = masked if isinstance(masked, str) else ""
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"


def _describe(exc: BaseException, label: str) -> str:
    """A one-line reason for ``/readyz``; task groups wrap the real error in a group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "did not become ready in time"
    if isinstance(exc, BastionError):
        return f"{type(exc).__name__}: {exc.detail or exc.wire_message}"
    if isinstance(exc, OSError):
        return f"could not start: {exc.strerror or exc}"
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream):
        # A write to (or read from) a child that had already exited, racing its exit report.
        return "connection closed: the upstream went away"
    logger.error("upstream %s failed unexpectedly", label, exc_info=exc)
    return f"unexpected {type(exc).__name__}"


def _progress_to(
    target: Callable[[], ToolContext | None],
) -> Callable[[JSONObject], Awaitable[None]]:
    """Relay upstream progress to whichever client request ``target`` names now."""

    async def relay(note: JSONObject) -> None:
        ctx = target()
        progress = _num(note.get("progress"))
        if ctx is not None and progress is not None:
            await ctx.progress(progress, _num(note.get("total")), _str(note.get("message")))

    return relay


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _strip_era_fields(result: JSONObject) -> JSONObject:
    # Era-specific envelope fields are the client connection's to set, in its own era, and
    # the upstream's identity stays behind the gateway (the client talks to Bastion).
    for key in _ERA_FIELDS:
        result.pop(key, None)
    meta = result.get("_meta")
    if isinstance(meta, dict) and META_SERVER_INFO in meta:
        meta = {k: v for k, v in meta.items() if k != META_SERVER_INFO}
        if meta:
            result["_meta"] = meta
        else:
            del result["_meta"]
    return result


def _num(value: JSONValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: JSONValue) -> str | None:
    return value if isinstance(value, str) else None
