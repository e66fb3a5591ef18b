"""``WrappedCall``: a stand-in for a request's ``Call`` that passes everything on to it.

The pipeline's stages wrap the request's channel to its client (``PolicedCall``,
``ShownCall``, ``RelayedCall``), each to change one thing. Each subclass overrides only that
thing; the rest (notifications, requests, the upstream-request screen, what the caller may
be shown) reaches the inner call unchanged, whatever order the stages wrap in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from bastion._types import JSONObject, JSONValue
from bastion.session.peer import Call

__all__ = ["WrappedCall"]


class WrappedCall(Call):
    __slots__ = ("_inner",)

    def __init__(self, inner: Call) -> None:
        # Call.__init__ is not run on purpose: everything goes out through ``inner``, which
        # owns the peer.
        self._inner = inner
        self.message = inner.message
        self.close_stream = inner.close_stream

    async def notify(self, method: str, params: JSONObject | None = None) -> None:
        await self._inner.notify(method, params)

    async def request(
        self, method: str, params: JSONObject | None = None, *, timeout: float | None = None
    ) -> JSONValue:
        return await self._inner.request(method, params, timeout=timeout)

    def screen_input(self, method: str) -> None:
        self._inner.screen_input(method)

    def shown(self, kind: Literal["tool", "prompt", "resource"]) -> Callable[[str], bool] | None:
        return self._inner.shown(kind)
