"""``bastion servers list``: each upstream of a running gateway.

A gateway without auth (the local user's, on loopback) lists its upstreams on ``/readyz``.
One that authenticates its callers says only whether it is ready there (IN-5): the list
comes from the admin API's ``/api/v1/upstreams``, with an admin key, which is also used
whenever one is given. The key is never a command-line argument, which every local user can
read in ``/proc/PID/cmdline`` (AU-5): it comes from ``--key-file PATH`` (``-``: standard
input; at most ``MAX_KEY_FILE_BYTES``, and a file that group or others may read is refused)
or else ``BASTION_ADMIN_KEY``. It is sent only over https, or plain http to a loopback host:
to any other ``--url`` the command refuses before connecting, rather than leak the key.

Over plain http to loopback, any local user could be the one listening (on a port the
gateway left, or before it starts), and would be sent the key: so, on Linux, as the hub
does (``bastion.hub.liveness``), every socket listening where the connection could land must
belong to our uid or to root (who may read our key anyway), or nothing is sent (exit
``EX_NOPERM``); and once connected, the socket at the other end must too, asked before the
request goes out (the port may change hands between the two).

Every field of the table is printed through ``shown`` (IN-5): an upstream writes its last
error, and no escape sequence or line break in it reaches the terminal as such.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit

import httpx
import msgspec

from bastion._net import is_loopback_host
from bastion._shown import shown

__all__ = [
    "KEY_ENV",
    "MAX_KEY_FILE_BYTES",
    "KeyRefused",
    "key_transport_refused",
    "listener_refused",
    "read_key",
    "run_servers_list",
]

KEY_ENV: Final = "BASTION_ADMIN_KEY"
MAX_KEY_FILE_BYTES: Final = 4096  # an API key is ~60 characters, a JWT a few hundred
TIMEOUT_S: Final = 5.0  # a gateway on loopback answers a status read at once
EX_USAGE: Final = 64
EX_NOINPUT: Final = 66
EX_UNAVAILABLE: Final = 69
EX_NOPERM: Final = 77
_SHARED_BITS: Final = stat.S_IRGRP | stat.S_IROTH  # a key file others may read is no secret


class _Connection(Protocol):
    """The TCP connection httpx's trace hook hands over once it is made."""

    def get_extra_info(self, info: str) -> Any: ...

    def close(self) -> None: ...


class _Failed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class KeyRefused(_Failed):
    """The admin key could not be read, or may not be sent where it would go."""


def read_key(path: str) -> str:
    """The admin key in the file ``path`` (``-``: standard input), surrounding whitespace
    removed.

    Raises:
        KeyRefused: it cannot be read, group or others may read it, it is over
            ``MAX_KEY_FILE_BYTES``, or it does not hold one key (empty, or several words).
    """
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_KEY_FILE_BYTES + 1)
        else:
            with open(path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if mode & _SHARED_BITS:
                    raise KeyRefused(
                        f"{path} may be read by group or others (mode "
                        f"{stat.S_IMODE(mode):04o}): chmod 600 {path}",
                        EX_NOPERM,
                    )
                data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyRefused(f"cannot read {name}: {exc.strerror}", EX_NOINPUT) from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyRefused(f"{name} is over {MAX_KEY_FILE_BYTES} bytes: not one key", EX_USAGE)
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        key = ""
    if not key or len(key.split()) != 1 or not key.isprintable():
        raise KeyRefused(f"{name} is empty or does not hold one key", EX_USAGE)
    return key


def key_transport_refused(url: str) -> str | None:
    """Why the admin key may not be sent to ``url``, or None: only https, or plain http to
    a loopback host (``localhost``, ``127.0.0.0/8``, ``::1``), keeps it from the network."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None
    if scheme != "http":
        return f"--url must be an http:// or https:// URL, not {url!r}"
    host = parts.hostname or ""
    if is_loopback_host(host):
        return None
    return (
        f"will not send the admin key over plain http to {host or url!r}, which is not "
        "loopback: anyone on the way could read it; use https:// (or run the command on "
        "the gateway's host, against http://127.0.0.1)"
    )


def listener_refused(host: str, port: int) -> str | None:
    """Why the admin key may not go to loopback ``host``:``port`` over plain http: a socket
    listening there (or on the wildcard) belongs to another user than us or root, or who
    listens cannot be known; None otherwise, and off Linux (no socket tables to read)."""
    if not sys.platform.startswith("linux"):
        return None
    from bastion.hub.liveness import listener_uids

    owners: set[int] = set()
    for each in ("127.0.0.1", "::1") if host == "localhost" else (host,):
        found = listener_uids(each, port)
        if found is None:
            return (
                "will not send the admin key: cannot read /proc/net/tcp to learn who listens"
                f" on {host} port {port}"
            )
        owners |= found
    strangers = sorted(owners - _trusted_uids())
    if not strangers:
        return None
    return (
        f"will not send the admin key to {host} port {port}: the socket listening there "
        f"belongs to {_user(strangers[0])}, neither you nor root, so it may not be your "
        "gateway; nothing was sent. Run the command as the gateway's user, or use https://"
    )


def _refuse_key_destination(base: str) -> None:
    """Raises ``KeyRefused`` unless the admin key may go to ``base``: https, or plain http
    to a loopback port that only we or root listen on (nothing is sent otherwise)."""
    if (reason := key_transport_refused(base)) is not None:
        raise KeyRefused(reason, EX_USAGE)
    parts = urlsplit(base)
    if parts.scheme.lower() != "http":
        return
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise KeyRefused(f"--url has no valid port: {base!r}", EX_USAGE) from exc
    if (refused := listener_refused(parts.hostname or "", port)) is not None:
        raise KeyRefused(refused, EX_NOPERM)


def run_servers_list(
    url: str, *, as_json: bool, key_file: str | None = None, environ: Mapping[str, str]
) -> int:
    base = url.rstrip("/")
    try:
        key = read_key(key_file) if key_file is not None else environ.get(KEY_ENV) or None
        if key is not None:
            _refuse_key_destination(base)
        ready, upstreams = _status(base, key)
    except httpx.InvalidURL as exc:  # the parser checked the URL; httpx is stricter still
        print(f"bastion: --url {url!r}: {exc}", file=sys.stderr)
        return EX_USAGE
    except _Failed as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return exc.code
    if as_json:
        print(msgspec.json.encode(upstreams).decode())
    else:
        print(f"{'SERVER':<20} {'STATE':<13} {'PID':>7} {'RESTARTS':>8}  LAST ERROR")
        for u in upstreams:
            print(_row(u))
    return 0 if ready else 1


def _row(upstream: dict[str, object]) -> str:
    """One upstream as a row of the table. Its text came from the gateway, and the last
    error from the upstream itself: each field goes through ``shown``, so none can drive
    the terminal or start a row of its own (IN-5)."""

    def field(key: str, missing: str = "-") -> str:
        value = upstream.get(key)
        return missing if value is None else shown(value)

    replica = upstream.get("replica") or 0
    name = field("server") + ("" if replica == 0 else f"#{shown(replica)}")
    return (
        f"{name:<20} {field('state'):<13} {field('pid'):>7} {field('restarts'):>8}  "
        f"{field('lastError', '')}"
    )


def _status(base: str, key: str | None) -> tuple[bool, list[dict[str, object]]]:
    # With a key to send over plain http (to loopback: key_transport_refused), each new
    # connection's peer is asked before anything is written on it, the probe's too.
    checked = key is not None and urlsplit(base).scheme.lower() == "http"
    report = _get_json(base, "/readyz", None, checked=checked)
    ready = bool(report.get("ready"))
    if key is None:
        if "upstreams" not in report:
            raise _Failed(
                f"{base} authenticates its callers: pass an admin API key in {KEY_ENV} "
                "or with --key-file PATH (- reads it from standard input)",
                EX_USAGE,
            )
        return ready, _upstreams(base, report["upstreams"])
    listed = _get_json(base, "/api/v1/upstreams", key, checked=checked)
    return ready, _upstreams(base, listed.get("upstreams", []))


def _upstreams(base: str, listed: object) -> list[dict[str, object]]:
    if not isinstance(listed, list) or not all(isinstance(u, dict) for u in listed):
        raise _Failed(f"{base} did not answer like a Bastion gateway", EX_UNAVAILABLE)
    return listed


def _get_json(
    base: str, path: str, key: str | None, *, checked: bool
) -> dict[str, list[dict[str, object]]]:
    """``base + path`` as JSON; when ``checked``, its connection's peer is asked first
    (httpx's trace hook runs once the TCP connection is up, before the request goes out)."""
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    extensions = {"trace": _refuse_a_strangers_socket} if checked else {}
    try:
        # Never followed: a redirect could take the key to another host, or to plain http.
        # Checked, it goes straight to loopback, never through a proxy named in the environment.
        with httpx.Client(
            timeout=TIMEOUT_S, follow_redirects=False, trust_env=not checked
        ) as client:
            response = client.get(base + path, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        raise _Failed(f"cannot reach {base}: {type(exc).__name__}", EX_UNAVAILABLE) from exc
    if response.status_code == 401:
        raise _Failed(f"{base} refused the key (401): is it a valid API key?", EX_NOPERM)
    if response.status_code == 403:
        raise _Failed(f"{base} refused the key (403): it needs the admin role", EX_NOPERM)
    if response.status_code == 429:
        raise _Failed(f"{base} is throttling this address (429): try again later", EX_NOPERM)
    try:
        report = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        report = None
    if not isinstance(report, dict):
        raise _Failed(f"{base} did not answer like a Bastion gateway", EX_UNAVAILABLE)
    return report


def _refuse_a_strangers_socket(event: str, info: Mapping[str, object]) -> None:
    """httpx's trace hook: once a TCP connection is made, and before anything is sent on
    it, the socket at its other end must be our uid's or root's; else it is closed."""
    if event != "connection.connect_tcp.complete":
        return
    from bastion.hub.liveness import peer_uid

    stream = cast("_Connection", info["return_value"])
    sock = stream.get_extra_info("socket")
    local, remote = sock.getsockname(), sock.getpeername()
    try:
        owner = peer_uid((local[0], local[1]), (remote[0], remote[1]))
    except ValueError:
        owner = None
    if owner is not None and owner in _trusted_uids():
        return
    stream.close()
    who = "an unknown user" if owner is None else _user(owner)
    raise KeyRefused(
        f"will not send the admin key: the connection to {remote[0]} port {remote[1]} "
        f"reached a socket of {who}, neither yours nor root's; nothing was sent",
        EX_NOPERM,
    )


def _trusted_uids() -> frozenset[int]:
    """Who may be sent our admin key: we, and root (who may read it anyway)."""
    return frozenset({os.getuid(), 0})


def _user(uid: int) -> str:
    import pwd  # POSIX only, as is every caller (the checks are Linux's)

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
