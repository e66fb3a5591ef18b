"""The components of the admin API's OpenAPI document: the schemas of the objects the handlers
send and accept (errors, keys, approvals, audit entries, verification problems) with the
bounds the handlers enforce (``handlers.MAX_EXPIRES_IN``, ``handlers.MAX_OVERLAP``) and a
key's secret only in ``KeySecret``, the answer that shows it once; the two security schemes
(bearer, mTLS); and the named refusals every authenticated operation can meet: 401 and 403
with no body, only ``WWW-Authenticate`` (AU-2), 413 naming the body cap (``_http.MAX_BODY``,
DS-1) and 429 with ``Retry-After``. Data only, no I/O.
"""

from __future__ import annotations

from typing import Final, get_args

from bastion._types import JSONObject
from bastion.admin._http import MAX_BODY
from bastion.admin._openapi_parts import error_response, ref
from bastion.admin.handlers import MAX_EXPIRES_IN, MAX_OVERLAP
from bastion.audit.verify import ProblemKind
from bastion.auth.roles import NAME_PATTERN

__all__ = ["COMPONENTS"]

_NAME_SCHEMA: Final[JSONObject] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^{NAME_PATTERN}$",
}
_ROLE_SCHEMA: Final[JSONObject] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^{NAME_PATTERN}$",
}


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
        "properties": {
            "key": ref("Key"),
            "secret": {"type": "string"},
            "expiry_capped": {
                "type": "boolean",
                "const": True,
                "description": "Present when the key was made (or rotated) with a break-glass "
                "key: it expires when that key does, at the latest (expires_at).",
            },
        },
        "additionalProperties": False,
    },
    "Approval": {
        "type": "object",
        "description": "A call waiting for a human (kind 'call'), or an upstream's definition "
        "held by the guard: its principal is 'upstream:<server>' and 'tool' its name (a "
        "resource's URI, a template's URI template). Approving a definition approves that "
        "exact one (its hash): if the upstream changes it, it is screened, and held, again. "
        "Approving a call approves that principal's call of that tool with those exact "
        "arguments (arguments_hmac), once; a retry with other arguments waits for its own.",
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
            "arguments_hmac",
            "arguments_preview",
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
            "arguments_hmac": {
                "type": ["string", "null"],
                "pattern": "^[0-9a-f]{64}$",
                "description": "A call's: HMAC-SHA-256 (hex) of its arguments as canonical "
                "JSON (keys sorted at every depth, no whitespace, UTF-8), keyed by a secret "
                "of the gateway beside its audit log (audit.pepper), so equal arguments have "
                "equal digests but a masked value cannot be guessed from one; also in the "
                "audit detail of the call's refusals and of its approved run, with its "
                "approvalId.",
            },
            "arguments_preview": {
                "type": ["string", "null"],
                "description": "A call's arguments as JSON with secrets masked by the audit "
                "redactor, cut short (at most pipeline.approvals.MAX_ARGUMENTS_PREVIEW "
                "characters, ending in '…' when cut).",
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

COMPONENTS: Final[JSONObject] = {
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
        "TooLarge": error_response(f"The body is larger than {MAX_BODY} bytes."),
        "Throttled": {
            "description": "This address failed to authenticate too often, or this "
            "principal sent more than its rate limit (limits.per_principal) allows (no body).",
            "headers": {"Retry-After": {"required": True, "schema": {"type": "integer"}}},
        },
    },
}
