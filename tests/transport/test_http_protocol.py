"""``BoundedHttpToolsProtocol`` over a real socket, served by uvicorn in a thread with a
trivial application: the request-head timer between keep-alive requests (DS-2, TR-9), the
cap on header fields (TR-9, DS-4) and the refusal of a target that is not origin-form
(TR-2). ``HEAD_TIMEOUT`` is shortened for the test; the keep-alive time is long, so a
connection closed in time was closed by the head timer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from bastion.transport import http_protocol
from bastion.transport.http_protocol import MAX_HEADER_FIELDS, BoundedHttpToolsProtocol

HEAD_TIMEOUT = 1.0  # stands in for http_protocol.HEAD_TIMEOUT
KEEP_ALIVE = 60  # far longer than the test waits: only the head timer can close in time
SLACK = 3.0  # a loaded machine's delay, on top of HEAD_TIMEOUT


class _Served:
    def __init__(self) -> None:
        self.port = 0
        self.targets: list[str] = []  # what reached the application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.targets.append(scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Served]:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT", HEAD_TIMEOUT)
    app = _Served()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    app.port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=BoundedHttpToolsProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _get(port: int, path: str = "/healthz", *lines: str) -> bytes:
    head = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float | None]:
    """What the server sends until it closes the connection, and after how many seconds
    (None: still open after ``timeout``)."""
    started = time.monotonic()
    data = b""
    while (left := started + timeout - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, time.monotonic() - started
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    return data, None


def _read_answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while not data.endswith(b"ok"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


# -- DS-2 / TR-9: a request head must arrive in time, between requests too -----------------------


@pytest.mark.parametrize(
    "tail",
    [b"\r\n", b"GE", b"\r\n\r\nGET /healthz HT"],
    ids=["empty-line", "partial-request-line", "empty-lines-then-partial"],
)
def test_ds2_bytes_after_a_keep_alive_answer_start_the_head_timer(
    served: _Served, tail: bytes
) -> None:
    """Each byte restarts nothing: bytes after an answer (an empty line, which starts no
    request, or the start of one) leave HEAD_TIMEOUT for a whole head, then 408 and close."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port))
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(tail)
        answer, closed_after = _read_until_closed(sock, HEAD_TIMEOUT + SLACK)
    assert closed_after is not None, "the connection is held with no timer running"
    assert HEAD_TIMEOUT - 0.5 <= closed_after < HEAD_TIMEOUT + SLACK
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_ds2_a_partial_head_pipelined_behind_a_request_is_timed(served: _Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port) + b"\r\nGET /x")
        answer, closed_after = _read_until_closed(sock, HEAD_TIMEOUT + SLACK)
    assert closed_after is not None, "the connection is held with no timer running"
    assert answer.startswith(b"HTTP/1.1 200")
    assert closed_after < HEAD_TIMEOUT + SLACK


def test_ds2_a_request_after_an_empty_line_is_still_served(served: _Served) -> None:
    """The control: an empty line before a request is allowed (RFC 9112 §2.2), and the
    timer it started stops once that request's head is in."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port))
        _read_answer(sock)
        sock.sendall(b"\r\n")
        time.sleep(HEAD_TIMEOUT / 2)
        sock.sendall(_get(served.port, "/second"))
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(HEAD_TIMEOUT + 0.5)  # idle after an answer: the keep-alive time applies
        sock.sendall(_get(served.port, "/third"))
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
    assert served.targets == ["/healthz", "/second", "/third"]


# -- TR-9 / DS-4: header fields per request are capped ----------------------------------------


def test_tr9_more_header_fields_than_the_cap_is_431_and_closed(served: _Served) -> None:
    """Tiny repeated fields stay far below the byte cap; their number is capped before any
    of them reaches the application (each costs work before authentication)."""
    fields = ["x: a"] * MAX_HEADER_FIELDS  # with Host, one more than the cap
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port, "/healthz", *fields))
        answer, closed_after = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431"), answer
    assert b"connection: close" in answer.lower()
    assert closed_after is not None
    assert served.targets == []


def test_tr9_header_fields_up_to_the_cap_are_served(served: _Served) -> None:
    fields = ["x: a"] * (MAX_HEADER_FIELDS - 1)  # with Host, exactly the cap
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port, "/healthz", *fields))
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(_get(served.port, "/again", *fields))  # the count is per request
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")


# -- TR-2: only origin-form targets, so Host names the authority ---------------------------------


@pytest.mark.parametrize(
    "target",
    ["http://evil.example/mcp", "https://127.0.0.1/mcp", "HTTP://evil.example:80/healthz", "*"],
)
def test_tr2_a_target_that_is_not_origin_form_is_400_and_closed(
    served: _Served, target: str
) -> None:
    """An absolute-form target's authority would override Host (RFC 9112 §3.2.2), and the
    Host check never sees it: refused before the application."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(_get(served.port, target))
        answer, closed_after = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert closed_after is not None
    assert served.targets == []
