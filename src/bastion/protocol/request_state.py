"""Sealing of 2026-07-28 ``requestState``: the state a server hands to the client and
gets back on retry. It travels through the client, so it is authenticated (HMAC-SHA256),
bound to the request it belongs to (the caller's binding: method, target name, principal and
credential) and expires. It is not encrypted: its holder can read the data (the answers the
client itself gave in earlier rounds), so nothing secret may be sealed in it.

Token format: ``base64url(json payload) "." base64url(mac)``; the payload holds ``e``
(expiry, seconds on the injected wall clock) and ``d`` (the data). The binding is not in the
payload: the MAC covers it as associated data, so a token carries no caller identity and
verifies only for the binding it was sealed with. Keys rotate: the first key signs, every
key verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from typing import Final

import msgspec

from bastion._types import Clock, JSONValue
from bastion.errors import InvalidParams

__all__ = ["DEFAULT_STATE_TTL", "MAX_STATE_CHARS", "RequestStateSealer"]

DEFAULT_STATE_TTL: Final = 600.0  # seconds; an input round trip involves a human
MAX_STATE_CHARS: Final = 64 * 1024  # the state is small; refuse anything that is not
MIN_KEY_BYTES: Final = 32
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_DIGEST: Final = b"bastion:digest"  # BLAKE2b personalisation: digests are no MACs of tokens


class _Payload(msgspec.Struct, frozen=True):
    e: float
    d: JSONValue


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: bytes, binding: str) -> str:
    # The body is base64url (never a NUL), so "body NUL binding" has exactly one split.
    message = body + b"\x00" + binding.encode("utf-8", "surrogatepass")
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


class RequestStateSealer:
    def __init__(
        self, keys: Sequence[bytes], *, ttl: float = DEFAULT_STATE_TTL, clock: Clock = time.time
    ) -> None:
        if not keys or any(len(k) < MIN_KEY_BYTES for k in keys):
            raise ValueError("request-state keys must be at least 32 bytes")
        self._keys = tuple(keys)
        self._ttl = ttl
        self._clock = clock

    def seal(self, data: JSONValue, *, binding: str) -> str:
        body = _b64(msgspec.json.encode(_Payload(e=self._clock() + self._ttl, d=data)))
        return f"{body}.{_mac(self._keys[0], body.encode('ascii'), binding)}"

    def digest(self, text: str) -> str:
        """A keyed digest of ``text`` (BLAKE2b under the signing key), for sealed data that
        must name something without showing it, since a token's payload is readable."""
        key = self._keys[0][:64]  # BLAKE2b's longest key
        mac = hashlib.blake2b(
            text.encode("utf-8", "surrogatepass"), key=key, digest_size=16, person=_DIGEST
        )
        return _b64(mac.digest())

    def unseal(self, token: str, *, binding: str) -> JSONValue:
        """The data sealed in ``token``.

        Raises:
            InvalidParams: the token is malformed, forged, expired or for another request
                (another method, target or caller: the MAC does not verify).
        """
        if len(token) > MAX_STATE_CHARS or token.count(".") != 1:
            raise InvalidParams("malformed requestState", message="Invalid requestState")
        body, _, mac_text = token.partition(".")
        if _BASE64URL.fullmatch(body) is None:  # so the MAC input splits one way only
            raise InvalidParams("malformed requestState", message="Invalid requestState")
        body_bytes = body.encode("ascii")
        # Compare the canonical text of the expected MAC, so a token has exactly one valid
        # spelling (lenient base64 would accept padding, junk and changed spare bits).
        if not any(
            hmac.compare_digest(
                _mac(k, body_bytes, binding).encode(), mac_text.encode("ascii", "replace")
            )
            for k in self._keys
        ):
            raise InvalidParams(
                "requestState MAC mismatch (forged, or for another request)",
                message="Invalid requestState",
            )
        payload = msgspec.json.decode(_unb64(body), type=_Payload)
        if payload.e < self._clock():
            raise InvalidParams("requestState expired", message="Invalid requestState")
        return payload.d
