"""The stream after the stdio fast start: the replayed initialize's answer stays off the
wire, once, and only that one (AZ-1, AD-1)."""

from __future__ import annotations

import anyio
import pytest

from bastion.errors import BastionError
from bastion.protocol.jsonrpc import ErrorObject, ErrorResponse, Message, Response
from bastion.transport.fast_started import FastStartedStream


class Written:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def receive(self) -> Message | BastionError:
        raise anyio.EndOfStream

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def aclose(self) -> None:
        return None


def _send_all(stream: FastStartedStream, *messages: Message) -> None:
    async def run() -> None:
        for message in messages:
            await stream.send(message)

    anyio.run(run)


def test_only_the_first_answer_to_the_answered_id_is_kept_off_the_wire() -> None:
    inner, refusals = Written(), list[ErrorObject]()
    stream = FastStartedStream(inner, 7, refusals.append)
    other_id = Response(id="7", result={})  # a string "7" is another id than 7
    replayed, later = Response(id=7, result={"a": 1}), Response(id=7, result={"b": 2})
    _send_all(stream, other_id, replayed, later)
    assert inner.sent == [other_id, later]
    assert refusals == []


def test_a_refused_replay_is_reported_and_not_written() -> None:
    inner, refusals = Written(), list[ErrorObject]()
    stream = FastStartedStream(inner, "init", refusals.append)
    error = ErrorObject(code=-32003, message="Denied by policy")
    _send_all(stream, ErrorResponse(id="init", error=error))
    assert inner.sent == []
    assert refusals == [error]


def test_receive_is_the_inner_streams() -> None:
    stream = FastStartedStream(Written(), 1, lambda _error: None)
    with pytest.raises(anyio.EndOfStream):
        anyio.run(stream.receive)
