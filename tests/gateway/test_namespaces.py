"""TC-3: each upstream answers resource reads, subscriptions and update notifications only in
its own namespace (``<server-scheme>+``), even a bare one (``prefix: ""``) whose templates
would match every URI, and even while the server whose namespace it is has not started.

The squatter (``upstreams/template_traps.py squat``, bare) offers ``{+u}``, server
``good``'s own template ``good+test://template/{id}/data`` and a resource
``good+test://squatted``, and announces updates of ``good+`` URIs. Before, it was sent reads
of ``good+test://template/42/data`` ("served by EVIL catchall", red team t) and every other
``good+`` URI, hid good's template (the same text offered twice is hidden from both), and
its spoofed updates reached good's subscribers (red team v).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.config.load import parse_config
from bastion.errors import PeerError
from bastion.gateway import Gateway
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from tests.memory import connected
from tests.support import BASTION

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TRAPS = Path(__file__).parent / "upstreams" / "template_traps.py"
FIXTURE = f"    command: {BASTION}\n    args: [fixture, --stdio]\n"
STARTUP = 30.0


def _config(record: Path, *, good: str = FIXTURE) -> str:
    return (
        "servers:\n"
        f"  squatter:\n    command: {sys.executable}\n"
        f"    args: [{TRAPS}, squat, {record}]\n"
        '    prefix: ""\n'
        f"  good:\n{good}"
    )


@asynccontextmanager
async def _gateway(
    config: str, heard: list[Notification], ready: tuple[str, ...]
) -> AsyncIterator[tuple[Gateway, ClientSession]]:
    gateway = Gateway(
        parse_config(config, {}),
        dict(os.environ),
        sealer=RequestStateSealer([secrets.token_bytes(32)]),
    )

    async def on_note(note: Notification) -> None:
        heard.append(note)

    async with anyio.create_task_group() as tg:
        tg.start_soon(gateway.run)
        for server in ready:
            assert await gateway.wait_ready(server, STARTUP), gateway.status()
        handlers = ClientHandlers(on_notification=on_note)
        async with connected(gateway.app, Era.LEGACY, handlers, sealer=gateway.sealer) as s:
            yield gateway, s
        tg.cancel_scope.cancel()


def _texts(read: dict[str, object]) -> str:
    return str(read["contents"])


async def _updates(heard: list[Notification], uri: str) -> None:
    with anyio.fail_after(10):
        while not any(_updated(n) == uri for n in heard):
            await anyio.sleep(0.02)


def _updated(note: Notification) -> object:
    if note.method != "notifications/resources/updated":
        return None
    return (note.params or {}).get("uri")


async def test_tc3_a_bare_server_answers_nothing_in_another_servers_namespace(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    heard: list[Notification] = []
    async with _gateway(_config(record), heard, ("squatter", "good")) as (_, s):
        templates = {
            t["uriTemplate"]
            for t in await s.list_all("resources/templates/list", "resourceTemplates")
        }
        assert "good+test://template/{id}/data" in templates  # good's own, no longer hidden
        assert "{+u}" in templates  # the squatter's own namespace is its to serve
        uris = {r["uri"] for r in await s.list_all("resources/list", "resources")}
        assert "good+test://squatted" not in uris and "good+test://static-text" in uris

        templated = _texts(await s.read_resource("good+test://template/42/data"))
        assert '"id":"42"' in templated and "template_traps" not in templated
        for uri in ("good+test://squatted", "good+test://nothing", "GOOD+test://static-text"):
            with pytest.raises(PeerError):  # good has none of these; the squatter gets none
                await s.read_resource(uri)
        assert "served by template_traps: other:thing" in _texts(
            await s.read_resource("other:thing")
        )

        for uri in ("good+test://static-text", "other:thing"):
            await s.request("resources/subscribe", {"uri": uri})
        await s.call_tool("poke", {"uri": "good+test://static-text"})  # spoofed
        await s.call_tool("poke", {"uri": "other:thing"})  # its own: delivered
        await _updates(heard, "other:thing")
        assert "good+test://static-text" not in [_updated(n) for n in heard]

    lines = record.read_text().splitlines()
    assert lines == ["resources/read other:thing", "resources/subscribe other:thing"]


async def test_tc3_a_bare_server_gets_no_read_meant_for_a_server_not_yet_started(
    tmp_path: Path,
) -> None:
    """The namespace is the configured server's whether or not it is up: a squatter's
    catch-all and copies of its template answer none of its URIs meanwhile."""
    record = tmp_path / "record"
    never = (
        f"    command: {sys.executable}\n"
        "    args: [-c, 'import time; time.sleep(60)']\n"
        "    startup_timeout: 2\n"
    )
    async with _gateway(_config(record, good=never), [], ("squatter",)) as (gateway, s):
        for uri in ("good+test://template/42/data", "good+test://squatted", "good+x:y"):
            with pytest.raises(PeerError):
                await s.read_resource(uri)
        assert "template_traps" in _texts(await s.read_resource("other:thing"))
        await s.request("resources/subscribe", {"uri": "good+test://squatted"})
        assert gateway.namespaces.route("good+test://squatted") == ("good", "test://squatted")
    assert record.read_text().splitlines() == ["resources/read other:thing"]
