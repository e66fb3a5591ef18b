"""The admin API's OpenAPI 3.1 document, assembled once and served at ``/api/v1/openapi.json``:
this module holds the document's header (info, servers, security, tags), puts it together with
the paths of ``_openapi_paths`` and the components of ``_openapi_schemas``, and
``openapi_bytes`` encodes it for the app to serve as is. The document describes exactly the
routes of ``routes.ROUTES`` (a test holds the two in step) with the limits the handlers
enforce. Every operation but this document's own needs a bearer credential or a TLS client
certificate (mTLS); 401 and 403 answers have no body (AU-2). 413 is possible on every
operation: the body cap is checked from ``Content-Length`` before anything else (DS-1).
"""

from __future__ import annotations

from typing import Final

import msgspec

from bastion._types import JSONObject
from bastion.admin._openapi_paths import PATHS
from bastion.admin._openapi_schemas import COMPONENTS
from bastion.admin.routes import PREFIX

__all__ = ["OPENAPI", "openapi_bytes"]

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
    "paths": PATHS,
    "components": COMPONENTS,
}


def openapi_bytes() -> bytes:
    """The document as JSON, encoded once by the caller and served as is."""
    return msgspec.json.encode(OPENAPI)
