"""The in-sandbox half of the egress path: a loopback TCP listener bridged to the proxy.

A sandbox with an egress allow-list still has no network of its own (a new network
namespace with only ``lo``). Its command is started through this small program, which
listens on ``127.0.0.1:PROXY_PORT`` inside the sandbox, forks a bridge that copies every
connection to the filtering proxy's unix socket, and execs the command (which sees
``HTTPS_PROXY`` pointing at the listener). The bridge dies with the sandbox.
"""

from __future__ import annotations

from typing import Final

from bastion.sandbox.backend import EGRESS_SOCKET, PROXY_PORT

__all__ = ["SANDBOX_PYTHON", "bridge_argv"]

SANDBOX_PYTHON: Final = "/usr/bin/python3"

_BRIDGE: Final = """
import os, socket, sys, threading
path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen(64)
if os.fork() == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    def copy(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    while True:
        conn, _ = lsock.accept()
        up = socket.socket(socket.AF_UNIX)
        try:
            up.connect(path)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=copy, args=(conn, up), daemon=True).start()
        threading.Thread(target=copy, args=(up, conn), daemon=True).start()
lsock.close()
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"{argv[0]}: {exc.strerror}\\n")
    sys.exit(127)
"""


def bridge_argv(command: list[str]) -> list[str]:
    """``command`` started behind the bridge (needs ``/usr/bin/python3`` in the sandbox)."""
    return [
        SANDBOX_PYTHON,
        "-I",
        "-S",
        "-c",
        _BRIDGE,
        EGRESS_SOCKET,
        str(PROXY_PORT),
        "--",
        *command,
    ]
