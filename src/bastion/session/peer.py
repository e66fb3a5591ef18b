"""An async JSON-RPC endpoint over any transport: the runtime around the sans-IO core.

A ``Peer`` serves inbound requests (each in its own task and cancel scope, so a
``notifications/cancelled`` stops exactly that work; past ``max_inflight`` running, a
request is refused inline, so the read loop feeding ``dispatch`` waits on that answer's
write), correlates responses to the requests it sent, and routes progress notifications to
the waiting caller. It is not MCP-aware:
the MCP meaning lives in the ``RequestHandler`` it is given. Outbound messages go through a
``Sink`` with the id of the inbound request they relate to, so an HTTP transport can put
them on that request's own stream.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final, Literal, Protocol

import anyio
import anyio.abc
import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.errors import (
    BastionError,
    InternalError,
    ParseError,
    PeerError,
    RequestTimeout,
    TransportClosed,
)
from bastion.protocol.correlation import Correlator, InflightTable, TableFull
from bastion.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from bastion.session.wire import to_error_response

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "Call",
    "NotificationHandler",
    "Peer",
    "ProgressCallback",
    "RequestHandler",
    "Sink",
]

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT: Final = 300.0  # seconds; a sampling or elicitation waits on a human
# Seconds a request whose answer could not be read (too deep, too long) waits for a readable
# one before it fails: a peer that wrote junk with its id and then the real answer loses none.
UNREADABLE_GRACE: Final = 1.0


class Sink(Protocol):
    async def __call__(self, message: Message, related: RequestId | None, /) -> None: ...


ProgressCallback = Callable[[JSONObject], Awaitable[None]]
StreamCloser = Callable[[], None]


class _Waiter:
    __slots__ = ("event", "on_progress", "outcome", "unreadable")

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.event = anyio.Event()
        self.outcome: Response | ErrorResponse | BastionError | None = None
        self.on_progress = on_progress
        self.unreadable = False  # an answer to it could not be read; it fails soon


class Call:
    """What a request handler may do while serving one request: talk back about it."""

    __slots__ = ("_peer", "close_stream", "message")

    def __init__(
        self, peer: Peer, message: Request, close_stream: StreamCloser | None = None
    ) -> None:
        self._peer = peer
        self.message = message
        # Set by transports that stream answers (HTTP SSE): ends the response stream early,
        # so the client resumes it later; the request itself keeps running.
        self.close_stream = close_stream

    @property
    def id(self) -> RequestId:
        return self.message.id

    @property
    def method(self) -> str:
        return self.message.method

    @property
    def params(self) -> JSONObject:
        return self.message.params or {}

    async def notify(self, method: str, params: JSONObject | None = None) -> None:
        await self._peer.notify(method, params, related=self.message.id)

    async def request(
        self, method: str, params: JSONObject | None = None, *, timeout: float | None = None
    ) -> JSONValue:
        return await self._peer.request(method, params, related=self.message.id, timeout=timeout)

    def screen_input(self, method: str) -> None:
        """Raise if this request's client may not be asked ``method`` on its behalf (a
        gateway's policy says so through a subclass); a plain call may be asked anything."""

    def shown(self, kind: Literal["tool", "prompt", "resource"]) -> Callable[[str], bool] | None:
        """Which tools, prompts or resources (``kind``) this request's caller may be shown,
        by name or URI: the items of a list, the values of a completion (a gateway's policy
        says so through a subclass). None: every one, as for a plain call."""
        return None


RequestHandler = Callable[[Call], Awaitable[JSONValue]]
NotificationHandler = Callable[[Notification], Awaitable[None]]


def _params(params: JSONObject | None) -> JSONObject | msgspec.UnsetType:
    return msgspec.UNSET if params is None else params


async def _ignore(_: Notification) -> None:
    return None


class Peer:
    def __init__(
        self,
        sink: Sink,
        handler: RequestHandler,
        *,
        on_notification: NotificationHandler = _ignore,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_inflight: int = 1024,
    ) -> None:
        self._sink = sink
        self._handler = handler
        self._on_notification = on_notification
        self._timeout = request_timeout
        self._outgoing: Correlator[_Waiter] = Correlator(limit=max_inflight)
        self._inbound: InflightTable[anyio.CancelScope] = InflightTable(limit=max_inflight)
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._progress_seq = 0
        self._running = 0  # requests dispatched into the task group and not yet answered
        self._drained: anyio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        self.close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]

    def close(self) -> None:
        """Fail every outstanding outgoing request: the connection is gone."""
        self._closed = True
        for waiter in self._outgoing.waiters():
            waiter.outcome = TransportClosed("connection closed")
            waiter.event.set()

    # -- inbound ---------------------------------------------------------------------------

    async def dispatch(self, message: Message | BastionError) -> None:
        """Handle one inbound message; requests are served concurrently in the task group."""
        if isinstance(message, BastionError):
            if isinstance(message, ParseError) and self._fail_unreadable(message):
                return
            await self._sink(to_error_response(message, None), None)
        elif isinstance(message, Request):
            if self._tg is None:
                raise RuntimeError("use `async with Peer(...)` to dispatch requests")
            if self._running >= self._inbound.limit:
                # Refused here, not in a task: while the answer cannot be written (a client
                # that stopped reading), the caller's read loop waits too, so at most
                # ``max_inflight`` requests are ever held (DS-4).
                await self._sink(to_error_response(TableFull(), message.id), message.id)
                return
            self._running += 1
            self._tg.start_soon(self._serve_and_send, message)
        elif isinstance(message, Notification):
            try:
                await self._on_inbound_notification(message)
            except Exception:
                # A peer's odd notification must not end the connection it came on.
                logger.warning(
                    "notification %s could not be handled", message.method, exc_info=True
                )
        else:
            self._on_response(message)

    async def handle(
        self, request: Request, close_stream: StreamCloser | None = None
    ) -> Response | ErrorResponse:
        """Run the handler for one request (the exception-to-wire boundary)."""
        try:
            result = await self._handler(Call(self, request, close_stream))
        except Exception as exc:
            return to_error_response(exc, request.id)
        return Response(id=request.id, result=result)

    async def serve(
        self, request: Request, close_stream: StreamCloser | None = None
    ) -> Response | ErrorResponse | None:
        """Serve one request inline, cancellable by the peer; None when it was cancelled."""
        scope = anyio.CancelScope()
        try:
            self._inbound.add(request.id, scope)
        except BastionError as exc:
            return to_error_response(exc, request.id)
        answer: Response | ErrorResponse | None = None
        try:
            with scope:
                answer = await self.handle(request, close_stream)
        finally:
            self._inbound.pop(request.id)
        # A cancelled request gets no response (MCP: the receiver SHOULD NOT answer).
        return None if scope.cancelled_caught else answer

    async def _serve_and_send(self, request: Request) -> None:
        try:
            answer = await self.serve(request)
            if answer is not None:
                await self._sink(answer, request.id)
        except (TransportClosed, anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("answer to %r dropped: connection closed", request.id)
        finally:
            self._running -= 1
            if self._running == 0 and self._drained is not None:
                self._drained.set()

    async def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) for dispatched requests to be answered.

        Used when the peer stops sending (stdin closed): work it asked for still finishes.
        """
        if self._running == 0:
            return True
        self._drained = anyio.Event()
        with anyio.move_on_after(timeout):
            await self._drained.wait()
        return self._running == 0

    async def _on_inbound_notification(self, note: Notification) -> None:
        params = note.params or {}
        if note.method == "notifications/cancelled":
            request_id = params.get("requestId")
            if isinstance(request_id, int | str) and not isinstance(request_id, bool):
                scope = self._inbound.get(request_id)
                if scope is not None:
                    scope.cancel()
        elif note.method == "notifications/progress":
            token = params.get("progressToken")
            if isinstance(token, int | str) and not isinstance(token, bool):
                waiter = self._outgoing.waiter_for_progress(token)
                if waiter is not None and waiter.on_progress is not None:
                    await waiter.on_progress(params)
                    return
        await self._on_notification(note)

    def _fail_unreadable(self, error: ParseError) -> bool:
        """Fail the request whose answer ``error`` could not read (``response_id``) after
        ``UNREADABLE_GRACE`` seconds, rather than at its timeout, unless a readable answer
        comes first; False if it answers none of ours."""
        waiter = self._outgoing.pending(error.response_id)
        if waiter is None or self._tg is None:
            return False
        if not waiter.unreadable:
            waiter.unreadable = True
            self._tg.start_soon(self._fail_later, waiter, str(error))
        return True

    @staticmethod
    async def _fail_later(waiter: _Waiter, why: str) -> None:
        await anyio.sleep(UNREADABLE_GRACE)
        if not waiter.event.is_set():
            waiter.outcome = InternalError(
                f"answer unreadable: {why}", message="The answer could not be read"
            )
            waiter.event.set()

    def _on_response(self, message: Response | ErrorResponse) -> None:
        waiter = self._outgoing.resolve(message.id)
        if waiter is None:
            logger.debug("response to unknown request %r dropped", message.id)
            return
        waiter.outcome = message
        waiter.event.set()

    # -- outbound --------------------------------------------------------------------------

    async def notify(
        self, method: str, params: JSONObject | None = None, *, related: RequestId | None = None
    ) -> None:
        if self._closed:
            raise TransportClosed("connection closed")
        await self._sink(Notification(method=method, params=_params(params)), related)

    async def request(
        self,
        method: str,
        params: JSONObject | None = None,
        *,
        related: RequestId | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_sent: Callable[[RequestId], None] | None = None,
    ) -> JSONValue:
        """Send a request and wait for its result; ``on_sent`` learns the id it got.

        Raises:
            PeerError: the peer answered with an error.
            RequestTimeout: no answer in time (a cancellation is sent to the peer).
            TransportClosed: the connection ended first.
        """
        if self._closed:
            raise TransportClosed("connection closed")
        waiter = _Waiter(on_progress)
        token: int | str | None = None
        if on_progress is not None:
            meta = dict((params or {}).get("_meta") or {})
            token = meta.get("progressToken")
            if not isinstance(token, int | str) or isinstance(token, bool):
                self._progress_seq += 1
                token = f"p{self._progress_seq}"
                params = {**(params or {}), "_meta": {**meta, "progressToken": token}}
        request_id = self._outgoing.register(waiter, progress_token=token)
        if on_sent is not None:
            on_sent(request_id)
        try:
            await self._sink(Request(id=request_id, method=method, params=_params(params)), related)
            limit = self._timeout if timeout is None else timeout
            with anyio.move_on_after(limit if limit > 0 else math.inf) as scope:
                await waiter.event.wait()
            if scope.cancelled_caught:
                await self._cancel_remote(request_id, "timeout", related)
                raise RequestTimeout(f"no answer to {method} within {limit:.0f}s")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self._cancel_remote(request_id, "cancelled", related)
            raise
        finally:
            self._outgoing.forget(request_id)
        outcome = waiter.outcome
        if isinstance(outcome, Response):
            return outcome.result
        if isinstance(outcome, ErrorResponse):
            err = outcome.error
            raise PeerError(err.code, err.message, None if err.data is None else err.data)
        assert outcome is not None
        raise outcome

    async def _cancel_remote(
        self, request_id: RequestId, reason: str, related: RequestId | None
    ) -> None:
        if self._closed:
            return
        note = Notification(
            method="notifications/cancelled", params={"requestId": request_id, "reason": reason}
        )
        with contextlib.suppress(
            TransportClosed, anyio.BrokenResourceError, anyio.ClosedResourceError
        ):
            await self._sink(note, related)
