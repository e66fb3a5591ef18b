"""The upstream HTTP/1.1 client against a real loopback server written for each case.

The server side is a few lines of raw HTTP over anyio sockets, so each test controls
exactly what the peer does (keep alive, close while idle, stall, answer in chunks).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from bastion._types import ConnectChecks
from bastion.transport.http_wire import HttpFailure, HttpWire

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

Handler = Callable[[anyio.abc.SocketStream, "Server"], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.live = 0
        self.peak = 0
        self.requests = 0


async def read_request(stream: anyio.abc.SocketStream) -> bytes:
    """One request head and its Content-Length body; b"" when the client hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b""
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":", 1)[1])
            while len(body) < size:
                body += await stream.receive()
    return head


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, Server]]:
    server = Server()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def accept(stream: anyio.abc.SocketStream) -> None:
        server.connections += 1
        server.live += 1
        server.peak = max(server.peak, server.live)
        try:
            async with stream:
                await handler(stream, server)
        finally:
            server.live -= 1

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        yield f"http://127.0.0.1:{port}/mcp", server
        tg.cancel_scope.cancel()


async def keep_alive(stream: anyio.abc.SocketStream, server: Server) -> None:
    while await read_request(stream):
        server.requests += 1
        await stream.send(OK)


def wire(url: str, max_connections: int = 8) -> HttpWire:
    return HttpWire(url, max_connections=max_connections, connect_timeout=2.0)


async def test_sequential_requests_reuse_one_connection() -> None:
    async with serve(keep_alive) as (url, server):
        client = wire(url)
        for _ in range(5):
            async with client.request("POST", {"Accept": "application/json"}, b"{}") as answer:
                assert answer.status == 200
                assert answer.headers["content-type"] == "application/json"
                assert await answer.read(1024) == b"{}"
        await client.aclose()
    assert server.requests == 5
    assert server.connections == 1


async def test_connection_closed_while_idle_is_replaced() -> None:
    async def answer_once(stream: anyio.abc.SocketStream, server: Server) -> None:
        if await read_request(stream):
            server.requests += 1
            await stream.send(OK)  # keep-alive promised, then the server hangs up

    async with serve(answer_once) as (url, server):
        client = wire(url)
        for _ in range(3):
            async with client.request("POST", {}, b"{}") as answer:
                assert await answer.read(1024) == b"{}"
            await anyio.sleep(0.05)  # the close reaches us while the connection is idle
        await client.aclose()
    assert server.requests == 3
    assert server.connections == 3


async def test_request_on_a_connection_the_server_dropped_is_sent_again() -> None:
    """The race the idle check cannot see: the server closes after reading the request."""

    async def drop_second(stream: anyio.abc.SocketStream, server: Server) -> None:
        if await read_request(stream):
            server.requests += 1
            await stream.send(OK)
        if await read_request(stream):
            server.requests += 1  # read, then closed without an answer

    async with serve(drop_second) as (url, server):
        client = wire(url)
        async with client.request("POST", {}, b"{}") as answer:
            assert await answer.read(1024) == b"{}"
        async with client.request("POST", {}, b"{}") as answer:  # dropped, then retried
            assert answer.status == 200
            assert await answer.read(1024) == b"{}"
        await client.aclose()
    assert server.connections == 2


async def test_connections_are_bounded_and_waiters_are_served() -> None:
    async def slow(stream: anyio.abc.SocketStream, server: Server) -> None:
        while await read_request(stream):
            await anyio.sleep(0.05)
            server.requests += 1
            await stream.send(OK)

    results: list[bytes] = []

    async with serve(slow) as (url, server):
        client = wire(url, max_connections=2)

        async def call() -> None:
            async with client.request("POST", {}, b"{}") as answer:
                results.append(await answer.read(1024))

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(call)
        await client.aclose()
    assert results == [b"{}"] * 6
    assert server.peak == 2


async def test_chunked_body_arrives_piece_by_piece() -> None:
    async def chunked(stream: anyio.abc.SocketStream, server: Server) -> None:
        await read_request(stream)
        await stream.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for piece in (b"data: a\n\n", b"data: b\n\n"):
            await stream.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await anyio.sleep(0.02)
        await stream.send(b"0\r\n\r\n")

    async with serve(chunked) as (url, _server):
        client = wire(url)
        async with client.request("GET", {"Accept": "text/event-stream"}) as answer:
            pieces = [chunk async for chunk in answer.chunks()]
        await client.aclose()
    assert b"".join(pieces) == b"data: a\n\ndata: b\n\n"
    assert len(pieces) >= 2  # streamed, not buffered to the end


async def test_leaving_mid_body_closes_the_connection() -> None:
    async def endless(stream: anyio.abc.SocketStream, server: Server) -> None:
        while await read_request(stream):
            server.requests += 1
            await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await stream.send(b"5\r\nhello\r\n")
            with anyio.move_on_after(2):
                try:
                    while await stream.receive():
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return  # the client hung up

    async with serve(endless) as (url, server):
        client = wire(url)
        for _ in range(2):
            async with client.request("GET", {}) as answer:
                async for _chunk in answer.chunks():
                    break
        await client.aclose()
    assert server.connections == 2  # the half-read connection was not reused


async def test_unreachable_upstream_is_an_http_failure() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    client = wire(f"http://127.0.0.1:{port}/mcp")
    with pytest.raises(HttpFailure):
        async with client.request("POST", {}, b"{}"):
            pass


async def test_oversized_response_head_is_refused() -> None:
    async def huge_head(stream: anyio.abc.SocketStream, server: Server) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")

    async with serve(huge_head) as (url, _server):
        client = wire(url)
        with pytest.raises(HttpFailure):
            async with client.request("POST", {}, b"{}"):
                pass
        await client.aclose()


async def test_userinfo_in_the_url_is_not_sent() -> None:
    heads: list[bytes] = []

    async def record(stream: anyio.abc.SocketStream, server: Server) -> None:
        heads.append(await read_request(stream))
        await stream.send(OK)

    async with serve(record) as (url, _server):
        client = wire(url.replace("http://", "http://user:secret@"))
        async with client.request("POST", {}, b"{}") as answer:
            await answer.read(10)
        await client.aclose()
    assert b"secret" not in heads[0]
    assert b"\r\nhost: 127.0.0.1:" in heads[0].lower()


async def test_a_header_that_cannot_be_sent_is_an_http_failure() -> None:
    async with serve(keep_alive) as (url, server):
        client = wire(url)
        for bad in ({"X-Token": "caf\u00e9\u2603"}, {"X-Token": "a\r\nInjected: 1"}):
            with pytest.raises(HttpFailure):
                async with client.request("POST", bad, b"{}"):
                    pass
        await client.aclose()
    assert server.requests == 0  # nothing malformed went out


async def test_the_connect_check_is_asked_per_new_connection_and_a_no_sends_nothing() -> None:
    asked: list[bool] = []
    answer = [True]

    async def check() -> bool:
        asked.append(answer[0])
        return answer[0]

    async with serve(keep_alive) as (url, server):
        client = HttpWire(
            url, max_connections=8, connect_timeout=2.0, checks=ConnectChecks(before=check)
        )
        for _ in range(3):
            async with client.request("POST", {}, b"{}") as reply:
                assert await reply.read(10) == b"{}"
        await client.aclose()
        assert asked == [True]  # asked on connecting, not for each request on the connection
        answer[0] = False
        client = HttpWire(
            url, max_connections=8, connect_timeout=2.0, checks=ConnectChecks(before=check)
        )
        with pytest.raises(HttpFailure, match="ConnectCheckFailed"):
            async with client.request("POST", {}, b"{}"):
                pass
        await client.aclose()
    assert asked == [True, False]
    assert (server.connections, server.requests) == (1, 3)  # the refused one never connected


async def test_up1_the_peer_check_is_asked_once_connected_and_a_no_sends_nothing() -> None:
    """The check of the connected socket (the hub's: is the peer ours?) is asked once per
    new connection, with its two ends, never per request on a kept-alive one; when it says
    no, the connection that was made is closed with nothing sent on it."""
    asked: list[tuple[tuple[str, int], tuple[str, int]]] = []
    answer = [True]
    heard = bytearray()

    async def peer(local: tuple[str, int], remote: tuple[str, int]) -> bool:
        asked.append((local, remote))
        return answer[0]

    async def record(stream: anyio.abc.SocketStream, server: Server) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                heard.extend(await stream.receive())

    async with serve(keep_alive) as (url, server):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        client = HttpWire(
            url, max_connections=8, connect_timeout=2.0, checks=ConnectChecks(after=peer)
        )
        for _ in range(3):
            async with client.request("POST", {}, b"{}") as reply:
                assert await reply.read(10) == b"{}"
        await client.aclose()
    assert len(asked) == 1  # asked on connecting, not for each request on the connection
    ((local, remote),) = asked
    assert remote == ("127.0.0.1", port) and local[0] == "127.0.0.1" and local[1] != port
    answer[0] = False
    async with serve(record) as (url, server):
        client = HttpWire(
            url, max_connections=8, connect_timeout=2.0, checks=ConnectChecks(after=peer)
        )
        with pytest.raises(HttpFailure, match="ConnectCheckFailed"):
            async with client.request("POST", {}, b"{}"):
                pass
        await client.aclose()
        with anyio.fail_after(5):
            while server.live:  # the refused connection was made, then closed by the client
                await anyio.sleep(0.01)
    assert len(asked) == 2
    assert server.connections == 1 and heard == b""  # made, and nothing sent on it
