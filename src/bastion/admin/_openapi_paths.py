"""The paths of the admin API's OpenAPI document: one operation per route of ``routes.ROUTES``
(a test holds the two in step), each with its answers, parameters and body and the limits the
handlers enforce (an audit page holds at most ``backends.MAX_AUDIT_LIMIT`` records, a page of
approvals ``backends.MAX_APPROVALS_LIMIT``, a policy body at most ``_http.MAX_BODY`` bytes).
``_openapi_parts.operation`` adds the refusals common to every authenticated operation; only
the document's own path is public. Data only, no I/O.
"""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject
from bastion.admin._http import MAX_BODY
from bastion.admin._openapi_parts import (
    APPROVAL_ID_PARAM,
    DECIDED,
    ID_PARAM,
    NOT_FOUND,
    error_response,
    json_response,
    operation,
    query_param,
    ref,
)
from bastion.admin.backends import MAX_APPROVALS_LIMIT, MAX_AUDIT_LIMIT, MAX_CURSOR
from bastion.admin.handlers import DEFAULT_APPROVALS_LIMIT, DEFAULT_AUDIT_LIMIT, YAML_TYPES
from bastion.admin.routes import PREFIX

__all__ = ["PATHS"]

_PAGE: Final[JSONObject] = {
    "type": "object",
    "required": ["records", "next_since_seq"],
    "properties": {
        "records": {"type": "array", "items": ref("AuditEntry"), "maxItems": MAX_AUDIT_LIMIT},
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
        "problems": {"type": "array", "items": ref("Problem")},
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
_POLICY_FILE: Final[JSONObject] = {
    "type": "object",
    "description": "The policy file on disk, present only when it is not the policy in force.",
    "required": ["version", "status"],
    "properties": {
        "version": {"type": ["string", "null"], "description": "null: it cannot be read."},
        "status": {"type": "string", "enum": ["pending", "refused"]},
        "error": {"type": "string", "description": "Why it was refused."},
    },
    "additionalProperties": False,
}
_APPROVAL_RESULT: Final[JSONObject] = {
    "type": "object",
    "required": ["approval"],
    "properties": {"approval": ref("Approval")},
    "additionalProperties": False,
}

PATHS: Final[JSONObject] = {
    f"{PREFIX}/openapi.json": {
        "get": operation(
            "openapi",
            "This document (public).",
            {"200": json_response({"type": "object"}, "The OpenAPI document.")},
            tag="meta",
            security=[],
        )
    },
    f"{PREFIX}/keys": {
        "get": operation(
            "listKeys",
            "List API keys (no secrets).",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["keys"],
                        "properties": {"keys": {"type": "array", "items": ref("Key")}},
                        "additionalProperties": False,
                    },
                    "The keys.",
                )
            },
            tag="keys",
        ),
        "post": operation(
            "createKey",
            "Create an API key; the answer holds its secret, once.",
            {"201": json_response(ref("KeySecret"), "The new key and its secret.")},
            tag="keys",
            body={
                "required": True,
                "content": {"application/json": {"schema": ref("KeyCreate")}},
            },
        ),
    },
    f"{PREFIX}/keys/{{id}}/rotate": {
        "post": operation(
            "rotateKey",
            "Replace a key by a new one; the old one stays valid for `overlap` seconds.",
            {"200": json_response(ref("KeySecret"), "The new key and its secret."), **DECIDED},
            tag="keys",
            parameters=[ID_PARAM],
            body={
                "required": False,
                "content": {"application/json": {"schema": ref("KeyRotate")}},
            },
        )
    },
    f"{PREFIX}/keys/{{id}}": {
        "delete": operation(
            "revokeKey",
            "Revoke a key (its sessions end).",
            {"204": {"description": "Revoked."}, **NOT_FOUND},
            tag="keys",
            parameters=[ID_PARAM],
        )
    },
    f"{PREFIX}/policies": {
        "get": operation(
            "getPolicies",
            "The policy in force: the text it was compiled from, its version (the sha-256 of "
            "that text) and rule count; `file` when the policy file on disk is something else "
            "(`pending`: it loads, and applies at the next polls; `refused`: `error` says why).",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["version", "rules", "policy"],
                        "properties": {
                            "version": {"type": "string"},
                            "rules": {"type": "integer", "minimum": 0},
                            "policy": {"type": "string"},
                            "file": _POLICY_FILE,
                        },
                        "additionalProperties": False,
                    },
                    "The policy.",
                )
            },
            tag="policies",
        ),
        "put": operation(
            "setPolicy",
            "Validate a policy and replace the current one atomically.",
            {
                "200": json_response(
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
                ),
                "409": error_response(
                    "Nothing was changed: others may change the policy file (the fix is "
                    "named), or it changed while being replaced."
                ),
            },
            tag="policies",
            body=_POLICY_BODY,
        ),
    },
    f"{PREFIX}/approvals": {
        "get": operation(
            "listApprovals",
            "Waiting for an admin: high-security calls (ids apr_...), then held tool "
            "definitions (ids tool:<server>:<sha256>, principal upstream:<server>), then held "
            "prompts, resources and templates (ids <kind>:<server>:<sha256>), each oldest "
            "first, a page at a time: pass `next_cursor` as `cursor` for the next page.",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["approvals"],
                        "properties": {
                            "approvals": {
                                "type": "array",
                                "items": ref("Approval"),
                                "maxItems": MAX_APPROVALS_LIMIT,
                            },
                            "next_cursor": {
                                "type": "string",
                                "maxLength": MAX_CURSOR,
                                "description": "Present when more approvals follow.",
                            },
                        },
                        "additionalProperties": False,
                    },
                    "A page of pending approvals.",
                ),
                "400": error_response("A query parameter is invalid."),
            },
            tag="approvals",
            parameters=[
                query_param(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_APPROVALS_LIMIT,
                        "default": DEFAULT_APPROVALS_LIMIT,
                    },
                    "At most this many approvals.",
                ),
                query_param(
                    "cursor",
                    {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR},
                    "The `next_cursor` of the page before.",
                ),
            ],
        )
    },
    f"{PREFIX}/approvals/{{id}}/approve": {
        "post": operation(
            "approve",
            "Approve a call (its retry then runs once) or a held definition (a tool is pinned).",
            {
                "200": json_response(_APPROVAL_RESULT, "Approved."),
                **DECIDED,
            },
            tag="approvals",
            parameters=[APPROVAL_ID_PARAM],
        )
    },
    f"{PREFIX}/approvals/{{id}}/reject": {
        "post": operation(
            "reject",
            "Reject a call or a held tool definition (hidden for good).",
            {"200": json_response(_APPROVAL_RESULT, "Rejected."), **DECIDED},
            tag="approvals",
            parameters=[APPROVAL_ID_PARAM],
        )
    },
    f"{PREFIX}/audit": {
        "get": operation(
            "queryAudit",
            "Audit records in seq order after `since_seq` (admin or auditor).",
            {
                "200": json_response(_PAGE, "A page of records."),
                "400": error_response("A query parameter is invalid."),
            },
            tag="audit",
            parameters=[
                query_param(
                    "since_seq",
                    {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
                    "Only records with a greater seq.",
                ),
                query_param(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_AUDIT_LIMIT,
                        "default": DEFAULT_AUDIT_LIMIT,
                    },
                    "At most this many records.",
                ),
                query_param(
                    "principal", {"type": "string", "maxLength": 512}, "Exact principal id."
                ),
                query_param(
                    "method", {"type": "string", "maxLength": 512}, "Exact method or action."
                ),
            ],
        )
    },
    f"{PREFIX}/audit/verify": {
        "post": operation(
            "verifyAudit",
            "Verify the audit log's hash chain and signed checkpoints (admin or auditor).",
            {"200": json_response(_REPORT, "The verification report.")},
            tag="audit",
        )
    },
    f"{PREFIX}/upstreams": {
        "get": operation(
            "listUpstreams",
            "Status of every upstream server replica.",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["upstreams"],
                        "properties": {"upstreams": {"type": "array", "items": {"type": "object"}}},
                        "additionalProperties": False,
                    },
                    "The upstreams.",
                )
            },
            tag="upstreams",
        )
    },
}
