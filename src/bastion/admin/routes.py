"""The admin API's route table and router; ``openapi.py`` documents exactly these routes.

Each route names its operation (the handler and the OpenAPI ``operationId``), who may call
it (``admin``; ``audit``: admin or auditor; ``public``: anyone, only the OpenAPI document)
and the audit action it is reported as (every route but the public one; ``READ_ACTIONS``
are the reads, which the gateway records in bounded numbers, AD-1).
Access is looked up by exact (method, path) before routing (AZ-6): anything that is not an
exact audit-read or public route, including unknown paths and methods, needs ``admin``.
Path parameters are one segment, matched on the raw path, so a dot-segment never reaches a
backend: a key id or name is ``[A-Za-z0-9_.:-]`` as sent. An approval id is
percent-decoded: a held definition's id is ``<kind>:<server>:<sha256>``, but a tool's id as
listed before, ``pin:<server>:<tool>:<sha256>``, carries a tool name, which may contain ``/``
(MCP's SEP-986) or worse, so the client percent-encodes the id; the decoded id must be UTF-8
without control characters, at most 300 characters, and is only ever compared with the ids
the backend holds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote

__all__ = ["OPENAPI_PATH", "PREFIX", "READ_ACTIONS", "ROUTES", "Access", "Route", "Router"]

PREFIX: Final = "/api/v1"
OPENAPI_PATH: Final = f"{PREFIX}/openapi.json"
MAX_PARAM: Final = 300  # characters in a path parameter (decoded, for an approval id)
_PARAM: Final = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_PARAM}}}")
# RFC 3986 pchar: unreserved, sub-delims, ":", "@", or percent-encoded; at most what
# MAX_PARAM characters can take encoded (4 UTF-8 bytes each, 3 characters per byte).
_ENCODED_PARAM: Final = re.compile(
    rf"(?:[A-Za-z0-9_.~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{{2}}){{1,{MAX_PARAM * 12}}}"
)

Access = Literal["admin", "audit", "public"]
BodyKind = Literal["none", "json", "optional-json", "policy"]
ParamKind = Literal["plain", "encoded"]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    operation: str
    access: Access = "admin"
    action: str | None = None
    body: BodyKind = "none"
    param: ParamKind = "plain"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:])


ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", OPENAPI_PATH, "openapi", access="public"),
    Route("GET", f"{PREFIX}/keys", "listKeys", action="keys.list"),
    Route("POST", f"{PREFIX}/keys", "createKey", action="keys.create", body="json"),
    Route(
        "POST",
        f"{PREFIX}/keys/{{id}}/rotate",
        "rotateKey",
        action="keys.rotate",
        body="optional-json",
    ),
    Route("DELETE", f"{PREFIX}/keys/{{id}}", "revokeKey", action="keys.revoke"),
    Route("GET", f"{PREFIX}/policies", "getPolicies", action="policies.get"),
    Route("PUT", f"{PREFIX}/policies", "setPolicy", action="policies.set", body="policy"),
    Route("GET", f"{PREFIX}/approvals", "listApprovals", action="approvals.list"),
    Route(
        "POST",
        f"{PREFIX}/approvals/{{id}}/approve",
        "approve",
        action="approvals.approve",
        param="encoded",
    ),
    Route(
        "POST",
        f"{PREFIX}/approvals/{{id}}/reject",
        "reject",
        action="approvals.reject",
        param="encoded",
    ),
    Route("GET", f"{PREFIX}/audit", "queryAudit", access="audit", action="audit.query"),
    Route("POST", f"{PREFIX}/audit/verify", "verifyAudit", access="audit", action="audit.verify"),
    Route("GET", f"{PREFIX}/upstreams", "listUpstreams", action="upstreams.list"),
)

READ_ACTIONS: Final = frozenset(r.action for r in ROUTES if r.method == "GET" and r.action)


class Router:
    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = routes
        self._exact_access = {(r.method, r.path): r.access for r in routes if "{" not in r.path}

    def access(self, method: str, path: str) -> Access:
        """Who may call (method, path); ``admin`` for anything not listed exactly."""
        return self._exact_access.get((method, path), "admin")

    def match(self, path: str) -> tuple[list[Route], dict[str, str]]:
        """The routes at ``path`` (any method) and its parameters; ([], {}) when none."""
        segments = path.split("/")[1:]
        found: list[Route] = []
        params: dict[str, str] = {}
        for route in self.routes:
            got = _match(route.segments, segments, route.param)
            if got is not None:
                found.append(route)
                params = got
        return found, params


def _match(
    template: tuple[str, ...], segments: list[str], kind: ParamKind
) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{"):
            value = _param(got, kind)
            if value is None:
                return None
            params[want[1:-1]] = value
        elif want != got:
            return None
    return params


def _param(raw: str, kind: ParamKind) -> str | None:
    """The parameter a raw path segment carries, or None when it is not an acceptable one."""
    if raw in {".", ".."}:
        return None
    if kind == "plain":
        return raw if _PARAM.fullmatch(raw) else None
    if _ENCODED_PARAM.fullmatch(raw) is None:
        return None
    try:
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if len(value) > MAX_PARAM or value in {".", ".."} or _has_control(value):
        return None
    return value


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)
