"""What a tool, resource or prompt implementation may do while it runs, in either era.

``ToolContext.ask`` is the one way to get input from the client (sampling, elicitation,
roots). On a 2025-11-25 connection it sends the requests to the client and waits; on
2026-07-28 it answers from the ``inputResponses`` the retried request carried (plus those
of earlier rounds, kept in the sealed ``requestState``) and otherwise raises
``InputRequired``, which the dispatcher turns into an input-required result. A handler
therefore re-runs from the top on each round and must ask the same questions in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import anyio

from bastion._types import JSONObject, JSONValue
from bastion.errors import BastionError, MissingCapability
from bastion.protocol.methods import INPUT_REQUEST_METHODS
from bastion.protocol.types import InputRequest, LoggingLevel
from bastion.protocol.versions import Era

__all__ = ["LOG_LEVELS", "InputRequired", "ToolContext"]

LOG_LEVELS: Final[dict[str, int]] = {
    name: rank
    for rank, name in enumerate(
        ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
    )
}

Notify = Callable[[str, JSONObject], Awaitable[None]]
Request = Callable[[str, JSONObject], Awaitable[JSONValue]]


class InputRequired(Exception):
    """Raised by ``ask`` on 2026-07-28 when the client must supply input first."""

    def __init__(self, requests: Mapping[str, InputRequest], answered: JSONObject) -> None:
        super().__init__("input required")
        self.requests = dict(requests)
        self.answered = answered


class ToolContext:
    def __init__(
        self,
        *,
        era: Era,
        client_capabilities: JSONObject,
        notify: Notify,
        request: Request | None = None,
        progress_token: int | str | None = None,
        log_level: str | None = None,
        input_responses: JSONObject | None = None,
        close_stream: Callable[[], None] | None = None,
        resumed_from_state: bool = False,
        caller: tuple[str, str] | None = None,
        meta: JSONObject | None = None,
        screen_input: Callable[[str], None] | None = None,
    ) -> None:
        self.era = era
        self.client_capabilities = client_capabilities
        self._notify = notify
        self._request = request
        self.progress_token = progress_token
        self.log_level = log_level
        self.input_responses: JSONObject = dict(input_responses or {})
        self._used: JSONObject = {}
        self._close_stream = close_stream
        # True when a 2026-07-28 retry carried a verified requestState from an earlier round.
        self.resumed_from_state = resumed_from_state
        # Who asks (``Principal.binding``), when the connection knows: what a call parked
        # across input rounds is bound to, so only its owner's retry resumes it.
        self.caller = caller
        # The request's ``_meta`` as it came (a server behind the gateway reads its keys).
        self.meta: JSONObject = meta if meta is not None else {}
        self._screen_input = screen_input

    def screen_input(self, method: str) -> None:
        """Raise (a BastionError: Denied) if the client may not be asked ``method`` for this
        request, as the gateway's policy decides; ``ask`` on 2025-11-25 is screened by the
        connection itself, this is for questions asked outside ``ask`` (parked calls)."""
        if self._screen_input is not None:
            self._screen_input(method)

    def close_stream(self) -> bool:
        """End the HTTP response stream now (the client resumes it); False if not streaming."""
        if self._close_stream is None:
            return False
        self._close_stream()
        return True

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report progress, if the client asked for it (it sent a progress token)."""
        if self.progress_token is None:
            return
        params: JSONObject = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._notify("notifications/progress", params)

    async def log(self, level: LoggingLevel, data: JSONValue, logger: str | None = None) -> None:
        """Send a log message, if the client's level lets it through."""
        if self.log_level is None or LOG_LEVELS[level] < LOG_LEVELS.get(self.log_level, 0):
            return
        params: JSONObject = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self._notify("notifications/message", params)

    def require_capability(self, method: str) -> None:
        """Raises MissingCapability when the client did not declare what ``method`` needs."""
        capability = INPUT_REQUEST_METHODS.get(method)
        if capability is not None and capability not in self.client_capabilities:
            raise MissingCapability(
                f"client lacks {capability}",
                data={"requiredCapabilities": {capability: {}}},
                message=f"Client does not support {capability}",
            )

    async def ask(self, requests: Mapping[str, InputRequest]) -> JSONObject:
        """Get the client's answers to ``requests`` (keyed by names we choose).

        Raises:
            MissingCapability: the client cannot answer one of the requests.
            InputRequired: (2026-07-28) the answers are not here yet.
            PeerError: (2025-11-25) the client answered with an error.
            BastionError: (2025-11-25) a request could not be sent (the gateway's content
                filter refuses one with Denied).
        """
        for req in requests.values():
            self.require_capability(req.method)
        if self.era is Era.MODERN:
            answered = {k: self.input_responses[k] for k in requests if k in self.input_responses}
            # Only answers to questions we asked are carried forward in requestState.
            self._used.update(answered)
            missing = {k: v for k, v in requests.items() if k not in answered}
            if missing:
                raise InputRequired(missing, dict(self._used))
            return answered
        assert self._request is not None
        answers: JSONObject = {}
        send = self._request

        async def one(key: str, req: InputRequest) -> None:
            params = req.params if isinstance(req.params, dict) else {}
            answers[key] = await send(req.method, params)

        try:
            async with anyio.create_task_group() as tg:
                for key, req in requests.items():
                    tg.start_soon(one, key, req)
        except ExceptionGroup as group:
            # The asker gets the refusal itself (the client's error, or the content filter's),
            # as it would from one request, not a group it cannot relay.
            refused = [e for e in group.exceptions if isinstance(e, BastionError)]
            if refused:
                raise refused[0] from None
            raise
        return answers
