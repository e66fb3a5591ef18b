"""uvicorn's httptools HTTP/1.1 protocol, with the request-head bounds of SECURITY.md TR-9,
and the client certificate of a TLS connection in each request's scope (ASGI TLS extension,
``scope["extensions"]["tls"]["client_cert_chain"]``, PEM), for mTLS authentication.

httptools (llhttp) parses in C, about a third less CPU per request than h11 here, and
refuses ``Content-Length`` beside ``Transfer-Encoding``, differing duplicate lengths and
unknown codings on its own (400, connection closed). It sets no bound on the request head,
so this subclass counts the target and header bytes of each request as they are parsed, and
its header fields (``MAX_HEADER_FIELDS``: many tiny repeated fields stay under the byte cap
but each costs work before authentication), and answers 431 and closes the connection once
either passes its cap. Only an origin-form target (``/path?query``) is served: an
absolute-form one (``http://host/path``) names the authority that counts instead of
``Host`` (RFC 9112 §3.2.2), which the Host check (TR-2) would never see, and the
authority-form and asterisk-form are for CONNECT and ``OPTIONS *``, not used here; any other
target is refused (400, connection closed).

Nor does uvicorn bound the time a request head may take: its keep-alive timer runs only
from the end of an answer to the next bytes, whatever they are, and llhttp skips the empty
lines allowed before a request line without starting a request. So a client that trickles a
head byte by byte (slowloris), or sends one ``CRLF`` after an answer, would hold its
connection for ever. The head timer closes every such gap: it starts when the connection
opens, and whenever bytes arrive while no request is in progress (none yet, or the last one
answered) and it is not already running; it also starts when a pipelined request begins
behind one still in progress; it stops only when a head is complete, and no byte restarts
it. Between requests, then, one of the two timers always runs: the keep-alive timer from
the answer to the next bytes, the head timer from those bytes to a complete head. A head
must arrive within ``HEAD_TIMEOUT`` or the answer is 408 and the connection closes (TR-9,
DS-2). On a TLS connection the first head's time counts from the accept, the handshake
included (``http_tls_accept`` bounds the handshake by the same ``HEAD_TIMEOUT``). An answer
given while the request body is still arriving (a refusal, a probe, a 404: anything that did
not read it) says ``connection: close`` and the connection closes:
uvicorn would keep it open and discard the rest of the body, and a client trickling that
body, each byte restarting the keep-alive timer, would hold the connection for ever.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final, NoReturn

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["HEAD_TIMEOUT", "MAX_HEADER_BYTES", "MAX_HEADER_FIELDS", "BoundedHttpToolsProtocol"]

MAX_HEADER_BYTES: Final = 64 * 1024  # the whole request head: target, names and values
MAX_HEADER_FIELDS: Final = 100  # header fields per request (Apache's LimitRequestFields)
HEAD_TIMEOUT: Final = 10.0  # seconds for a whole request head (Envoy's edge recommendation)
_TOO_LARGE: Final = b"Request header fields too large"
_TIMED_OUT: Final = b"Request head timeout"


class _HeadTooLarge(Exception):
    pass


class _NotOriginForm(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _head_fields = 0
    _head_too_large = False
    _client_chain: tuple[str, ...] = ()
    _head_timer: asyncio.TimerHandle | None = None
    # The request whose body is still arriving, and whether it may keep the connection.
    _awaiting_body: RequestResponseCycle | None = None
    _keep_alive = False
    _accepted_at: float | None = None  # loop time of a TLS connection's accept

    def count_head_time_from(self, accepted_at: float) -> None:
        """Called at accept for a TLS connection (``http_tls_accept``): its first head must be
        complete ``HEAD_TIMEOUT`` after ``accepted_at``, the handshake's time included."""
        self._accepted_at = accepted_at

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer(self._accepted_at)
        tls = transport.get_extra_info("ssl_object")
        if isinstance(tls, ssl.SSLObject):
            der = tls.getpeercert(binary_form=True)  # verified by the context's CA, or None
            if der:
                self._client_chain = (ssl.DER_cert_to_PEM_cert(der),)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._head_timer is None and (cycle is None or cycle.response_complete):
            self._start_head_timer()  # between requests: these bytes begin the next head
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._head_bytes = self._head_fields = 0
        if self._head_timer is None:  # pipelined behind a request still in progress
            self._start_head_timer()
        super().on_message_begin()
        if self._client_chain:
            self.scope["extensions"] = {"tls": {"client_cert_chain": list(self._client_chain)}}

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        if not self.url.startswith(b"/"):
            raise _NotOriginForm  # httptools stops parsing; uvicorn then sends a 400
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:
            # Until the body is whole, an answer closes the connection; a request without a
            # body completes at once (on_message_complete, in the same parse) and keeps it.
            self._awaiting_body, self._keep_alive = cycle, cycle.keep_alive
            cycle.keep_alive = False

    def on_message_complete(self) -> None:
        cycle = self._awaiting_body
        if cycle is not None and cycle is self.cycle and not cycle.response_started:
            cycle.keep_alive = self._keep_alive
        self._awaiting_body = None
        super().on_message_complete()

    def shutdown(self) -> None:
        self._keep_alive = False  # a body completing during a graceful shutdown keeps nothing
        super().shutdown()

    def _start_head_timer(self, since: float | None = None) -> None:
        delay = HEAD_TIMEOUT if since is None else since + HEAD_TIMEOUT - self.loop.time()
        self._head_timer = self.loop.call_later(max(0.0, delay), self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no answer is being written
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMED_OUT), _TIMED_OUT)
            )
        self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > MAX_HEADER_FIELDS:
            self._refuse_head()
        self._grow(len(name) + len(value) + 4)  # ": " and CRLF, as on the wire
        super().on_header(name, value)

    def _grow(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEADER_BYTES:
            self._refuse_head()

    def _refuse_head(self) -> NoReturn:
        self._head_too_large = True
        raise _HeadTooLarge  # httptools stops parsing; uvicorn then calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
        )
        self.transport.close()
