"""What 2025-11-25 sessions keep for ``Last-Event-ID`` resumption (DS-4, SE-4): bounded in
bytes per session and in all, and a finished stream's replay only for ``replay_ttl``; the
oldest finished replay goes first, and resuming it is then resuming an unknown stream. The
red-team finding: every answer stayed for replay, ~90 MiB a session, never released."""

from __future__ import annotations

import gc
import tracemalloc

import anyio
import pytest

from bastion.transport.settings import SessionSettings
from tests.auth.support import FakeClock
from tests.transport.asgi_support import in_process

pytestmark = pytest.mark.anyio

WAIT = 30  # seconds; every in-process exchange below finishes far sooner
KIB = 1024
MIB = 1024 * KIB


def held() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_ds4_a_sessions_replay_memory_is_bounded() -> None:
    """24 answers of 512 KiB in one session (12 MiB) leave at most the session's budget
    (default) held; the latest answer is still resumable, the first is not."""
    text = "x" * (512 * KIB)
    budget = SessionSettings().replay_bytes
    with anyio.fail_after(WAIT):
        async with in_process() as gw:
            session = await gw.initialize("alice")
            first = await gw.echo("alice", session, text, 100)
            tracemalloc.start()
            try:
                before = held()
                for n in range(24):
                    last = await gw.echo("alice", session, text, 101 + n)
                grown = held() - before
            finally:
                tracemalloc.stop()
            assert grown < budget + 2 * MIB
            replayed = await gw.resume("alice", session, last)
            assert replayed[-1]["id"] == 124
            assert replayed[-1]["result"]["content"][0]["text"] == text
            assert await gw.resume("alice", session, first) == []


async def test_ds4_a_finished_streams_replay_lasts_replay_ttl() -> None:
    clock = FakeClock()
    with anyio.fail_after(WAIT):
        async with in_process(clock=clock, replay_ttl=30.0) as gw:
            session = await gw.initialize("alice")
            answered = await gw.echo("alice", session, "resume me", 7)
            clock.advance(29.0)
            assert (await gw.resume("alice", session, answered))[-1]["id"] == 7
            clock.advance(2.0)
            gw.app.expire_replay()  # the gateway does this every second, idle or not
            assert await gw.resume("alice", session, answered) == []


async def test_ds4_replay_is_bounded_in_all_oldest_finished_first() -> None:
    """Four sessions each under their own budget, over the total: the answers that
    finished first are dropped, whoever's they were; the latest stay resumable."""
    text = "y" * (300 * KIB)
    settings = {"replay_bytes": 1 * MIB, "replay_bytes_total": 1 * MIB}
    with anyio.fail_after(WAIT):
        async with in_process(**settings) as gw:
            who = ("alice", "bob", "carol", "dave")
            sessions = [await gw.initialize(name) for name in who]
            answers = [
                await gw.echo(name, session, text, 10 + n)
                for n, (name, session) in enumerate(zip(who, sessions, strict=True))
            ]
            resumable = [
                bool(await gw.resume(name, session, answer))
                for name, session, answer in zip(who, sessions, answers, strict=True)
            ]
            assert resumable == [False, True, True, True]


async def test_ds4_an_answer_over_the_budget_still_reaches_its_post() -> None:
    """The budget drops replay, never an answer its POST response has yet to write."""
    text = "z" * (200 * KIB)
    with anyio.fail_after(WAIT):
        async with in_process(replay_bytes=64 * KIB, replay_bytes_total=64 * KIB) as gw:
            session = await gw.initialize("alice")
            for n in range(3):
                call = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": text}}}  # fmt: skip
                answer = await gw.client.post(
                    "/mcp", json=call, headers=gw.headers("alice", session)
                )
                assert text in answer.text
            assert await gw.alive("alice", session)
