"""The JSON-RPC peer: correlation, progress routing, timeouts that cancel remotely, bounded
tables, and outstanding requests failing when the connection goes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from bastion.errors import InternalError, ParseError, PeerError, RequestTimeout, TransportClosed
from bastion.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from bastion.session.peer import Call, Peer

pytestmark = pytest.mark.anyio


class Wire:
    """Two peers joined back to back, recording every message that crosses."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.a: Peer | None = None
        self.b: Peer | None = None

    def sink_to(self, name: str) -> Any:
        async def sink(message: Message, related: RequestId | None) -> None:
            self.sent.append(message)
            target = self.b if name == "b" else self.a
            assert target is not None
            await target.dispatch(message)

        return sink


async def echo_handler(call: Call) -> Any:
    if call.method == "slow":
        await anyio.sleep_forever()
    if call.method == "fail":
        raise PeerError(-32099, "nope")
    if call.method == "progress":
        for i in range(3):
            await call.notify(
                "notifications/progress",
                {"progressToken": call.params["_meta"]["progressToken"], "progress": i},
            )
    return {"echo": call.params}


async def test_request_response_and_progress() -> None:
    wire = Wire()
    seen: list[Any] = []

    async def on_progress(params: dict[str, Any]) -> None:
        seen.append(params["progress"])

    async with (
        Peer(wire.sink_to("b"), echo_handler) as a,
        Peer(wire.sink_to("a"), echo_handler) as b,
    ):
        wire.a, wire.b = a, b
        with anyio.fail_after(5):
            assert await a.request("x", {"k": 1}) == {"echo": {"k": 1}}
            await a.request("progress", {}, on_progress=on_progress)
            with pytest.raises(PeerError) as err:
                await a.request("fail")
    assert seen == [0, 1, 2]
    assert err.value.peer_code == -32099


async def test_timeout_cancels_on_the_other_side() -> None:
    wire = Wire()
    async with (
        Peer(wire.sink_to("b"), echo_handler) as a,
        Peer(wire.sink_to("a"), echo_handler) as b,
    ):
        wire.a, wire.b = a, b
        with anyio.fail_after(5), pytest.raises(RequestTimeout):
            await a.request("slow", timeout=0.05)
        with anyio.fail_after(5):
            while len(b._inbound):  # the cancellation reached b and stopped its handler
                await anyio.sleep(0.01)
    cancels = [m for m in wire.sent if isinstance(m, Notification)]
    assert cancels and cancels[0].method == "notifications/cancelled"
    # No answer was ever sent for the cancelled request.
    assert not any(isinstance(m, Response) for m in wire.sent)


async def test_close_fails_outstanding_requests() -> None:
    async def black_hole(message: Message, related: RequestId | None) -> None:
        return None

    async with Peer(black_hole, echo_handler) as peer:
        async with anyio.create_task_group() as tg:
            failures: list[BaseException] = []

            async def ask() -> None:
                try:
                    await peer.request("x")
                except TransportClosed as exc:
                    failures.append(exc)

            tg.start_soon(ask)
            await anyio.sleep(0.01)
            peer.close()
        assert len(failures) == 1
        with pytest.raises(TransportClosed):
            await peer.request("y")


async def test_inbound_table_is_bounded_and_rejects_duplicate_ids() -> None:
    answers: list[Message] = []

    async def sink(message: Message, related: RequestId | None) -> None:
        answers.append(message)

    async with Peer(sink, echo_handler, max_inflight=2) as peer:
        await peer.dispatch(Request(id=0, method="slow"))
        await anyio.sleep(0.05)  # id 0 is running
        await peer.dispatch(Request(id=0, method="slow"))  # its duplicate ends at once
        with anyio.fail_after(5):
            while not answers:
                await anyio.sleep(0.01)
        for i in range(1, 3):
            await peer.dispatch(Request(id=i, method="slow"))
        with anyio.fail_after(5):
            while len(answers) < 2:
                await anyio.sleep(0.01)
        codes = sorted(m.error.code for m in answers if isinstance(m, ErrorResponse))
        assert codes == [-32600, -32000]  # duplicate id; table full
        peer._tg.cancel_scope.cancel()  # type: ignore[union-attr]


async def test_past_the_inflight_cap_dispatch_waits_on_the_refusals_write_DS4() -> None:
    """DS-4: a client that sends requests but stops reading the answers. Past
    ``max_inflight`` running requests, ``dispatch`` itself writes the refusal, so while
    nothing can be written it does not return and the caller stops reading input: the
    requests held stay bounded (before, each became a task waiting to write, without end)."""
    written = anyio.Event()  # never set: the reader of our answers is gone

    async def stuck_sink(message: Message, related: RequestId | None) -> None:
        await written.wait()

    async with Peer(stuck_sink, echo_handler, max_inflight=4) as peer:
        dispatched = 0
        with anyio.move_on_after(1):
            for i in range(1000):
                await peer.dispatch(Request(id=i, method="ping"))
                dispatched += 1
        assert dispatched == 4
        assert peer._running == 4
        peer._tg.cancel_scope.cancel()  # type: ignore[union-attr]


def unreadable(response_id: int) -> ParseError:
    error = ParseError("message nested deeper than 64")
    error.response_id = response_id
    return error


async def test_a_request_whose_answer_cannot_be_read_fails_soon_not_at_its_timeout() -> None:
    """UP-4: an answer the decoder refused names its request; that request fails after the
    short grace (``UNREADABLE_GRACE``) instead of the 300 s timeout, and nothing is sent
    back for it. A readable answer within the grace still wins."""
    sent: list[Message] = []

    async def sink(message: Message, related: RequestId | None) -> None:
        sent.append(message)

    async with Peer(sink, echo_handler) as peer:
        outcomes: list[object] = []

        async def ask() -> None:
            try:
                outcomes.append(await peer.request("tools/call"))
            except InternalError as exc:
                outcomes.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                tg.start_soon(ask)
                while len(sent) < 2:
                    await anyio.sleep(0.01)
                first, second = (m.id for m in sent if isinstance(m, Request))
                await peer.dispatch(unreadable(first))
                await peer.dispatch(unreadable(second))
                await peer.dispatch(Response(id=second, result={"late": "but readable"}))
        assert len(sent) == 2  # no error response went back for the unreadable answers
        failed = [o for o in outcomes if isinstance(o, InternalError)]
        assert len(failed) == 1 and failed[0].wire_message == "The answer could not be read"
        assert {"late": "but readable"} in outcomes
