"""Who listens on an instance's port (Linux's /proc/net/tcp tables): the hub reaches only
a listener of our own uid, never one another local user bound after the instance stopped."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import pytest

from bastion.hub import InstanceRecord
from bastion.hub.liveness import listener_is_ours, listener_uids

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the listener check reads Linux's /proc/net"
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
