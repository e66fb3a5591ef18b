"""The request's own channel to its client, filtered (TC-4, IN-5, UP-4).

While a request runs, the MCP layer may talk to the client on its behalf, relaying what an
upstream sends: sampling and elicitation requests (sent as such in a 2025-11-25 session),
log lines and progress messages (either era). ``RelayedCall`` stands in for the request's ``Call``
and cleans each of those on the way out (``guard.relays``); what it finds is handed to
``record`` for the request's audit record. A blocked input request is refused with
``Denied`` ("Content blocked"), which the upstream that asked gets as its error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bastion._types import JSONObject, JSONValue
from bastion.errors import Denied
from bastion.guard.findings import Finding
from bastion.guard.relays import (
    INPUT_REQUEST_METHODS,
    clean_input_request,
    clean_log,
    clean_progress,
)
from bastion.guard.sanitise import Sanitiser
from bastion.pipeline.wrapped_call import WrappedCall
from bastion.session.peer import Call

__all__ = ["CONTENT_BLOCKED", "RelayedCall"]

CONTENT_BLOCKED = "Content blocked"


class RelayedCall(WrappedCall):
    __slots__ = ("_record", "_sanitiser")

    def __init__(
        self, inner: Call, sanitiser: Sanitiser, record: Callable[[Iterable[Finding]], None]
    ) -> None:
        super().__init__(inner)
        self._sanitiser = sanitiser
        self._record = record

    async def notify(self, method: str, params: JSONObject | None = None) -> None:
        if params is not None and method == "notifications/message":
            params, found = clean_log(params, self._sanitiser)
            self._record(found)
        elif params is not None and method == "notifications/progress":
            params, found = clean_progress(params, self._sanitiser)
            self._record(found)
        await self._inner.notify(method, params)

    async def request(
        self, method: str, params: JSONObject | None = None, *, timeout: float | None = None
    ) -> JSONValue:
        if params is not None and method in INPUT_REQUEST_METHODS:
            cleaned = clean_input_request(method, params, self._sanitiser)
            self._record(cleaned.findings)
            if cleaned.blocked or not isinstance(cleaned.value, dict):
                raise Denied(f"{method} blocked by the content filter", message=CONTENT_BLOCKED)
            params = cleaned.value
        return await self._inner.request(method, params, timeout=timeout)
