"""HTTP plumbing of the admin API: the request a handler sees, its reply, the bounded body
reader and the JSON error shape (``{"error": code, "message": text}``, client-safe text).

Refusals of credentials (401/403) carry no body at all (AU-2), only ``WWW-Authenticate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from bastion._types import JSONObject
from bastion.transport._http_asgi import Headers, Receive, Send

if TYPE_CHECKING:
    from bastion.auth.principal import Principal

__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_BODY",
    "TOO_LARGE",
    "BodyRefused",
    "Reply",
    "Request",
    "declared_too_large",
    "error_reply",
    "json_reply",
    "read_body",
    "send_reply",
]

MAX_BODY: Final = 1024 * 1024  # a policy file is the largest thing anyone sends here
BODY_TIMEOUT_S: Final = 30.0  # seconds to receive a whole body (slowloris, DS-2)

_ENCODER: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: Headers
    principal: Principal
    params: dict[str, str]
    body: bytes = b""
    audit_detail: JSONObject = field(default_factory=dict)
    """What the audit record of this action says beside its target; the handler fills it
    (never with a secret)."""

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())
    content_type: str | None = None


def json_reply(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, _ENCODER.encode(value), headers, "application/json")


def error_reply(
    status: int, error: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return json_reply(status, {"error": error, "message": message}, headers)


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(b"cache-control", b"no-store")]
    if reply.content_type is not None:
        headers.append((b"content-type", reply.content_type.encode()))
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


class BodyRefused(Exception):
    """The body was too large (413), too slow (408) or the client left (no reply)."""

    def __init__(self, reply: Reply | None) -> None:
        super().__init__("body refused")
        self.reply = reply


TOO_LARGE: Final = error_reply(413, "too_large", "request body too large")


def declared_too_large(headers: Headers, limit: int = MAX_BODY) -> bool:
    """A ``Content-Length`` over the cap (or not a number): refused before anything else."""
    declared = headers.get("content-length")
    if declared is None:
        return False
    return not (declared.isascii() and declared.isdigit()) or int(declared) > limit


async def read_body(
    receive: Receive, limit: int = MAX_BODY, timeout: float = BODY_TIMEOUT_S
) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds.

    Raises:
        BodyRefused: too large, too slow, or the client disconnected.
    """
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(timeout) as deadline:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyRefused(None)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyRefused(TOO_LARGE)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    assert deadline.cancelled_caught
    raise BodyRefused(error_reply(408, "timeout", "request body not received in time"))
