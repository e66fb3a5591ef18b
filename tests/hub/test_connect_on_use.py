"""Connect on first use, in process: a ``Hub`` over a real ``Gateway`` and a real
``Discovery`` of a private registry, its client on the in-memory transport, and real
``bastion fixture`` HTTP servers as the instances (registered by writing their records).

A call of ``<instance>__<tool>``, a prompt ``<instance>__<prompt>`` or a resource
``<instance-scheme>+<uri>`` connects the instance it belongs to and is served; a name no
single live instance owns stays unknown; lists show the connected instances only, and the
instances named by ``connect_at_start`` before the first list.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from bastion.client import ClientSession
from bastion.config import Config
from bastion.errors import PeerError
from bastion.gateway import Gateway
from bastion.hub import Discovery, InstanceRecord, write_record
from bastion.hub.liveness import listener_is_ours
from bastion.hub.service import Hub
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from tests.memory import connected
from tests.support import (
    BASTION,
    free_port,
    other_users_listener,
    stop_process,
    wait_for_port,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ERAS = [Era.LEGACY, Era.MODERN]
OWN = ["instances_list", "instances_connect", "instances_disconnect"]
STATIC_TEXT = "This is the content of the static text resource."


@contextmanager
def fixture_server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A ``bastion fixture`` HTTP server listening, and its port."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BASTION), "fixture", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        stop_process(proc)


@contextmanager
def instance(registry: Path, name: str) -> Iterator[InstanceRecord]:
    """A ``bastion fixture`` HTTP server, registered as instance ``name``."""
    with fixture_server() as (proc, port):
        url = f"http://127.0.0.1:{port}/mcp"
        record = InstanceRecord.create(name=name, url=url, project=f"/src/{name}", pid=proc.pid)
        write_record(registry, record)
        yield record


@asynccontextmanager
async def hub_client(
    registry: Path,
    era: Era,
    connect_at_start: Sequence[str] = (),
    discovery: Discovery | None = None,
) -> AsyncIterator[ClientSession]:
    """A just-started hub (as ``bastion hub`` runs it) and a client of it."""
    gateway = Gateway(Config(), {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    discovery = discovery or Discovery(registry)
    hub = Hub(gateway, discovery, connect_at_start=connect_at_start)
    async with anyio.create_task_group() as tg:
        await tg.start(discovery.run)
        tg.start_soon(gateway.run)
        tg.start_soon(hub.run)
        async with connected(gateway.app, era, sealer=gateway.sealer) as session:
            yield session
        tg.cancel_scope.cancel()


async def tool_names(session: ClientSession) -> list[str]:
    return [tool["name"] for tool in await session.list_tools()]


async def listed(session: ClientSession) -> list[dict[str, Any]]:
    result = await session.call_tool("instances_list", {})
    rows: list[dict[str, Any]] = result["structuredContent"]["instances"]
    return rows


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_connects_its_instance_on_first_use(tmp_path: Path, era: Era) -> None:
    registry = tmp_path / "instances"
    with instance(registry, "alpha"), instance(registry, "beta"):
        async with hub_client(registry, era) as s:
            # The very first request of a fresh hub: nothing connected, nothing listed yet.
            out = await s.call_tool("alpha__echo", {"text": "first use"})
            assert out["content"] == [{"type": "text", "text": "first use"}]
            rows = {r["name"]: r for r in await listed(s)}
            assert rows["alpha"]["connected"] is True
            assert rows["alpha"]["prefix"] == "alpha__"
            assert rows["beta"]["connected"] is False
            names = await tool_names(s)
            assert names[:3] == OWN
            assert "alpha__echo" in names
            assert not any(n.startswith("beta__") for n in names)  # lists stay lazy

            read = await s.read_resource("beta+test://static-text")
            assert read["contents"][0]["text"] == STATIC_TEXT
            assert any(n.startswith("beta__") for n in await tool_names(s))

            done = await s.call_tool("instances_disconnect", {"instance": "alpha"})
            assert not done.get("isError"), done
            assert "alpha__echo" not in await tool_names(s)
            again = await s.call_tool("alpha__echo", {"text": "second use"})  # reconnects
            assert again["content"] == [{"type": "text", "text": "second use"}]


@pytest.mark.parametrize("era", ERAS)
async def test_a_prompt_connects_its_instance_on_first_use(tmp_path: Path, era: Era) -> None:
    registry = tmp_path / "instances"
    with instance(registry, "my project!"):  # registered name, sanitised: my_project
        async with hub_client(registry, era) as s:
            prompt = await s.get_prompt("my_project__test_simple_prompt")
            text = prompt["messages"][0]["content"]["text"]
            assert text == "This is a simple prompt for testing."
            assert "my_project__echo" in await tool_names(s)


@pytest.mark.parametrize("era", ERAS)
async def test_names_no_single_live_instance_owns_stay_unknown(tmp_path: Path, era: Era) -> None:
    registry = tmp_path / "instances"
    with instance(registry, "twin") as first, instance(registry, "twin"):
        async with hub_client(registry, era) as s:
            assert len(await listed(s)) == 2
            for name in ("twin__echo", "nobody__echo"):  # two owners; no owner
                with pytest.raises(PeerError, match="Unknown tool"):
                    await s.call_tool(name, {"text": "x"})
            with pytest.raises(PeerError):
                await s.read_resource("nobody+test://static-text")
            assert await tool_names(s) == OWN
            assert not any(r["connected"] for r in await listed(s))

            # The hub's rule for twins: connect by id; the second one is then twin_2.
            out = await s.call_tool("instances_connect", {"instance": first.id})
            assert out["structuredContent"]["prefix"] == "twin__"
            again = await s.call_tool("twin_2__echo", {"text": "the other twin"})
            assert again["content"] == [{"type": "text", "text": "the other twin"}]


@pytest.mark.parametrize("era", ERAS)
async def test_connect_at_start_lists_the_instance_first_thing(tmp_path: Path, era: Era) -> None:
    registry = tmp_path / "instances"
    with ExitStack() as stack:
        stack.enter_context(instance(registry, "gamma"))
        stack.enter_context(instance(registry, "delta"))
        async with hub_client(registry, era, connect_at_start=["gamma", "nobody"]) as s:
            names = await tool_names(s)  # the first request: the list waits for gamma
            assert "gamma__echo" in names
            assert not any(n.startswith("delta__") for n in names)


@pytest.mark.parametrize("era", ERAS)
async def test_a_port_that_changed_hands_since_the_last_ping_is_not_connected(
    tmp_path: Path, era: Era
) -> None:
    """UP-1: an instance listed ACTIVE whose port another user took since the last ping
    (pings are seconds apart; here an hour) is not connected: the hub looks at the
    port's listener again right before it connects, and the entry's credential is never
    sent there. /proc cannot be made to show another user's socket in a test, so the
    check's answer is switched (``listener_owned``); the check itself is tested against
    real sockets in test_liveness.py."""
    registry = tmp_path / "instances"
    ours = [True]
    discovery = Discovery(registry, ping_interval=3600.0, listener_owned=lambda record: ours[0])
    with instance(registry, "alpha") as record:
        async with hub_client(registry, era, discovery=discovery) as s:
            assert [r["name"] for r in await listed(s)] == ["alpha"]  # ACTIVE
            ours[0] = False  # the instance stopped; another user bound its port
            out = await s.call_tool("instances_connect", {"instance": record.id})
            assert out.get("isError") is True
            assert "no longer this user's" in out["content"][0]["text"]
            with pytest.raises(PeerError, match="Unknown tool"):
                await s.call_tool("alpha__echo", {"text": "x"})  # not connected on use
            assert not any(r["connected"] for r in await listed(s))
            ours[0] = True  # and once it is ours again, it connects
            done = await s.call_tool("instances_connect", {"instance": record.id})
            assert not done.get("isError"), done


@pytest.mark.parametrize("era", ERAS)
async def test_up1_an_instance_that_stops_being_active_is_disconnected_at_once(
    tmp_path: Path, era: Era
) -> None:
    """UP-1, TC-3 (red-team round 8): once connected, an instance whose port another user
    took (the listener check fails at the next ping) stayed mounted until declared dead,
    15-20 s later, and the mounted upstream reconnected to the new listener, which got the
    client's calls and answered as the instance. An instance that leaves ACTIVE is now
    disconnected at once; it is connected again on use once it is back."""
    registry = tmp_path / "instances"
    ours = [True]
    discovery = Discovery(registry, ping_interval=0.2, listener_owned=lambda record: ours[0])
    with instance(registry, "alpha"):
        async with hub_client(registry, era, discovery=discovery) as s:
            out = await s.call_tool("alpha__echo", {"text": "before"})
            assert out["content"] == [{"type": "text", "text": "before"}]
            ours[0] = False  # the instance stopped; another user bound its port
            with anyio.fail_after(5):
                while "alpha__echo" in await tool_names(s):
                    await anyio.sleep(0.05)
            with pytest.raises(PeerError, match="Unknown tool"):
                await s.call_tool("alpha__echo", {"text": "to whom?"})


@asynccontextmanager
async def impostor(port: int) -> AsyncIterator[bytearray]:
    """Another user's listener on a freed port: keeps the bytes it is sent, answers none."""
    heard = bytearray()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)

    async def take(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                heard.extend(await stream.receive())

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, take)
        yield heard
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("era", ERAS)
async def test_up1_a_mounted_instance_never_reconnects_to_a_listener_not_ours(
    tmp_path: Path, era: Era
) -> None:
    """UP-1, TC-3 (red-team round 12): a mounted instance's upstream connected again on its
    own (a new connection after the old one dropped, a restart of the replica) without
    the listener check, so until discovery's next ping another user who bound the freed
    port got the client's calls, arguments and the instance's credential. Now every new
    connection of a hub-mounted upstream asks first; one not ours is never made. The
    registered process lives on (a wrapper whose server restarted), so discovery sees no
    exit, and with pings an hour apart the instance stays ACTIVE and mounted."""
    registry = tmp_path / "instances"
    ours = [True]
    discovery = Discovery(registry, ping_interval=3600.0, listener_owned=lambda record: ours[0])
    with fixture_server() as (server, port):
        url = f"http://127.0.0.1:{port}/mcp"
        record = InstanceRecord.create(name="alpha", url=url, project="/src/a", pid=os.getpid())
        write_record(registry, record)
        async with hub_client(registry, era, discovery=discovery) as s:
            out = await s.call_tool("alpha__echo", {"text": "before"})
            assert out["content"] == [{"type": "text", "text": "before"}]
            # The server dies; another user binds its port. The stand-in check says "not
            # ours" from the kill on: set after it, a reconnect checked in between (still
            # "ours") could reach the impostor bound next, a window the real check closes
            # after connecting (the next test), not this stand-in.
            ours[0] = False
            server.kill()
            server.wait()
            async with impostor(port) as heard:
                with contextlib.suppress(PeerError):
                    out = await s.call_tool("alpha__echo", {"text": "a secret argument"})
                    assert out.get("isError") is True, out
                await anyio.sleep(1.0)  # room for the replica's own reconnect attempts
            assert bytes(heard) == b""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="reads Linux's /proc/net, and runs a listener as another uid (needs root)",
)
@pytest.mark.parametrize("era", ERAS)
async def test_up1_a_port_taken_between_the_check_and_the_connect_is_sent_nothing(
    tmp_path: Path, era: Era
) -> None:
    """UP-1, TC-3: the listener check is made before connecting, so another user who binds
    the port in between (the instance stopped just then) got the connection, and with it
    the instance's credential and the client's calls. Reproduced as it happens: the check
    that comes right before the transport connects is the real one and passes (our server
    listens), then our server dies and another uid's listener takes its port at once. The
    connection reaches that listener, which must be sent nothing; the call fails."""
    registry = tmp_path / "instances"
    armed, checks = False, 0
    taken: list[list[bytes]] = []  # what the other user's listener was sent, per connection
    with fixture_server() as (server, port), contextlib.ExitStack() as stack:

        def owned(record: InstanceRecord) -> bool:
            nonlocal checks
            ours = listener_is_ours(record)  # the real check, whatever happens next
            if armed:
                checks += 1
                if checks == 2:  # the hub's check before mounting, then the transport's
                    server.kill()
                    server.wait()
                    taken.append(stack.enter_context(other_users_listener(port)))
            return ours

        discovery = Discovery(registry, ping_interval=3600.0, listener_owned=owned)
        url = f"http://127.0.0.1:{port}/mcp"
        record = InstanceRecord.create(
            name="alpha", url=url, project="/src/a", pid=os.getpid(), credential="s3cret-token"
        )
        write_record(registry, record)
        async with hub_client(registry, era, discovery=discovery) as s:
            out = await s.call_tool("alpha__echo", {"text": "before"})
            assert out["content"] == [{"type": "text", "text": "before"}]
            done = await s.call_tool("instances_disconnect", {"instance": "alpha"})
            assert not done.get("isError"), done
            armed = True
            with pytest.raises(PeerError):  # connected on use, but nothing answers
                await s.call_tool("alpha__echo", {"text": "a secret argument"})
        assert taken, "the port should have changed hands right after a passing check"
        stack.close()  # the other user's listener stops and tells what it was sent
    heard = taken[0]
    assert heard, "the connection should have reached the other user's listener"
    assert heard == [b""] * len(heard)  # reached, and sent nothing: no request, no token
