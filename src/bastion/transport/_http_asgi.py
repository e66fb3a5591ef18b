"""ASGI plumbing for the Streamable HTTP server face: request headers, plain/JSON/SSE
responses, ``nosniff`` on every response, and the loops that stream a request's messages
until it is answered or the client leaves. Private to ``bastion.transport``;
``http_server`` and ``http_legacy`` hold the MCP rules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Final

import anyio
import anyio.abc

from bastion.errors import (
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    MissingCapability,
    ParseError,
    RateLimited,
    UnsupportedVersion,
)
from bastion.protocol.codec import encode, error_response
from bastion.protocol.jsonrpc import ErrorResponse, Message, RequestId, Response
from bastion.transport.http_streams import EventStream
from bastion.transport.sse import encode_event

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Probe = Callable[[], tuple[int, bytes]]
Send = Callable[[ASGIMessage], Awaitable[None]]

BAD_REQUEST_CODES: Final = frozenset(
    {
        ParseError.code,
        InvalidRequest.code,
        InvalidParams.code,
        HeaderMismatch.code,
        MissingCapability.code,
        UnsupportedVersion.code,
    }
)
SSE_RETRY_MS: Final = 1000  # how soon a client should reconnect a dropped stream


class Headers:
    """A request's header fields by lower-case name; a repeated field's values joined with
    ", " in order (RFC 9110 §5.3). Each name's values are joined once, at the end: joining
    as they come would copy the growing value per repeat, quadratic in a head of many tiny
    repeats (DS-4; the protocol also caps the fields per request)."""

    __slots__ = ("_map",)

    def __init__(self, scope: Scope) -> None:
        self._map: dict[str, str] = {}
        repeated: dict[str, list[str]] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name not in self._map:
                self._map[name] = value
            elif name in repeated:
                repeated[name].append(value)
            else:
                repeated[name] = [self._map[name], value]
        for name, values in repeated.items():
            self._map[name] = ", ".join(values)

    def get(self, name: str) -> str | None:
        return self._map.get(name)


def is_answer(message: Message, request_id: RequestId) -> bool:
    return isinstance(message, Response | ErrorResponse) and message.id == request_id


async def watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    with contextlib.suppress(Exception):  # a receive that fails: nothing left to watch
        await watch_disconnect(receive, scope)


@contextlib.contextmanager
def cancelled_on_disconnect(receive: Receive) -> Iterator[anyio.CancelScope]:
    """A cancel scope that the client leaving cancels.

    The watcher is a bare asyncio task (the HTTP server only runs on asyncio), cancelled
    without waiting when the block ends: per request this costs about a fifth of a task
    group whose watcher must be cancelled and joined (~15 vs ~80 µs on uvloop), and every
    stateless request pays it.
    """
    with anyio.CancelScope() as scope:
        # Unstructured on purpose, and bounded: cancelled when the block ends.
        watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, scope))  # noqa: TID251
        try:
            yield scope
        finally:
            watcher.cancel()


async def cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def pump(
    send: Send, receive: Receive, stream: EventStream, after: int, detach: anyio.Event | None = None
) -> None:
    """Write ``stream``'s events after ``after`` as SSE until it closes, the client leaves,
    or ``detach`` is set (the server ends the response; the client resumes with GET)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect, receive, tg.cancel_scope)
        if detach is not None:
            tg.start_soon(cancel_when, detach, tg.cancel_scope)
        # Priming event: an id before any data, so the client can resume from here.
        primed = encode_event(b"", event_id=stream.event_id(after), retry_ms=SSE_RETRY_MS)
        if await sse_write(send, primed):
            async for seq, data in stream.follow(after):
                if not await sse_write(send, encode_event(data, event_id=stream.event_id(seq))):
                    break
        tg.cancel_scope.cancel()
    await end(send)


class StatelessResponder:
    """Writes one stateless request's messages as they come, straight to the response.

    The answer alone goes out as JSON; once anything else comes first (progress, a log
    message, a server request), the response becomes an SSE stream that ends with the
    answer. Nothing is written after the answer. Writers may be several tasks (the
    handler, an upstream's notification forwarder), so writes are serialised.
    """

    __slots__ = ("_done", "_lock", "_request_id", "_send", "_streaming")

    def __init__(self, send: Send, request_id: RequestId) -> None:
        self._send = send
        self._request_id = request_id
        self._streaming = False
        self._done = False
        self._lock = anyio.Lock(fast_acquire=True)

    async def write(self, message: Message) -> None:
        async with self._lock:
            if self._done:
                return  # after the answer (or the client leaving) nothing more belongs here
            answer = is_answer(message, self._request_id)
            if not self._streaming:
                if answer:
                    self._done = True
                    status = 200
                    extra: tuple[tuple[str, str], ...] = ()
                    if isinstance(message, ErrorResponse):
                        status, extra = status_for(message), retry_after(message)
                    await send_json(self._send, status, encode(message), extra)
                    return
                self._streaming = True
                await start_sse(self._send, ())
            if not await sse_write(self._send, encode_event(encode(message))):
                self._done = True  # the client left
            elif answer:
                self._done = True
                await end(self._send)

    async def finish(self, answer: Message | None) -> None:
        """Write the answer (None: the request was cancelled) and end the response."""
        if answer is not None:
            await self.write(answer)
        async with self._lock:
            if self._done:
                return
            self._done = True
            if self._streaming:
                await end(self._send)
            else:
                await plain(self._send, 202, b"")  # cancelled: nothing to say


def status_for(answer: ErrorResponse) -> int:
    """2026-07-28 maps some JSON-RPC errors onto HTTP statuses; the rest travel in a 200."""
    code = answer.error.code
    if code == MethodNotFound.code:
        return 404
    if code == RateLimited.code:
        return 429  # DS-3
    if code in BAD_REQUEST_CODES:
        return 400
    return 200


def retry_after(answer: ErrorResponse) -> tuple[tuple[str, str], ...]:
    """``Retry-After`` for a rate-limit refusal (RFC 6585), from the seconds in its data."""
    data = answer.error.data
    if answer.error.code != RateLimited.code or not isinstance(data, dict):
        return ()
    seconds = data.get("retryAfter")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return ()
    return (("retry-after", str(max(1, seconds))),)


NOSNIFF: Final = (b"x-content-type-options", b"nosniff")


def with_nosniff(send: Send) -> Send:
    """``send``, adding ``X-Content-Type-Options: nosniff`` to the response's headers: no
    browser guesses that a JSON or text answer is HTML."""

    async def sending(message: ASGIMessage) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), NOSNIFF]}
        await send(message)

    return sending


async def plain(
    send: Send, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")] if body else []
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    await send_text(send, status, body, "application/json", extra)


async def send_text(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    headers = [(b"content-type", content_type.encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def json_error(
    send: Send,
    status: int,
    request_id: RequestId | None,
    code: int,
    message: str,
    *,
    close: bool = False,
) -> None:
    extra = (("connection", "close"),) if close else ()
    await send_json(send, status, encode(error_response(request_id, code, message)), extra)


async def start_sse(send: Send, extra: tuple[tuple[str, str], ...]) -> None:
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache, no-transform"),
        (b"x-accel-buffering", b"no"),
    ]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def sse_write(send: Send, data: bytes) -> bool:
    try:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    except OSError:
        return False
    return True


async def end(send: Send) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b""})
