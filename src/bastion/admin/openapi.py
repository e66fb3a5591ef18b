"""The admin API's OpenAPI 3.1 document, written as data and served at ``/api/v1/openapi.json``.

It describes exactly the routes of ``routes.ROUTES`` (a test holds the two in step) with the
limits the handlers enforce. Every operation but this document's own needs a bearer
credential or a TLS client certificate (mTLS); 401 and 403 answers have no body (AU-2).
413 is possible on every operation: the body cap is checked from ``Content-Length`` before
anything else (DS-1). Over 400 lines on purpose: it is one document of data, and split
across files it would be harder to review.
"""

from __future__ import annotations

from typing import Final, get_args

import msgspec

from bastion._types import JSONObject
from bastion.admin._http import MAX_BODY
from bastion.admin.backends import MAX_AUDIT_LIMIT
from bastion.admin.handlers import DEFAULT_AUDIT_LIMIT, MAX_EXPIRES_IN, MAX_OVERLAP, YAML_TYPES
from bastion.admin.routes import MAX_PARAM, PREFIX
from bastion.audit.verify import ProblemKind

__all__ = ["OPENAPI", "openapi_bytes"]


def _ref(name: str) -> JSONObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: JSONObject, description: str) -> JSONObject:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> JSONObject:
    return _json(_ref("Error"), description)


_REFUSALS: Final[JSONObject] = {
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "429": {"$ref": "#/components/responses/Throttled"},
}
_BODY_ERRORS: Final[JSONObject] = {
    "400": _error("The body is not valid for this operation (the message says why)."),
    "408": _error("The body was not received in time."),
    "415": _error("Unsupported Content-Type."),
}
_ID: Final[JSONObject] = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "pattern": f"^[A-Za-z0-9_.:-]{{1,{MAX_PARAM}}}$",
        "not": {"enum": [".", ".."]},
    },
}
_APPROVAL_ID: Final[JSONObject] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The approval's id as listed, percent-encoded (a held tool definition's id "
    "carries the tool's name, which may contain '/'; a held prompt's, resource's or "
    "template's is '<kind>:<server>:<sha256>').",
    "schema": {
        "type": "string",
        "pattern": f"^[^\\x00-\\x1f\\x7f-\\x9f]{{1,{MAX_PARAM}}}$",
        "not": {"enum": [".", ".."]},
    },
}
_NAME_SCHEMA: Final[JSONObject] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[A-Za-z0-9_.@ -]+$",
}
_ROLE_SCHEMA: Final[JSONObject] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[A-Za-z0-9_.:-]+$",
}


def _op(
    operation_id: str,
    summary: str,
    responses: JSONObject,
    *,
    tag: str,
    parameters: list[JSONObject] | None = None,
    body: JSONObject | None = None,
    security: list[JSONObject] | None = None,
) -> JSONObject:
    op: JSONObject = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": {**responses, **(_REFUSALS if security is None else {})},
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
        op["responses"].update(_BODY_ERRORS)
    if security is not None:
        op["security"] = security
    return op


_SCHEMAS: Final[JSONObject] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        "additionalProperties": False,
    },
    "Key": {
        "type": "object",
        "description": "An API key; never its secret, only the non-secret lookup prefix.",
        "required": [
            "id",
            "name",
            "prefix",
            "roles",
            "created_at",
            "expires_at",
            "revoked",
            "break_glass",
        ],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "number"},
            "expires_at": {"type": ["number", "null"]},
            "revoked": {"type": "boolean"},
            "break_glass": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "KeyCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _NAME_SCHEMA,
            "roles": {"type": "array", "items": _ROLE_SCHEMA, "maxItems": 32},
            "expires_in": {
                "type": ["integer", "null"],
                "minimum": 60,
                "maximum": MAX_EXPIRES_IN,
                "description": "Seconds until the key expires; null or absent: never.",
            },
        },
        "additionalProperties": False,
    },
    "KeyRotate": {
        "type": "object",
        "properties": {
            "overlap": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_OVERLAP,
                "default": 0,
                "description": "Seconds the old key stays valid beside the new one.",
            }
        },
        "additionalProperties": False,
    },
    "KeySecret": {
        "type": "object",
        "description": "The key and its secret: shown once, here, and never again.",
        "required": ["key", "secret"],
        "properties": {"key": _ref("Key"), "secret": {"type": "string"}},
        "additionalProperties": False,
    },
    "Approval": {
        "type": "object",
        "description": "A call waiting for a human (kind 'call'), or an upstream's definition "
        "held by the guard: its principal is 'upstream:<server>' and 'tool' its name (a "
        "resource's URI, a template's URI template). Approving a definition approves that "
        "exact one (its hash): if the upstream changes it, it is screened, and held, again.",
        "required": [
            "id",
            "principal",
            "tool",
            "requested_at",
            "status",
            "decided_by",
            "kind",
            "server",
            "hash",
            "findings",
            "definition",
        ],
        "properties": {
            "id": {"type": "string"},
            "principal": {"type": "string"},
            "tool": {"type": "string"},
            "requested_at": {"type": "number"},
            "status": {"enum": ["pending", "approved", "rejected"]},
            "decided_by": {"type": ["string", "null"]},
            "kind": {"enum": ["call", "tool", "prompt", "resource", "resource-template"]},
            "server": {"type": ["string", "null"]},
            "hash": {
                "type": ["string", "null"],
                "description": "SHA-256 (hex) of the held definition.",
            },
            "findings": {
                "type": "array",
                "description": "Why the definition was held (none for a call).",
                "items": {
                    "type": "object",
                    "required": ["kind", "path", "excerpt"],
                    "properties": {
                        "kind": {"type": "string"},
                        "path": {"type": "string"},
                        "excerpt": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
            "definition": {
                "type": ["object", "null"],
                "description": "The held definition as the upstream offered it.",
            },
        },
        "additionalProperties": False,
    },
    "AuditEntry": {
        "type": "object",
        "required": ["seq", "hash", "record"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "hash": {"type": "string"},
            "record": {"type": "object", "description": "The audit record as stored."},
        },
        "additionalProperties": False,
    },
    "Problem": {
        "type": "object",
        "required": ["seq", "kind", "message"],
        "properties": {
            "seq": {"type": ["integer", "null"]},
            "kind": {"enum": list(get_args(ProblemKind))},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    },
}

_PAGE: Final[JSONObject] = {
    "type": "object",
    "required": ["records", "next_since_seq"],
    "properties": {
        "records": {"type": "array", "items": _ref("AuditEntry"), "maxItems": MAX_AUDIT_LIMIT},
        "next_since_seq": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
_REPORT: Final[JSONObject] = {
    "type": "object",
    "required": [
        "ok",
        "records",
        "last_seq",
        "checkpoints",
        "last_checkpoint_seq",
        "problems",
        "more_problems",
        "unchained_checkpoints",
    ],
    "properties": {
        "ok": {"type": "boolean"},
        "records": {"type": "integer", "minimum": 0},
        "last_seq": {"type": "integer", "minimum": 0},
        "checkpoints": {"type": "integer", "minimum": 0},
        "last_checkpoint_seq": {"type": "integer", "minimum": 0},
        "problems": {"type": "array", "items": _ref("Problem")},
        "more_problems": {"type": "boolean"},
        "unchained_checkpoints": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
_POLICY_TEXT: Final[JSONObject] = {"type": "string", "maxLength": MAX_BODY}
_POLICY_BODY: Final[JSONObject] = {
    "required": True,
    "description": "The whole policy document, YAML or JSON, replacing the current one.",
    "content": {
        **{t: {"schema": _POLICY_TEXT} for t in sorted(YAML_TYPES)},
        "application/json": {"schema": {"type": "object"}},
    },
}
_APPROVAL_RESULT: Final[JSONObject] = {
    "type": "object",
    "required": ["approval"],
    "properties": {"approval": _ref("Approval")},
    "additionalProperties": False,
}
_ID_RESPONSES: Final[JSONObject] = {"404": _error("No such object.")}
_DECIDED: Final[JSONObject] = {"409": _error("Already decided."), **_ID_RESPONSES}


def _query(name: str, schema: JSONObject, description: str) -> JSONObject:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


OPENAPI: Final[JSONObject] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Bastion admin API",
        "version": "1",
        "description": "Keys, policy, approvals, audit and upstreams of a Bastion gateway. "
        "Every operation needs a bearer credential or a TLS client certificate of the admin "
        "role (audit reads: admin or auditor); anonymous callers get 401, other roles 403, "
        "on every path under "
        f"{PREFIX}, known or not.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"mtls": []}],
    "tags": [{"name": n} for n in ("keys", "policies", "approvals", "audit", "upstreams", "meta")],
    "paths": {
        f"{PREFIX}/openapi.json": {
            "get": _op(
                "openapi",
                "This document (public).",
                {"200": _json({"type": "object"}, "The OpenAPI document.")},
                tag="meta",
                security=[],
            )
        },
        f"{PREFIX}/keys": {
            "get": _op(
                "listKeys",
                "List API keys (no secrets).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["keys"],
                            "properties": {"keys": {"type": "array", "items": _ref("Key")}},
                            "additionalProperties": False,
                        },
                        "The keys.",
                    )
                },
                tag="keys",
            ),
            "post": _op(
                "createKey",
                "Create an API key; the answer holds its secret, once.",
                {"201": _json(_ref("KeySecret"), "The new key and its secret.")},
                tag="keys",
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("KeyCreate")}},
                },
            ),
        },
        f"{PREFIX}/keys/{{id}}/rotate": {
            "post": _op(
                "rotateKey",
                "Replace a key by a new one; the old one stays valid for `overlap` seconds.",
                {"200": _json(_ref("KeySecret"), "The new key and its secret."), **_DECIDED},
                tag="keys",
                parameters=[_ID],
                body={
                    "required": False,
                    "content": {"application/json": {"schema": _ref("KeyRotate")}},
                },
            )
        },
        f"{PREFIX}/keys/{{id}}": {
            "delete": _op(
                "revokeKey",
                "Revoke a key (its sessions end).",
                {"204": {"description": "Revoked."}, **_ID_RESPONSES},
                tag="keys",
                parameters=[_ID],
            )
        },
        f"{PREFIX}/policies": {
            "get": _op(
                "getPolicies",
                "The current policy document, its version and rule count.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["version", "rules", "policy"],
                            "properties": {
                                "version": {"type": "string"},
                                "rules": {"type": "integer", "minimum": 0},
                                "policy": {"type": "string"},
                            },
                            "additionalProperties": False,
                        },
                        "The policy.",
                    )
                },
                tag="policies",
            ),
            "put": _op(
                "setPolicy",
                "Validate a policy and replace the current one atomically.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["version", "rules"],
                            "properties": {
                                "version": {"type": "string"},
                                "rules": {"type": "integer", "minimum": 0},
                            },
                            "additionalProperties": False,
                        },
                        "The new policy is active.",
                    )
                },
                tag="policies",
                body=_POLICY_BODY,
            ),
        },
        f"{PREFIX}/approvals": {
            "get": _op(
                "listApprovals",
                "Waiting for an admin: high-security calls (ids apr_...) and held tool definitions "
                "(ids pin:<server>:<tool>:<hash>, principal upstream:<server>).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["approvals"],
                            "properties": {
                                "approvals": {"type": "array", "items": _ref("Approval")}
                            },
                            "additionalProperties": False,
                        },
                        "Pending approvals.",
                    )
                },
                tag="approvals",
            )
        },
        f"{PREFIX}/approvals/{{id}}/approve": {
            "post": _op(
                "approve",
                "Approve a call (its retry then runs once) or a held tool definition (pinned).",
                {
                    "200": _json(_APPROVAL_RESULT, "Approved."),
                    **_DECIDED,
                },
                tag="approvals",
                parameters=[_APPROVAL_ID],
            )
        },
        f"{PREFIX}/approvals/{{id}}/reject": {
            "post": _op(
                "reject",
                "Reject a call or a held tool definition (hidden for good).",
                {"200": _json(_APPROVAL_RESULT, "Rejected."), **_DECIDED},
                tag="approvals",
                parameters=[_APPROVAL_ID],
            )
        },
        f"{PREFIX}/audit": {
            "get": _op(
                "queryAudit",
                "Audit records in seq order after `since_seq` (admin or auditor).",
                {
                    "200": _json(_PAGE, "A page of records."),
                    "400": _error("A query parameter is invalid."),
                },
                tag="audit",
                parameters=[
                    _query(
                        "since_seq",
                        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
                        "Only records with a greater seq.",
                    ),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_AUDIT_LIMIT,
                            "default": DEFAULT_AUDIT_LIMIT,
                        },
                        "At most this many records.",
                    ),
                    _query(
                        "principal", {"type": "string", "maxLength": 512}, "Exact principal id."
                    ),
                    _query(
                        "method", {"type": "string", "maxLength": 512}, "Exact method or action."
                    ),
                ],
            )
        },
        f"{PREFIX}/audit/verify": {
            "post": _op(
                "verifyAudit",
                "Verify the audit log's hash chain and signed checkpoints (admin or auditor).",
                {"200": _json(_REPORT, "The verification report.")},
                tag="audit",
            )
        },
        f"{PREFIX}/upstreams": {
            "get": _op(
                "listUpstreams",
                "Status of every upstream server replica.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["upstreams"],
                            "properties": {
                                "upstreams": {"type": "array", "items": {"type": "object"}}
                            },
                            "additionalProperties": False,
                        },
                        "The upstreams.",
                    )
                },
                tag="upstreams",
            )
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "mtls": {
                "type": "mutualTLS",
                "description": "A TLS client certificate mapped to a service account (auth.mtls).",
            },
        },
        "schemas": _SCHEMAS,
        "responses": {
            "Unauthenticated": {
                "description": "No valid credential (no body).",
                "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
            },
            "Forbidden": {
                "description": "The credential's role may not do this (no body).",
                "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
            },
            "TooLarge": _error(f"The body is larger than {MAX_BODY} bytes."),
            "Throttled": {
                "description": "This address failed to authenticate too often (no body).",
                "headers": {"Retry-After": {"required": True, "schema": {"type": "integer"}}},
            },
        },
    },
}


def openapi_bytes() -> bytes:
    """The document as JSON, encoded once by the caller and served as is."""
    return msgspec.json.encode(OPENAPI)
