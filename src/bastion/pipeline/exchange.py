"""One request on its way through the pipeline: who sent it, what it is about, and what each
stage found (the policy decision, the outcome, findings for the audit record)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bastion._types import JSONObject
from bastion.auth.principal import Principal
from bastion.errors import ProtocolError
from bastion.policy.decision import Decision, Target
from bastion.session.peer import Call, RequestHandler

__all__ = ["Exchange"]


@dataclass(slots=True)
class Exchange:
    """The mutable record of one request. ``serve`` is the MCP layer the ``route`` stage
    hands the request to; ``target`` is the tool, resource or prompt named in the body;
    ``subscriptions`` the resources a ``subscriptions/listen`` asks to follow (when one of
    them is refused, it becomes the ``target``, so the audit record names it). ``malformed``
    is why the target could not be read from the params (a completion ref off the spec):
    the authorize stage raises it before asking the policy."""

    principal: Principal
    call: Call
    serve: RequestHandler
    target: Target | None = None
    subscriptions: tuple[Target, ...] = ()
    malformed: ProtocolError | None = None
    session: str | None = None
    client_capabilities: JSONObject = field(default_factory=dict)
    modern: bool = False
    decision: Decision | None = None
    outcome: str = "ok"
    detail: JSONObject = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def method(self) -> str:
        return self.call.method

    @property
    def arguments(self) -> JSONObject:
        """The ``arguments`` of a tool call or prompt get (empty when absent or not a map)."""
        args = self.call.params.get("arguments")
        return args if isinstance(args, dict) else {}
