"""Who listens on an instance's port (Linux's /proc/net/tcp tables): the hub reaches only
a listener of our own uid, never one another local user bound after the instance stopped;
and who answered a connection once it is made (the same tables): nothing is sent to a
socket of another uid, whoever took the port between the check and the connect."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import anyio
import pytest

from bastion.hub import InstanceRecord, McpPinger
from bastion.hub.liveness import listener_is_ours, listener_uids, peer_is_ours, peer_uid
from tests.support import OTHER_UID, free_port, other_users_listener

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the listener check reads Linux's /proc/net"
)
as_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="reads Linux's /proc/net, and runs a listener as another uid (needs root)",
)
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
ME, OTHER = os.getuid(), os.getuid() + 1000


def _row(address: str, port: int, uid: int, state: str = "0A") -> str:
    return f"   0: {address}:{port:04X} 00000000:0000 {state} 0:0 00:0 0 {uid} 0 1 1\n"


def _tables(tcp: str = "", tcp6: str | None = "") -> Callable[[str], str | None]:
    def read(path: str) -> str | None:
        return HEADER + tcp if path.endswith("tcp") else (None if tcp6 is None else HEADER + tcp6)

    return read


def _record(port: int, host: str = "127.0.0.1") -> InstanceRecord:
    url = f"http://{host}:{port}/mcp" if ":" not in host else f"http://[{host}]:{port}/mcp"
    return InstanceRecord.create(name="demo", url=url, project="/src/demo", pid=os.getpid())


LOOPBACK4 = "0100007F" if sys.byteorder == "little" else "7F000001"
LOOPBACK6 = "00000000000000000000000001000000" if sys.byteorder == "little" else "0" * 31 + "1"


@linux_only
def test_hub_a_loopback_listener_of_another_uid_is_not_ours() -> None:
    """The port of a stopped instance, bound by another local user: refused."""
    read = _tables(_row(LOOPBACK4, 4321, OTHER))
    assert listener_uids("127.0.0.1", 4321, read) == {OTHER}
    assert not listener_is_ours(_record(4321), read)


@linux_only
@pytest.mark.parametrize(
    ("tcp", "tcp6"),
    [
        (_row("00000000", 4321, OTHER), ""),  # 0.0.0.0: reaches 127.0.0.1 too
        ("", _row("0" * 32, 4321, OTHER)),  # [::], dual-stack
        (_row(LOOPBACK4, 4321, ME) + _row("00000000", 4321, OTHER), ""),  # one of two
    ],
)
def test_hub_a_wildcard_listener_of_another_uid_is_not_ours(tcp: str, tcp6: str) -> None:
    assert not listener_is_ours(_record(4321), _tables(tcp, tcp6))


@linux_only
def test_hub_only_listening_rows_of_that_port_and_address_count() -> None:
    """Connected sockets (state 01), other ports and other addresses are not listeners."""
    tcp = (
        _row(LOOPBACK4, 4321, ME)
        + _row(LOOPBACK4, 4321, OTHER, state="01")
        + _row(LOOPBACK4, 4322, OTHER)
        + _row("0200007F" if sys.byteorder == "little" else "7F000002", 4321, OTHER)
    )
    assert listener_is_ours(_record(4321), _tables(tcp, None))  # no IPv6 table: fine
    assert listener_is_ours(_record(4321, "::1"), _tables("", _row(LOOPBACK6, 4321, ME)))
    assert not listener_is_ours(_record(4321, "::1"), _tables("", _row(LOOPBACK6, 4321, OTHER)))


@linux_only
def test_hub_no_listener_or_no_table_is_not_ours() -> None:
    assert not listener_is_ours(_record(4321), _tables())
    assert not listener_is_ours(_record(4321), lambda path: None)


@linux_only
def test_hub_our_own_real_listener_is_ours() -> None:
    """The real tables: a socket this test listens on is accepted, a closed port is not."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert listener_uids("127.0.0.1", port) == {os.getuid()}
        assert listener_is_ours(_record(port))
    assert not listener_is_ours(_record(port))


@linux_only
def test_hub_a_localhost_url_is_checked_on_both_loopback_addresses() -> None:
    """A registered ``http://localhost:PORT`` URL (the README calls it loopback) was never
    listed: ``localhost`` is not an address, so the check refused it. Its listeners on
    127.0.0.1 and ::1 both count now: ours on either is ours, another user's on either
    is not (the client may reach either)."""
    assert listener_is_ours(_record(4321, "localhost"), _tables(_row(LOOPBACK4, 4321, ME), None))
    assert listener_is_ours(_record(4321, "localhost"), _tables("", _row(LOOPBACK6, 4321, ME)))
    assert not listener_is_ours(
        _record(4321, "localhost"),
        _tables(_row(LOOPBACK4, 4321, ME), _row(LOOPBACK6, 4321, OTHER)),
    )
    assert not listener_is_ours(_record(4321, "localhost"), _tables())


def _connected_row(local: str, remote: str, uid: int, state: str = "01") -> str:
    return f"   0: {local} {remote} {state} 0:0 00:0 0 {uid} 0 1 1\n"


@linux_only
def test_up1_the_peer_is_the_row_with_our_ends_swapped_in_either_table() -> None:
    """The peer's row has our remote end as its local end and ours as its remote; our own
    row (the other way round) is not it. A dual-stack listener's socket is in tcp6, with
    the IPv4-mapped form of the addresses."""
    us, them = ("127.0.0.1", 40000), ("127.0.0.1", 4321)
    ours_row = _connected_row(f"{LOOPBACK4}:9C40", f"{LOOPBACK4}:10E1", ME)
    peer4 = _connected_row(f"{LOOPBACK4}:10E1", f"{LOOPBACK4}:9C40", OTHER)
    mapped = "0000000000000000FFFF0000" if sys.byteorder == "little" else "0" * 20 + "FFFF"
    mapped += LOOPBACK4  # ::ffff:127.0.0.1, in 32-bit words of the host's byte order
    peer6 = _connected_row(f"{mapped}:10E1", f"{mapped}:9C40", OTHER)
    assert peer_uid(us, them, _tables(ours_row + peer4)) == OTHER
    assert peer_uid(us, them, _tables(ours_row, peer6)) == OTHER
    assert not peer_is_ours(us, them, _tables(ours_row + peer4))
    assert peer_is_ours(us, them, _tables(ours_row + peer4.replace(f" {OTHER} ", f" {ME} ")))
    assert peer_uid(us, them, _tables(ours_row)) is None  # no peer (or no table): not ours
    assert not peer_is_ours(us, them, _tables(ours_row))
    assert not peer_is_ours(us, them, lambda path: None)


@as_root
def test_up1_a_connection_answered_by_another_uid_is_not_ours() -> None:
    """The real tables: connected to our own listener, the peer is ours (accepted or still
    in the queue); connected to another uid's listener (one that took the port), not."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as conn:
            assert peer_is_ours(conn.getsockname(), conn.getpeername())  # not accepted yet
    port = free_port()
    with other_users_listener(port), socket.create_connection(("127.0.0.1", port)) as conn:
        assert peer_uid(conn.getsockname(), conn.getpeername()) == OTHER_UID
        assert not peer_is_ours(conn.getsockname(), conn.getpeername())


@as_root
@pytest.mark.anyio
async def test_up1_a_ping_sends_nothing_to_another_uids_listener() -> None:
    """UP-1: a ping carries the instance's credential; discovery checks the port's listener
    before it, but the port may change hands in between. The ping's connection is checked
    once made: another uid's listener is sent nothing, and the ping fails."""
    port = free_port()
    record = InstanceRecord.create(
        name="demo",
        url=f"http://127.0.0.1:{port}/mcp",
        project="/src/demo",
        pid=os.getpid(),
        credential="s3cret-token",
    )
    with other_users_listener(port) as heard:
        with anyio.fail_after(10):
            assert not await McpPinger(timeout=3.0)(record)
    assert heard and heard == [b""] * len(heard)  # reached, and sent nothing
