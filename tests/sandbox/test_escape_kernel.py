"""Escape suite, network and kernel: host services, egress, ptrace, mount, namespaces and
the rest of the seccomp deny-list, against ``bastion sandbox exec``.

The host listeners are real sockets this test opens; each test also checks from the host
side that nothing reached them. SECURITY.md: UP-3 (no SSRF to loopback/private ranges),
UP-5 (sandboxed commands), MCP05 (command injection contained).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.conftest import make_workspace, sandbox_python


class Listener:
    """A host listener that records whether anyone connected."""

    def __init__(self, family: int, address: str | tuple[str, int]) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def tcp_listener() -> Iterator[Listener]:
    listener = Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield listener
    listener.close()


@pytest.fixture
def unix_listeners() -> Iterator[tuple[Path, str, Listener, Listener]]:
    directory = make_workspace("bastion-sock-")
    path = directory / "host.sock"
    abstract = f"\0bastion-test-{os.getpid()}"
    on_path = Listener(socket.AF_UNIX, str(path))
    path.chmod(0o777)
    on_abstract = Listener(socket.AF_UNIX, abstract)
    yield path, abstract[1:], on_path, on_abstract
    on_path.close()
    on_abstract.close()
    path.unlink()
    directory.rmdir()


def test_host_loopback_services_are_unreachable(workspace: Path, tcp_listener: Listener) -> None:
    port = tcp_listener.sock.getsockname()[1]
    result = sandbox_python(
        workspace,
        f"""
import json, socket
out = {{}}
for host in ("127.0.0.1", "localhost", "::1"):
    try:
        socket.create_connection((host, {port}), timeout=2).close()
        out[host] = "connected"
    except OSError as exc:
        out[host] = exc.strerror or str(exc)
print(json.dumps(out))
""",
    )
    assert "connected" not in result.values(), result
    assert tcp_listener.accepted == 0


def test_host_unix_sockets_are_unreachable(
    workspace: Path, unix_listeners: tuple[Path, str, Listener, Listener]
) -> None:
    path, abstract, on_path, on_abstract = unix_listeners
    result = sandbox_python(
        workspace,
        f"""
import json, socket
out = {{}}
for name, address in (("path", {str(path)!r}), ("abstract", "\\0" + {abstract!r}),
                      ("docker", "/var/run/docker.sock"), ("dbus", "/run/dbus/system_bus_socket")):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(address)
        out[name] = "connected"
    except OSError as exc:
        out[name] = exc.strerror
print(json.dumps(out))
""",
    )
    assert "connected" not in result.values(), result
    assert on_path.accepted == 0 and on_abstract.accepted == 0


def test_no_dns_and_no_route_out(workspace: Path) -> None:
    result = sandbox_python(
        workspace,
        """
import json, socket
out = {}
try:
    out["dns"] = socket.getaddrinfo("pypi.org", 443)[0][4][0]
except OSError as exc:
    out["dns"] = "failed"
for name, address in (("pypi-ip", ("151.101.0.223", 443)), ("dns-server", ("1.1.1.1", 53)),
                      ("metadata", ("169.254.169.254", 80))):
    try:
        socket.create_connection(address, timeout=2).close()
        out[name] = "connected"
    except OSError as exc:
        out[name] = exc.strerror or "failed"
ifaces = sorted(name for _, name in socket.if_nameindex())
out["interfaces"] = ifaces
print(json.dumps(out))
""",
    )
    assert result["dns"] == "failed"
    assert result["interfaces"] == ["lo"]
    for name in ("pypi-ip", "dns-server", "metadata"):
        assert result[name] == "Network is unreachable", result


_SYSCALLS = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else os.strerror(ctypes.get_errno())
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x20000, 0x40000000, 17
"""


def test_ptrace_and_cross_process_memory_are_denied(workspace: Path) -> None:
    result = sandbox_python(
        workspace,
        _SYSCALLS
        + """
child = os.fork()
if child == 0:
    import time; time.sleep(5); os._exit(0)
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
out = {
    "attach-pid1": call(101, 16, 1, 0, 0),       # PTRACE_ATTACH bwrap's pid 1
    "attach-child": call(101, 16, child, 0, 0),  # even our own child
    "seize-child": call(101, 0x4206, child, 0, 0),
    "vm_readv": call(310, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0),
    "vm_writev": call(311, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0),
}
os.kill(child, 9)
print(json.dumps(out))
""",
    )
    assert set(result.values()) == {"Operation not permitted"}, result


def test_mount_and_nested_namespaces_are_denied(workspace: Path) -> None:
    result = sandbox_python(
        workspace,
        _SYSCALLS
        + """
import subprocess
out = {
    "mount": call(165, id(b"none"), id(b"/tmp"), id(b"tmpfs"), 0, 0),
    "umount2": call(166, id(b"/proc"), 0),
    "pivot_root": call(155, 0, 0),
    "fsopen": call(430, 0, 0),
    "open_tree": call(428, -100, 0, 0),
    "unshare-user": call(272, CLONE_NEWUSER),
    "unshare-mnt": call(272, CLONE_NEWNS),
    "setns": call(308, 0, 0),
    "clone-newnet": call(56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
    "clone-newuser": call(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "unshare-cmd": subprocess.run(["unshare", "-r", "id"], capture_output=True).returncode,
    "mount-cmd": subprocess.run(["mount", "-t", "tmpfs", "x", "/tmp"]).returncode,
}
print(json.dumps(out))
""",
    )
    assert result.pop("clone3") == "Function not implemented"  # libc falls back to clone
    assert result.pop("unshare-cmd") != 0 and result.pop("mount-cmd") != 0
    assert set(result.values()) == {"Operation not permitted"}, result


def test_the_rest_of_the_deny_list(workspace: Path) -> None:
    result = sandbox_python(
        workspace,
        _SYSCALLS
        + """
import fcntl, termios
out = {
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, 0, 0, -1, -1, 0),
    "userfaultfd": call(323, 0),
    "io_uring_setup": call(425, 1, 0),
    "keyctl": call(250, 0, 0),
    "add_key": call(248, 0, 0, 0, 0, 0),
    "kexec_load": call(246, 0, 0, 0, 0),
    "init_module": call(175, 0, 0, 0),
    "x32-getpid": call(0x40000000 + 39),
    # stdin is /dev/null: without the filter this is ENOTTY, with it EPERM.
    "tiocsti": call(16, 0, termios.TIOCSTI, id(b"x")),
    "tiocsti-high-bits": call(16, 0, (1 << 32) | termios.TIOCSTI, id(b"x")),
}
out["getpid"] = call(39)  # a control: ordinary syscalls still work
print(json.dumps(out))
""",
    )
    assert result.pop("getpid") == "ok"
    assert set(result.values()) == {"Operation not permitted"}, result
