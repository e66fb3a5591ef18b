"""One running instance of an upstream MCP server, kept alive by a supervisor loop.

``Replica.run`` starts the server (a child process or an HTTP endpoint), opens a client
session (era detected), reports readiness, watches health, and on any failure restarts it
with exponential backoff. A restart budget opens the circuit: after ``MAX_RESTARTS`` failures
within ``RESTART_WINDOW`` the replica waits ``CIRCUIT_COOLDOWN`` before trying again, and
calls fail fast meanwhile. Calls carry the caller's ``ToolContext`` so progress, logs and
input requests reach the client that asked, and no other (``attribution``); a 2026-07-28
client's call to a 2025-11-25 upstream is parked between input rounds (``parking``). What the
upstream lists is kept current by ``listings``; why it is down is told by ``reasons``. A
call's ``_meta`` is built here, never copied from the client's, so only the gateway sets
Bastion's own keys: the caller's principal (``io.bastion/principal``) goes to servers
configured with ``pass_principal``. An HTTP upstream's ``ConnectChecks`` are asked of
every connection the replica's transport makes, the first and each one after a restart or
a dropped connection (``before`` it is made, ``after`` it is up and before anything is
sent on it); a refused connection is an unreachable upstream.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc
import msgspec

from bastion._types import NO_CHECKS, Clock, ConnectChecks, JSONObject
from bastion.client.session import MAX_INPUT_ROUNDS, ClientHandlers, ClientSession
from bastion.errors import BastionError, InvalidRequest, RequestTimeout, UpstreamUnavailable
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.meta import META_PRINCIPAL
from bastion.protocol.versions import (
    META_CLIENT_CAPABILITIES,
    META_LOG_LEVEL,
    Era,
)
from bastion.server.context import InputRequired
from bastion.server.input_rounds import upstream_questions
from bastion.upstream.attribution import InFlight, forwarder, progress_to, relay_log
from bastion.upstream.listings import LIST_KINDS, Listings
from bastion.upstream.parking import PENDING_KEY, Owner, ParkedCall, ParkingLot
from bastion.upstream.reasons import clean_reason, describe, known_secrets
from bastion.upstream.results import strip_era_fields
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
        checks: ConnectChecks = NO_CHECKS,
    ) -> None:
        self.server = server
        self.index = index
        self.config = config
        self._environ = environ
        self._on_ready = on_ready
        self._on_change = on_change
        self._on_notification = on_notification
        self._clock = clock
        self._checks = checks
        self.state = ReplicaState.STARTING
        self.session: ClientSession | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self._failures: list[float] = []
        self._calls = InFlight(self.label)
        # Bound once, so the per-call paths find them as fast as methods of this class.
        self._in_flight = self._calls.track
        self._sole_caller = self._calls.sole_caller
        self._abandoned = self._calls.abandoned
        self._parking = ParkingLot()
        self._tg: anyio.abc.TaskGroup | None = None  # lives as long as the session
        self._listings = Listings(
            self.label, config.listing, relist_timeout=config.startup_timeout, clock=clock
        )
        self.settled = anyio.Event()  # set once the first start attempt ended, either way

    @property
    def label(self) -> str:
        return self.server if self.config.replicas == 1 else f"{self.server}#{self.index}"

    @property
    def listings(self) -> dict[str, list[JSONObject]]:
        """What the upstream lists now (tools, resources, resourceTemplates, prompts)."""
        return self._listings.current

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
            sampling=forwarder(self._calls, "sampling/createMessage", self.label),
            elicitation=forwarder(self._calls, "elicitation/create", self.label),
            roots=forwarder(self._calls, "roots/list", self.label),
            on_notification=self._notified,
        )
        try:
            async with open_upstream(
                self.config,
                self._environ,
                name=self.label,
                checks=self._checks,
            ) as stream:
                self.pid = getattr(stream, "pid", None)
                async with ClientSession(
                    stream,
                    client_name="bastion-gateway",
                    handlers=handlers,
                    request_timeout=self.config.request_timeout,
                ) as session:
                    with anyio.fail_after(self.config.startup_timeout):
                        info = await session.connect()
                        await self._listings.refresh(session)
                    self._note_listing_problem()
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
                            tg.start_soon(self._listings.listen, session)
                        else:
                            # subscriptions survive restarts
                            for uri in sorted(self._listings.resources):
                                tg.start_soon(self.subscribe, uri, True)
                        self.last_error = await self._watch(session)
                        tg.cancel_scope.cancel()
        except Exception as exc:  # one upstream's failure must never stop the gateway
            self.last_error = clean_reason(describe(exc, self.label), known_secrets(self.config))
        finally:
            self.settled.set()
            self.session = None
            self._tg = None
            self._parking = ParkingLot()  # their upstream calls died with the session
            self._calls.attribution_off = False  # a new process has no abandoned calls
        logger.warning("upstream %s stopped: %s", self.label, self.last_error)
        return ready_at

    async def _apply_changes(self, session: ClientSession) -> None:
        """Re-list after the upstream announced changes. Runs in its own task: the
        notification arrives on the session's reader, which must stay free to read the
        answers to these very list requests."""
        while True:
            kinds = await self._listings.next_changes(session)
            self._note_listing_problem()
            if kinds:
                await self._on_change(self, kinds)

    def _note_listing_problem(self) -> None:
        """What a listing limit left out is this replica's last error (on /readyz)."""
        if self._listings.problem is not None:
            self.last_error = self._listings.problem

    async def subscribe(self, uri: str, on: bool) -> None:
        """Follow (or stop following) updates of the upstream resource ``uri``."""
        await self._listings.subscribe(self.session, uri, on)

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
            return strip_era_fields(result)

        async def answer_inputs(requests: JSONObject) -> JSONObject:
            return await ctx.ask(upstream_questions(requests))

        on_progress = progress_to(lambda: ctx) if ctx.progress_token is not None else None
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
        return strip_era_fields(result)

    async def _call_parked(
        self, session: ClientSession, method: str, params: JSONObject, ctx: ToolContext
    ) -> JSONObject:
        """A 2026-07-28 client calling a 2025-11-25 upstream: the upstream call is parked
        whenever it asks the client something, and resumed by the client's retry."""
        pending = ctx.input_responses.get(PENDING_KEY)
        # A retry must ask what the parked call asks: it is authorized (and its questions
        # screened) with the retry's own arguments.
        asked = msgspec.json.encode(
            [method, {k: v for k, v in params.items() if k != "_meta"}], order="sorted"
        )
        if isinstance(pending, str):
            parked = self._parking.find(pending, ctx.caller, asked)
            parked.deliver(ctx.input_responses)
        else:
            if self._tg is None:
                raise UpstreamUnavailable(f"{self.label} is restarting")
            parked = self._parking.park(ctx.caller, asked)
            tracking = contextlib.ExitStack()
            on_sent = tracking.enter_context(self._in_flight(parked))

            async def upstream_call() -> JSONObject:
                try:
                    return await session.request(
                        method,
                        params,
                        on_progress=progress_to(lambda: parked.current),
                        on_sent=on_sent,
                    )
                finally:
                    tracking.close()

            self._tg.start_soon(parked.run, upstream_call)
        parked.current = ctx  # progress and logs of this round go to this request
        try:
            with anyio.fail_after(self.config.request_timeout):
                await parked.news()
                while not parked.done and not parked.screen(ctx.screen_input):
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
            parked.rounds += 1
            if parked.rounds > MAX_INPUT_ROUNDS:  # as for a 2026-07-28 upstream (DS-3)
                self._give_up(parked)
                raise InvalidRequest(f"{self.label} asked for input too many times")
            raise InputRequired(parked.open_questions(), {PENDING_KEY: parked.id})
        self._parking.release(parked)
        if parked.error is not None:
            raise parked.error
        return parked.result or {}

    @property
    def calls_in_flight(self) -> int:
        """Calls forwarded and not yet answered, parked ones included."""
        return len(self._calls)

    def parks(self, call_id: str) -> bool:
        """Whether the call ``call_id`` (a retry's ``PENDING_KEY``) is parked here."""
        return call_id in self._parking

    def drop_parked(self, lapsed: Callable[[Owner], bool]) -> int:
        """Drop the parked calls of owners that ``lapsed`` (revoked keys); how many."""
        return self._parking.drop_where(lapsed)

    def _give_up(self, parked: ParkedCall) -> None:
        parked.refuse(InvalidRequest("parked call given up"))  # its questions get an answer
        if not parked.done:
            parked.scope.cancel()
            self._abandoned()
        self._parking.release(parked)

    async def _notified(self, note: Notification) -> None:
        if note.method == "notifications/subscriptions/acknowledged":
            self._listings.resync()
            return
        kind = note.method.removeprefix("notifications/").removesuffix("/list_changed")
        if note.method.endswith("/list_changed") and kind in LIST_KINDS:
            self._listings.changed(kind)
            return
        if note.method == "notifications/message":
            await relay_log(self._calls, note.params or {})
            return
        await self._on_notification(self, note)
