"""One function per admin operation: decode the input, call a backend, shape the reply.

Handlers run only after the caller was authenticated and authorised and the route matched;
they get the bounded body already read. Each returns the reply and the audit target (a key
or approval id, the new policy version); a key's creation, rotation and revocation also
fill the audit record's detail (``Request.audit_detail``: the key's name, roles, expiry and
break-glass flag, never its secret). A key created or rotated by a break-glass key expires
when that key does, at the latest (``expiry_capped`` in the answer says the cap applied):
emergency access cannot be turned into permanent access. Input structs forbid unknown
fields and bound every size; their limits are the ones ``openapi.py`` documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Final, TypeVar
from urllib.parse import parse_qsl

import msgspec

from bastion._types import JSONObject
from bastion.admin._http import Reply, Request, json_reply
from bastion.admin.backends import (
    MAX_APPROVALS_LIMIT,
    MAX_AUDIT_LIMIT,
    MAX_CURSOR,
    AdminBackends,
    AuditFilters,
    KeyRecord,
)
from bastion.admin.errors import Conflict, InvalidInput, InvalidPolicy
from bastion.audit.admin_events import key_detail, revocation_detail, rotation_detail
from bastion.auth.roles import NAME_PATTERN

__all__ = [
    "DEFAULT_APPROVALS_LIMIT",
    "DEFAULT_AUDIT_LIMIT",
    "HANDLERS",
    "POLICY_TYPES",
    "Handler",
    "KeyCreate",
    "KeyRotate",
]

DEFAULT_AUDIT_LIMIT: Final = 100
DEFAULT_APPROVALS_LIMIT: Final = 100
_T = TypeVar("_T")
MAX_EXPIRES_IN: Final = 10 * 365 * 86400
MAX_OVERLAP: Final = 30 * 86400
YAML_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)
POLICY_TYPES: Final = YAML_TYPES | {"application/json"}

# What the key store takes (AU-5), so a schema-valid name is never refused after decoding.
KeyName = Annotated[str, msgspec.Meta(max_length=64, pattern=f"^{NAME_PATTERN}$")]
RoleName = Annotated[str, msgspec.Meta(max_length=64, pattern=f"^{NAME_PATTERN}$")]


class KeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: KeyName
    roles: Annotated[tuple[RoleName, ...], msgspec.Meta(max_length=32)] = ()
    expires_in: Annotated[int, msgspec.Meta(ge=60, le=MAX_EXPIRES_IN)] | None = None


class KeyRotate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    overlap: Annotated[int, msgspec.Meta(ge=0, le=MAX_OVERLAP)] = 0


Handler = Callable[[AdminBackends, Request], Awaitable[tuple[Reply, str | None]]]

_CREATE: Final = msgspec.json.Decoder(KeyCreate)
_ROTATE: Final = msgspec.json.Decoder(KeyRotate)
_JSON: Final = msgspec.json.Decoder()


def _decode_json(decoder: msgspec.json.Decoder[_T], request: Request) -> _T:
    if request.content_type != "application/json":
        raise _Unsupported
    try:
        return decoder.decode(request.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"invalid body: {exc}") from exc
    except RecursionError as exc:  # a free-form field nested past msgspec's ~1000 levels
        raise InvalidInput("invalid body: nested too deeply") from exc


class _Unsupported(InvalidInput):
    status = 415
    error = "unsupported_media_type"
    message = "unsupported media type"


async def list_keys(b: AdminBackends, _: Request) -> tuple[Reply, str | None]:
    return json_reply(200, {"keys": list(await b.keys.list())}), None


async def create_key(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    spec = _decode_json(_CREATE, request)
    cap = _break_glass_end(request)
    record, secret = await b.keys.create(spec.name, spec.roles, spec.expires_in, expires_by=cap)
    request.audit_detail.update(key_detail(record))
    # The one place a secret leaves Bastion: once, in the answer to its creation.
    return json_reply(201, _key_secret(record, secret, cap)), record.id


async def rotate_key(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    spec = _decode_json(_ROTATE, request) if request.body else KeyRotate()
    cap = _break_glass_end(request)
    record, secret = await b.keys.rotate(request.params["id"], spec.overlap, expires_by=cap)
    request.audit_detail.update(rotation_detail(record, request.params["id"], spec.overlap))
    return json_reply(200, _key_secret(record, secret, cap)), record.id


def _break_glass_end(request: Request) -> float | None:
    """When the caller's break-glass key ends, if it is one: what it makes ends then too."""
    principal = request.principal
    if principal.method != "break-glass":
        return None
    if principal.expires_at is None:  # the authenticator accepts none such; fail closed
        raise Conflict("a break-glass key without an expiry cannot make keys")
    return principal.expires_at


def _key_secret(record: KeyRecord, secret: str, cap: float | None) -> JSONObject:
    answer: JSONObject = {"key": msgspec.to_builtins(record), "secret": secret}
    if cap is not None and record.expires_at == cap:
        answer["expiry_capped"] = True  # at the caller's break-glass key's own expiry
    return answer


async def revoke_key(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    revoked = await b.keys.revoke(request.params["id"])
    request.audit_detail.update(revocation_detail(revoked))
    return Reply(204), request.params["id"]


async def get_policies(b: AdminBackends, _: Request) -> tuple[Reply, str | None]:
    doc = await b.policies.get()
    body: dict[str, object] = {"version": doc.version, "rules": doc.rules, "policy": doc.text}
    if doc.file is not None:  # the file on disk is not the policy in force
        body["file"] = doc.file
    return json_reply(200, body), None


async def set_policy(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    if request.content_type not in POLICY_TYPES:
        raise _Unsupported("send the policy as application/yaml or application/json")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPolicy(f"not UTF-8 text (invalid byte at offset {exc.start})") from exc
    if request.content_type == "application/json":
        try:
            _JSON.decode(request.body)  # JSON here must be JSON, not any YAML
        except msgspec.DecodeError as exc:
            raise InvalidPolicy(f"invalid JSON: {exc}") from exc
        except RecursionError as exc:  # msgspec stops at ~1000 levels (IN-2)
            raise InvalidPolicy("invalid JSON: nested too deeply") from exc
    # One loader for both syntaxes (JSON is YAML): it refuses duplicate keys, which a plain
    # JSON decoder would resolve silently, and the file then holds exactly what was checked.
    doc = await b.policies.put(text)
    return json_reply(200, {"version": doc.version, "rules": doc.rules}), doc.version


async def list_approvals(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    query = _query(request.query, _APPROVALS_PARAMS)
    limit = _int(query, "limit", DEFAULT_APPROVALS_LIMIT, 1, MAX_APPROVALS_LIMIT)
    cursor = query.get("cursor")
    if cursor is not None and not (0 < len(cursor) <= MAX_CURSOR):
        raise InvalidInput(f"cursor must be 1 to {MAX_CURSOR} characters, as listed")
    page = await b.approvals.pending(limit, cursor)
    body: dict[str, object] = {"approvals": list(page.approvals)}
    if page.next_cursor is not None:
        body["next_cursor"] = page.next_cursor
    return json_reply(200, body), None


async def approve(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    record = await b.approvals.approve(request.params["id"], request.principal.id)
    return json_reply(200, {"approval": record}), record.id


async def reject(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    record = await b.approvals.reject(request.params["id"], request.principal.id)
    return json_reply(200, {"approval": record}), record.id


async def query_audit(b: AdminBackends, request: Request) -> tuple[Reply, str | None]:
    filters, limit = _audit_query(request.query)
    # AD-1: what an auditor looked for is part of the record of the read.
    asked = {"principal": filters.principal, "method": filters.method}
    request.audit_detail.update(
        sinceSeq=filters.since_seq,
        limit=limit,
        **{name: value for name, value in asked.items() if value is not None},
    )
    page = await b.audit.query(filters, limit)
    return json_reply(200, page), None


async def verify_audit(b: AdminBackends, _: Request) -> tuple[Reply, str | None]:
    report = await b.audit.verify()
    body = msgspec.to_builtins(report)
    body["ok"] = report.ok
    return json_reply(200, body), "audit"


async def list_upstreams(b: AdminBackends, _: Request) -> tuple[Reply, str | None]:
    return json_reply(200, {"upstreams": b.upstreams.status()}), None


_AUDIT_PARAMS: Final = frozenset({"since_seq", "limit", "principal", "method"})
_APPROVALS_PARAMS: Final = frozenset({"limit", "cursor"})
_MAX_SEQ: Final = 2**63 - 1


def _query(raw: bytes, known: frozenset[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("invalid query string") from exc
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            raise InvalidInput(f"unknown query parameter {name[:64]!r}")
        if name in query:
            raise InvalidInput(f"{name} given twice")
        query[name] = value
    return query


def _audit_query(raw: bytes) -> tuple[AuditFilters, int]:
    query = _query(raw, _AUDIT_PARAMS)
    since = _int(query, "since_seq", 0, 0, _MAX_SEQ)
    limit = _int(query, "limit", DEFAULT_AUDIT_LIMIT, 1, MAX_AUDIT_LIMIT)
    for name in ("principal", "method"):
        if len(query.get(name, "")) > 512:
            raise InvalidInput(f"{name} is longer than 512 characters")
    filters = AuditFilters(
        since_seq=since, principal=query.get("principal"), method=query.get("method")
    )
    return filters, limit


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not (
        low <= int(text) <= high
    ):
        raise InvalidInput(f"{name} must be an integer from {low} to {high}")
    return int(text)


HANDLERS: Final[dict[str, Handler]] = {
    "listKeys": list_keys,
    "createKey": create_key,
    "rotateKey": rotate_key,
    "revokeKey": revoke_key,
    "getPolicies": get_policies,
    "setPolicy": set_policy,
    "listApprovals": list_approvals,
    "approve": approve,
    "reject": reject,
    "queryAudit": query_audit,
    "verifyAudit": verify_audit,
    "listUpstreams": list_upstreams,
}
